"""What admins see: the dashboard's totals and revenue, and the lists of users,
purchases, subscriptions, invoices held for review, Stripe events and audit rows."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import sqlalchemy as sa

from webapp.domain import ledger
from webapp.domain.paging import Page, keyset_page
from webapp.extensions import db
from webapp.models import (
    AdminAction,
    CreditGrant,
    Dispute,
    EntryKind,
    EventOutcome,
    Purchase,
    PurchaseStatus,
    StripeEvent,
    Subscription,
    User,
)
from webapp.models.types import utcnow


@dataclass(frozen=True)
class Dashboard:
    credits_sold: int
    credits_granted: int
    credits_used: int
    outstanding: int
    revenue: list["Revenue"]
    by_status: dict[str, int]
    failed_events_24h: int
    recent_failures: list[StripeEvent]


@dataclass(frozen=True)
class Revenue:
    """One currency's money (minor units): charged = credited top-ups and plan invoices
    that granted; refunded and lost in disputes come off it; under review is money
    Stripe took that credited nothing yet (a purchase or invoice an admin must look at)."""

    currency: str
    charged: int = 0
    refunded: int = 0
    disputes_lost: int = 0
    under_review: int = 0

    @property
    def net(self) -> int:
        return self.charged - self.refunded - self.disputes_lost


def revenue_by_currency(figures: "ledger.totals.Figures | None" = None) -> list[Revenue]:
    """Revenue per currency, alphabetical; the dashboard shows it.

    Top-ups (credited, refunded, under review) come from the totals the ledger keeps
    (`figures`, read when not given); plan invoices and lost disputes from two grouped
    queries over those few rows.
    """
    totals: dict[str, dict[str, int]] = {}

    def add(rows, *fields):
        for currency, *amounts in rows:
            if currency is None:
                continue
            entry = totals.setdefault(
                currency, dict.fromkeys(("charged", "refunded", "disputes_lost", "under_review"), 0)
            )
            for name, amount in zip(fields, amounts, strict=True):
                entry[name] += int(amount or 0)

    figures = ledger.totals.all_time() if figures is None else figures
    kept = ("charged", "refunded", "under_review")
    currencies = {currency for (metric, currency) in figures if metric in kept}
    add(
        (
            (currency, *(figures.get((metric, currency), 0) for metric in kept))
            for currency in currencies
        ),
        *kept,
    )
    granted = CreditGrant.review_reason.is_(None)
    add(
        db.session.execute(
            sa.select(
                CreditGrant.currency,
                sa.func.sum(sa.case((granted, CreditGrant.amount_cents), else_=0)),
                sa.func.sum(sa.case((granted, CreditGrant.amount_refunded_cents), else_=0)),
                sa.func.sum(sa.case((granted, 0), else_=CreditGrant.amount_cents)),
            )
            .where(CreditGrant.amount_cents > 0)
            .group_by(CreditGrant.currency)
        ),
        "charged",
        "refunded",
        "under_review",
    )
    currency = sa.func.coalesce(Purchase.currency, CreditGrant.currency)
    add(
        db.session.execute(
            sa.select(currency, sa.func.sum(Dispute.amount_cents))
            .select_from(Dispute)
            .outerjoin(Purchase, Purchase.id == Dispute.purchase_id)
            .outerjoin(CreditGrant, CreditGrant.id == Dispute.grant_id)
            .where(Dispute.status == "lost")
            .group_by(currency)
        ),
        "disputes_lost",
    )
    return [Revenue(currency, **totals[currency]) for currency in sorted(totals)]


def dashboard() -> Dashboard:
    """Totals for /admin/ as the ledger keeps them (daily_totals), and recent failures."""
    figures = ledger.totals.all_time()

    def credits(kind: str) -> int:
        return figures.get((ledger.totals.credits_metric(kind), ""), 0)

    outstanding = sum(credits(kind) for kind in EntryKind)
    by_status = {
        status: figures.get((ledger.totals.status_metric(status), ""), 0)
        for status in PurchaseStatus
    }
    since = utcnow() - timedelta(hours=24)
    failed = sa.select(StripeEvent).where(
        StripeEvent.outcome == EventOutcome.FAILED, StripeEvent.received_at >= since
    )
    failed_count = db.session.scalar(sa.select(sa.func.count()).select_from(failed.subquery()))
    # Failed events are few: the (outcome, id) index finds them, newest first by id.
    recent = list(db.session.scalars(failed.order_by(StripeEvent.id.desc()).limit(10)))
    return Dashboard(
        credits(EntryKind.PURCHASE),
        credits(EntryKind.GRANT),
        -credits(EntryKind.USAGE),
        outstanding,
        revenue_by_currency(figures),
        by_status,
        failed_count or 0,
        recent,
    )


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def users_page(q: str, before: int | None, size: int) -> Page:
    """Users newest first with their account, filtered by a piece of their email."""
    query = sa.select(User).options(sa.orm.joinedload(User.account))
    if q.strip():
        query = query.where(User.email.like(_like(q.strip().lower()), escape="\\"))
    return keyset_page(query, User, before, size)


@dataclass(frozen=True)
class PurchaseFilter:
    status: str = ""
    q: str = ""
    source: str = ""  # checkout or auto_recharge
    start: date | None = None  # first day included (UTC)
    end: date | None = None  # last day included (UTC)

    def apply(self, query: sa.Select) -> sa.Select:
        if self.status:
            query = query.where(Purchase.status == self.status)
        if self.source:
            query = query.where(Purchase.source == self.source)
        if self.q.strip():
            matching = sa.select(User.id).where(
                User.email.like(_like(self.q.strip().lower()), escape="\\")
            )
            query = query.where(Purchase.user_id.in_(matching))
        if self.start:
            query = query.where(
                Purchase.created_at >= datetime.combine(self.start, time.min, tzinfo=UTC)
            )
        if self.end:
            query = query.where(
                Purchase.created_at
                < datetime.combine(self.end + timedelta(days=1), time.min, tzinfo=UTC)
            )
        return query


def purchases_admin_page(filters: PurchaseFilter, before: int | None, size: int) -> Page:
    query = filters.apply(sa.select(Purchase).options(sa.orm.joinedload(Purchase.user)))
    if filters.start or filters.end:
        # A date range walks the (created_at, id) index: walking ids from the newest
        # would first skip every purchase made after the range.
        return keyset_page(query, Purchase, before, size, by_time=True)
    return keyset_page(query, Purchase, before, size)


def purchases_in_batches(filters: PurchaseFilter, batch_size: int = 1000):
    """Every matching purchase newest first, one keyset batch (a list) at a time."""
    before = None
    while True:
        page = purchases_admin_page(filters, before, batch_size)
        if page.items:
            yield page.items
        if page.next_before is None:
            return
        before = page.next_before
        for purchase in page.items:  # keep memory flat: the batch is already written out
            db.session.expunge(purchase)


def events_page(outcome: str, before: int | None, size: int) -> Page:
    query = sa.select(StripeEvent)
    if outcome:
        query = query.where(StripeEvent.outcome == outcome)
    return keyset_page(query, StripeEvent, before, size)


def admin_actions_for(target_type: str, target_id: int, limit: int = 50) -> list[AdminAction]:
    return list(
        db.session.scalars(
            sa.select(AdminAction)
            .options(sa.orm.joinedload(AdminAction.admin))
            .where(AdminAction.target_type == target_type, AdminAction.target_id == target_id)
            .order_by(AdminAction.id.desc())
            .limit(limit)
        )
    )


def subscriptions_page(before: int | None, size: int) -> Page:
    query = sa.select(Subscription).options(sa.orm.joinedload(Subscription.user))
    return keyset_page(query, Subscription, before, size)


def invoices_held_for_review(limit: int = 100) -> list[CreditGrant]:
    """Paid subscription invoices that granted nothing, newest first (partial index)."""
    return list(
        db.session.scalars(
            sa.select(CreditGrant)
            .where(CreditGrant.review_reason.is_not(None))
            .order_by(CreditGrant.id.desc())
            .limit(limit)
        )
    )
