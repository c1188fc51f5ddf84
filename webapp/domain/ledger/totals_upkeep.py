"""Upkeep of the kept totals: folding past days' shards (daily) and rebuilding them from
the rows (repairs, and rows written behind the ledger's back such as benchmark seeds)."""

from collections import defaultdict
from datetime import date

import sqlalchemy as sa

from webapp.domain.ledger.totals import UPSERT_ONE, credits_metric, purchase_figures
from webapp.domain.sql import utc_day
from webapp.domain.transaction import atomic
from webapp.extensions import db
from webapp.models import CreditDay, DailyTotal, EntryKind, LedgerEntry, Purchase
from webapp.models.types import utcnow


def compact(today: date | None = None) -> int:
    """Fold the shards of every day before `today` into shard 0; returns rows folded; commits.

    Sums never change, so running it at any time (cron, `flask credits compact-totals`) is
    safe; it only keeps the rows /admin/ sums at about one per day and figure.
    """
    today = today or utcnow().date()
    with atomic():
        folded = db.session.execute(
            sa.delete(DailyTotal)
            .where(DailyTotal.day < today, DailyTotal.shard != 0)
            .returning(DailyTotal.day, DailyTotal.metric, DailyTotal.currency, DailyTotal.amount)
        ).all()
        sums: dict[tuple[str, str, str], int] = defaultdict(int)
        for day, metric, currency, amount in folded:
            sums[(day, metric, currency)] += amount
        rows = [
            {"day": d, "metric": m, "currency": c, "shard": 0, "amount": a}
            for (d, m, c), a in sorted(sums.items())
        ]
        if rows:
            db.session.execute(UPSERT_ONE, rows)
    return len(folded)


def rebuild() -> None:
    """Recompute daily_totals and credit_days from the ledger rows and purchases (joins
    the caller's transaction). For repairs, and for rows written behind the ledger's back
    (benchmark seeds)."""
    db.session.execute(sa.delete(DailyTotal))
    totals: dict[tuple[date, str, str], int] = defaultdict(int)
    entry_day = utc_day(LedgerEntry.created_at)
    for day, kind, credits in db.session.execute(
        sa.select(entry_day, LedgerEntry.kind, sa.func.sum(LedgerEntry.credits)).group_by(
            entry_day, LedgerEntry.kind
        )
    ):
        totals[(_as_date(day), credits_metric(EntryKind(kind)), "")] += int(credits)
    purchase_day = utc_day(Purchase.created_at)
    groups = db.session.execute(
        sa.select(
            purchase_day,
            Purchase.status,
            Purchase.currency,
            sa.func.count(),
            sa.func.sum(Purchase.amount_cents),
            sa.func.sum(Purchase.amount_refunded_cents),
            Purchase.review_currency,
            sa.func.sum(Purchase.review_amount_cents),
        ).group_by(purchase_day, Purchase.status, Purchase.currency, Purchase.review_currency)
    )
    for day, status, currency, count, charged, refunded, review_currency, review in groups:
        for (metric, money), amount in purchase_figures(
            status,
            currency,
            int(charged),
            int(refunded),
            review_currency,
            int(review or 0),
            count,
        ).items():
            totals[(_as_date(day), metric, money)] += amount
    _rebuild_credit_days()
    rows = [
        {"day": day, "metric": metric, "currency": currency, "shard": 0, "amount": amount}
        for (day, metric, currency), amount in sorted(totals.items())
        if amount
    ]
    if rows:
        db.session.execute(sa.insert(DailyTotal), rows)


def _rebuild_credit_days() -> None:
    """Every user's bought and spent credits per day, from the ledger rows."""
    from webapp.domain.ledger.entries import _DAY_COLUMN_FOR_KIND

    db.session.execute(sa.delete(CreditDay))
    day = utc_day(LedgerEntry.created_at)

    def summed(column: str):
        kinds = [kind for kind, name in _DAY_COLUMN_FOR_KIND.items() if name == column]
        magnitude = sa.func.abs(LedgerEntry.credits)
        return sa.func.sum(sa.case((LedgerEntry.kind.in_(kinds), magnitude), else_=0))

    days = (
        sa.select(LedgerEntry.user_id, day, summed("bought"), summed("spent"))
        .where(LedgerEntry.kind.in_(list(_DAY_COLUMN_FOR_KIND)))
        .group_by(LedgerEntry.user_id, day)
    )
    db.session.execute(
        sa.insert(CreditDay).from_select(["user_id", "day", "bought", "spent"], days)
    )


def _as_date(value) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
