"""Totals for /admin/, kept by the ledger in the same transaction as every change they count.

A change adds its difference to a set pending on the database session (`add`); just
before that transaction commits, the set is written as ONE upsert into `daily_totals`
(one row per UTC day, figure, currency and shard), and a rollback drops it. /admin/
then sums a few thousand small rows instead of grouping every purchase. Writing at
commit keeps the row locks of these shared rows for the shortest time (on PostgreSQL
the first post_entry of a transaction writes them in its own statement instead: no extra
round trip), and each database connection writes rows of its own shard, so concurrent
writers never wait on each other there.

The figures (admin_reports.dashboard reads whatever metrics exist):

  credits.<entry kind>  credits posted, signed: every post_entry adds its own
  purchases.<status>    how many purchases are in each status
  charged, refunded     money (per currency) of purchases in a revenue status
  under_review          money (per currency) Stripe reported for purchases in needs_review

Adding a figure is one line: in `purchase_figures` when it follows from a purchase's
status and amounts (the rebuild then counts it too), or one `add(...)` call in the
ledger function that makes the change (e.g. `add("disputes_lost", cents, currency)`).
Purchases changed through the ORM are counted by the before_flush hook below; the
ledger's Core UPDATEs of purchases call `purchase_moved` themselves.
"""

import json
import random
from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session

from webapp.extensions import db
from webapp.models import (
    DailyTotal,
    Purchase,
    PurchaseStatus,
)
from webapp.models.types import utcnow

SHARDS = 16  # SQLite; on PostgreSQL each connection has its own shard
_PENDING = "ledger.totals"

# Purchases whose money counts as revenue: exactly the credited ones (a purchase leaves
# needs_review, pending, processing, failed and expired only by being credited).
REVENUE_STATUSES = frozenset(
    {
        PurchaseStatus.PAID,
        PurchaseStatus.REFUNDED,
        PurchaseStatus.PARTIALLY_REFUNDED,
        PurchaseStatus.DISPUTED,
    }
)

Figures = dict[tuple[str, str], int]  # (metric, currency) -> amount


def credits_metric(kind: str) -> str:
    return f"credits.{kind}"


def status_metric(status: str) -> str:
    return f"purchases.{status}"


def purchase_figures(
    status: str,
    currency: str,
    amount_cents: int,
    refunded_cents: int,
    review_currency: str | None = None,
    review_cents: int | None = None,
    count: int = 1,
) -> Figures:
    """What `count` purchases in `status` add to the totals (amounts summed over them).

    `review_*`: what Stripe reported for a purchase it took money for that could not be
    credited (needs_review)."""
    figures = {(status_metric(status), ""): count}
    if status in REVENUE_STATUSES:
        figures[("charged", currency)] = amount_cents
        figures[("refunded", currency)] = refunded_cents
    elif status == PurchaseStatus.NEEDS_REVIEW and review_currency:
        figures[("under_review", review_currency)] = review_cents or 0
    return figures


def add(metric: str, amount: int, currency: str = "") -> None:
    """Add `amount` to today's `metric` when the current transaction commits."""
    _add(db.session.info, metric, amount, currency)


def _add(info: dict, metric: str, amount: int, currency: str) -> None:
    if amount:
        pending = info.setdefault(_PENDING, defaultdict(int))
        pending[(utcnow().date(), metric, currency)] += amount


def purchase_moved(before: tuple | None, after: tuple | None, info: dict | None = None) -> None:
    """Count a purchase going from state `before` to `after` (None: not there).

    A state is (status, currency, amount_cents, amount_refunded_cents[, review_currency,
    review_amount_cents]).
    """
    info = db.session.info if info is None else info
    for (metric, currency), amount in move_figures(before, after).items():
        _add(info, metric, amount, currency)


def move_figures(before: tuple | None, after: tuple | None) -> Figures:
    """What a purchase going from state `before` to `after` adds (see purchase_moved)."""
    moved: Figures = defaultdict(int)
    for state, sign in ((before, -1), (after, 1)):
        if state is not None:
            for key, amount in purchase_figures(*state).items():
                moved[key] += sign * amount
    return moved


# --- purchases changed through the ORM (set_status, refunds, new purchases)

_TRACKED = (
    "status",
    "currency",
    "amount_cents",
    "amount_refunded_cents",
    "review_currency",
    "review_amount_cents",
)
_DEFAULTS = {"status": PurchaseStatus.PENDING.value, "amount_refunded_cents": 0}


def _state(purchase: Purchase, *, old: bool) -> tuple:
    inspected = sa.inspect(purchase)
    values = []
    for name in _TRACKED:
        history = inspected.attrs[name].history
        value = history.deleted[0] if old and history.deleted else getattr(purchase, name)
        values.append(_DEFAULTS.get(name) if value is None else value)
    return tuple(values)


@event.listens_for(Session, "before_flush")
def _count_purchase_changes(session: Session, _context: Any, _instances: Any) -> None:
    for purchase in session.new:
        if isinstance(purchase, Purchase):
            purchase_moved(None, _state(purchase, old=False), session.info)
    for purchase in session.dirty:
        if isinstance(purchase, Purchase) and session.is_modified(purchase):
            before, after = _state(purchase, old=True), _state(purchase, old=False)
            if before != after:
                purchase_moved(before, after, session.info)
    for purchase in session.deleted:
        if isinstance(purchase, Purchase):
            purchase_moved(_state(purchase, old=True), None, session.info)


# --- writing: with the posting statement (PostgreSQL) or at commit; dropped at rollback
#
# On PostgreSQL the shard is the connection's server process id: a connection runs one
# transaction at a time, so concurrent transactions never wait on each other's totals rows
# (and cannot deadlock on them). Past days fold into shard 0 (`compact`, run daily by
# cron: `flask credits compact-totals`), so the rows /admin/ sums stay few.

_UPSERT_SQL = (
    "INSERT INTO daily_totals (day, metric, currency, shard, amount) {rows}"
    " ON CONFLICT (day, metric, currency, shard)"
    " DO UPDATE SET amount = daily_totals.amount + excluded.amount"
)
# PostgreSQL: every row in one statement, as ONE JSON parameter (psycopg dumps a list
# element by element in Python; five array parameters cost more than the upsert itself).
_ROWS = (
    "SELECT day, metric, currency, shard, amount"
    " FROM json_populate_recordset(NULL::daily_totals, CAST(:t_rows AS json))"
)
_UPSERT_PG = sa.text(_UPSERT_SQL.format(rows=_ROWS))
# Inside post_entry's statement: written only when the posting moved the balance.
POSTING_UPSERT_SQL = _UPSERT_SQL.format(rows=_ROWS + " WHERE EXISTS (SELECT 1 FROM moved)")
UPSERT_ONE = sa.text(
    _UPSERT_SQL.format(rows="VALUES (:day, :metric, :currency, :shard, :amount)")
).bindparams(sa.bindparam("day", type_=sa.Date))
_FOLDED = "ledger.totals.folded"


def _shard(session: Session) -> int:
    """PostgreSQL: the connection's server process id. SQLite (one writer): any of SHARDS."""
    if session.get_bind().dialect.name != "postgresql":
        return random.randrange(SHARDS)
    return session.connection().connection.dbapi_connection.info.backend_pid


def _rows_param(rows: list, shard: int) -> dict[str, str]:
    """The parameter of _ROWS: rows ((day, metric, currency), amount) in `shard`."""
    return {
        "t_rows": json.dumps(
            [
                {
                    "day": day.isoformat(),
                    "metric": metric,
                    "currency": currency,
                    "shard": shard,
                    "amount": amount,
                }
                for (day, metric, currency), amount in rows
            ]
        )
    }


def posting_params(metric: str, amount: int, also: Figures | None = None) -> dict[str, str] | None:
    """PostgreSQL post_entry: the pending totals plus `amount` on `metric`, as parameters of
    POSTING_UPSERT_SQL; None when this transaction has written totals this way already.
    `also`: figures of the same statement's other steps (written only when it moves).
    Call `posted(moved)` once the statement has run."""
    session = db.session()
    if session.info.get(_FOLDED):
        return None
    session.flush()  # purchase changes still in the session count now
    pending = session.info.pop(_PENDING, None) or defaultdict(int)
    session.info[_FOLDED] = dict(pending)  # put back if the posting moves nothing
    _add(session.info, metric, amount, "")
    for (also_metric, currency), also_amount in (also or {}).items():
        _add(session.info, also_metric, also_amount, currency)
    merged = session.info.pop(_PENDING)
    for key, value in pending.items():
        merged[key] += value
    rows = sorted((key, value) for key, value in merged.items() if value)
    return _rows_param(rows, _shard(session))


def posted(moved: bool) -> None:
    """After the posting statement: when it moved nothing, its totals are pending again."""
    info = db.session.info
    if not moved:
        for (day, metric, currency), value in info.pop(_FOLDED).items():
            pending = info.setdefault(_PENDING, defaultdict(int))
            pending[(day, metric, currency)] += value
    else:
        info[_FOLDED] = True


def write_pending(session: Session) -> None:
    """Upsert the pending totals in the session's transaction, in key order."""
    pending = session.info.pop(_PENDING, None)
    rows = sorted((key, amount) for key, amount in (pending or {}).items() if amount)
    if not rows:
        return
    shard = _shard(session)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_UPSERT_PG, _rows_param(rows, shard))
    else:
        session.execute(
            UPSERT_ONE,
            [
                {"day": d, "metric": m, "currency": c, "shard": shard, "amount": amount}
                for (d, m, c), amount in rows
            ],
        )


@event.listens_for(Session, "before_commit")
def _write_at_commit(session: Session) -> None:
    if session.info.get(_PENDING) or session.new or session.dirty or session.deleted:
        session.flush()  # the flush may count purchase changes too
        write_pending(session)


@event.listens_for(Session, "after_commit")
def _end_at_commit(session: Session) -> None:
    session.info.pop(_FOLDED, None)


@event.listens_for(Session, "after_soft_rollback")
def _drop_at_rollback(session: Session, previous_transaction: Any) -> None:
    if previous_transaction.parent is None:
        session.info.pop(_PENDING, None)
        session.info.pop(_FOLDED, None)


# --- reading (folding and rebuilding: totals_upkeep.py)


def all_time() -> Figures:
    """Every figure summed over all days and shards."""
    rows = db.session.execute(
        sa.select(DailyTotal.metric, DailyTotal.currency, sa.func.sum(DailyTotal.amount)).group_by(
            DailyTotal.metric, DailyTotal.currency
        )
    )
    return {(metric, currency): int(amount) for metric, currency, amount in rows}
