"""One keyset pager: newest first, a page at a time, never OFFSET."""

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from webapp.domain.sql import max_value
from webapp.extensions import db


@dataclass(frozen=True)
class Page:
    items: list[Any]
    next_before: int | None  # pass as ?before= for the next (older) page


def keyset_page(
    query: sa.Select, model: Any, before: int | None, size: int, *, by_time: bool = False
) -> Page:
    """`size` rows of `model` older than the row `before` names, newest first.

    Newest means highest id, or with `by_time` latest (created_at, id), which walks a
    (created_at, id) index. `before` is the last id of the page before either way. One
    extra row is read to know whether there is more.
    """
    order = (model.created_at.desc(), model.id.desc()) if by_time else (model.id.desc(),)
    if before and before <= max_value(model.id):  # beyond the column: every row is older
        query = query.where(_older_than(model, before, by_time))
    rows = list(db.session.scalars(query.order_by(*order).limit(size + 1)))
    more = len(rows) > size
    rows = rows[:size]
    return Page(rows, rows[-1].id if more and rows else None)


def _older_than(model: Any, before: int, by_time: bool) -> sa.ColumnElement[bool]:
    if not by_time:
        return model.id < before
    cursor = db.session.get(model, before)
    if cursor is None:
        return sa.true()
    return sa.tuple_(model.created_at, model.id) < sa.tuple_(
        sa.literal(cursor.created_at, model.created_at.type), sa.literal(cursor.id)
    )
