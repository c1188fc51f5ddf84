"""Small SQL helpers every domain module shares: the dialect, upserts, locked and fresh reads."""

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

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
    model: Any, values: dict[str, Any], *unique_columns: Any
) -> sa.Insert:
    """INSERT ... ON CONFLICT (unique_columns) DO NOTHING, in this database's dialect."""
    insert = postgresql.insert if is_postgresql() else sqlite.insert
    return insert(model).values(values).on_conflict_do_nothing(index_elements=list(unique_columns))


def locked(statement: sa.Select) -> sa.Select:
    """The rows row-locked until the transaction ends, re-read over anything loaded before."""
    return statement.with_for_update().execution_options(populate_existing=True)


def fresh(statement: sa.Select) -> sa.Select:
    """The rows re-read over anything the session loaded before (no lock)."""
    return statement.execution_options(populate_existing=True)
