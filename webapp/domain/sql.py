"""Small SQL helpers every domain module shares: the dialect, upserts, locked and fresh reads."""

import functools
from typing import Any

import sqlalchemy as sa

from webapp.extensions import db

# The largest id or cursor a BIGINT column holds: larger input is "not found", not an error.
MAX_BIGINT = 2**63 - 1
# The largest value an INTEGER column (most primary keys) holds.
MAX_INT = 2**31 - 1


def max_value(column: Any) -> int:
    """The largest value `column` holds: BIGINT or INTEGER."""
    return MAX_BIGINT if isinstance(column.type, sa.BigInteger) else MAX_INT


def is_postgresql() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def utc_day(column: Any) -> sa.ColumnElement:
    """The UTC calendar day of a timestamp column: a DATE on PostgreSQL, ISO text on SQLite
    (which stores naive UTC)."""
    if is_postgresql():
        return sa.cast(sa.func.timezone("UTC", column), sa.Date)
    return sa.func.date(column)


def insert_ignoring_duplicates(
    model: Any, values: dict[str, Any], *unique_columns: Any, returning: Any
) -> Any:
    """INSERT ... ON CONFLICT (unique_columns) DO NOTHING RETURNING `returning`; joins the
    caller's transaction. Returns the new row's `returning` value, or None when a row with
    the same unique values exists. Columns left out get their model defaults.
    """
    table = model.__table__
    row = {**_defaults(table, values), **values}
    statement = ignoring_duplicates_sql(table, tuple(row), unique_columns, returning)
    return db.session.execute(statement, row).scalar_one_or_none()


@functools.cache
def ignoring_duplicates_sql(
    table: sa.Table,
    names: tuple[str, ...],
    unique_columns: tuple[Any, ...],
    returning: Any,
    *,
    prefix: str = "",
    only_if_rows_in: str | None = None,
) -> sa.TextClause:
    """INSERT INTO table (names) VALUES (:prefix<name>, ...) ON CONFLICT (unique) DO
    NOTHING RETURNING `returning`, as text built once per shape.

    Plain SQL both databases accept: the dialects' upsert constructs are never cached,
    and compiling one on every call cost more than running it (every receipt is such an
    insert). `only_if_rows_in` (PostgreSQL, a step of a bigger statement): insert only
    when that CTE returned a row.
    """
    values = ", ".join(f":{prefix}{name}" for name in names)
    rows = f"VALUES ({values})"
    if only_if_rows_in:
        rows = f"SELECT {values} WHERE EXISTS (SELECT 1 FROM {only_if_rows_in})"
    unique = ", ".join(column.name for column in unique_columns)
    sql = (
        f"INSERT INTO {table.name} ({', '.join(names)}) {rows}"
        f" ON CONFLICT ({unique}) DO NOTHING RETURNING {returning.name}"
    )
    binds = [sa.bindparam(f"{prefix}{name}", type_=table.c[name].type) for name in names]
    return sa.text(sql).bindparams(*binds).columns(table.c[returning.name])


def _defaults(table: sa.Table, values: dict[str, Any]) -> dict[str, Any]:
    """The Python-side defaults of the columns `values` leaves out, as Core would fill them."""
    filled = {}
    for column in table.columns:
        default = column.default
        if column.name in values or default is None or column.primary_key:
            continue
        if default.is_scalar:
            filled[column.name] = default.arg
        elif default.is_callable:
            filled[column.name] = default.arg(None)
    return filled


def rows_in(cte: sa.CTE) -> sa.Exists:
    """EXISTS (SELECT 1 FROM cte): a step of one statement that runs only after another."""
    return sa.exists(sa.select(sa.literal_column("1")).select_from(cte))


def locked(statement: sa.Select) -> sa.Select:
    """The rows row-locked until the transaction ends, re-read over anything loaded before."""
    return statement.with_for_update().execution_options(populate_existing=True)


def fresh(statement: sa.Select) -> sa.Select:
    """The rows re-read over anything the session loaded before (no lock)."""
    return statement.execution_options(populate_existing=True)
