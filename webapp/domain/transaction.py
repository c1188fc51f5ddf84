"""One unit of work per public domain call; nested calls join the outer one."""

from contextlib import contextmanager

from webapp.extensions import db


@contextmanager
def atomic():
    """Commit when the outermost block succeeds; roll everything back when it fails."""
    session = db.session
    depth = session.info.get("atomic_depth", 0)
    session.info["atomic_depth"] = depth + 1
    try:
        yield session
        if depth == 0:
            session.commit()
    except BaseException:
        if depth == 0:
            session.rollback()
        raise
    finally:
        session.info["atomic_depth"] = depth


def end_idle_read() -> None:
    """Before waiting on the network: end a transaction that has only read.

    Outside any atomic() block, a view's reads leave a transaction open; on SQLite it holds
    the write lock (BEGIN IMMEDIATE), on PostgreSQL it sits "idle in transaction". Inside
    atomic() nothing is touched: the caller's unit of work continues.
    """
    session = db.session
    if session.info.get("atomic_depth", 0) == 0 and not (
        session.new or session.dirty or session.deleted
    ):
        session.rollback()
