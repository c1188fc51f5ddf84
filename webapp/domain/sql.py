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
    statement = _insert_ignoring(
        table, tuple(row), tuple(column.name for column in unique_columns), returning.name
    )
    return db.session.execute(statement, row).scalar_one_or_none()


@functools.cache
def _insert_ignoring(
    table: sa.Table, names: tuple[str, ...], unique: tuple[str, ...], returning: str
) -> sa.TextClause:
    # Plain SQL both databases accept, built once per shape: the dialects' upsert
    # constructs are never cached, and compiling one on every call cost more than running
    # it (it sits on the webhook's path: every receipt is such an insert).
    sql = (
        f"INSERT INTO {table.name} ({', '.join(names)})"
        f" VALUES ({', '.join(f':{name}' for name in names)})"
        f" ON CONFLICT ({', '.join(unique)}) DO NOTHING RETURNING {returning}"
    )
    binds = [sa.bindparam(name, type_=table.c[name].type) for name in names]
    return sa.text(sql).bindparams(*binds).columns(table.c[returning])


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


def locked(statement: sa.Select) -> sa.Select:
    """The rows row-locked until the transaction ends, re-read over anything loaded before."""
    return statement.with_for_update().execution_options(populate_existing=True)


def fresh(statement: sa.Select) -> sa.Select:
    """The rows re-read over anything the session loaded before (no lock)."""
    return statement.execution_options(populate_existing=True)
