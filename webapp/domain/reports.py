"""Read-only views of accounts, ledgers and purchases, paginated by keyset."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa

from webapp.domain import clock
from webapp.extensions import db
from webapp.models import (
    AdminAction,
    CreditAccount,
    CreditGrant,
    EntryKind,
    EventOutcome,
    LedgerEntry,
    Purchase,
    PurchaseStatus,
    StripeEvent,
    Subscription,
    User,
)
from webapp.models.types import utcnow


@dataclass(frozen=True)
class Page:
    items: list[Any]
    next_before: int | None  # pass as ?before= for the next (older) page


def account_for(user_id: int) -> CreditAccount:
    account = db.session.get(CreditAccount, user_id)
    if account is None:
        return CreditAccount(user_id=user_id, balance=0, purchased=0, granted=0, used=0,
                             expiring=0)
    return without_due_grants(account)


def balance_json(account: CreditAccount) -> dict[str, Any]:
    return {"balance": account.balance, "purchased": account.purchased + account.granted,
            "used": account.used,
            "expiring": [{"credits": grant.remaining, "expires_at": _iso_z(grant.expires_at)}
                         for grant in expiring_grants(account)]}


def keyset_page(query: sa.Select, id_column, before: int | None, size: int) -> Page:
    """Newest first, `size` rows with id below `before`; reads one extra row to know if more."""
    if before:
        query = query.where(id_column < before)
    rows = list(db.session.scalars(query.order_by(id_column.desc()).limit(size + 1)))
    more = len(rows) > size
    rows = rows[:size]
    return Page(rows, rows[-1].id if more and rows else None)


def ledger_page(user_id: int, before: int | None, size: int) -> Page:
    query = (sa.select(LedgerEntry).where(LedgerEntry.user_id == user_id)
             .options(sa.orm.joinedload(LedgerEntry.purchase)))
    return keyset_page(query, LedgerEntry.id, before, size)


def purchases_page(user_id: int, before: int | None, size: int) -> Page:
    query = sa.select(Purchase).where(Purchase.user_id == user_id)
    return keyset_page(query, Purchase.id, before, size)


# --- expiring credits and subscriptions


def _open_grants(user_id: int) -> sa.Select:
    return (sa.select(CreditGrant)
            .where(CreditGrant.user_id == user_id, CreditGrant.expired_at.is_(None),
                   CreditGrant.expires_at.is_not(None), CreditGrant.remaining > 0)
            .order_by(CreditGrant.expires_at, CreditGrant.id))


def expiring_grants(account: CreditAccount) -> list[CreditGrant]:
    """Unexpired grants with credits left, soonest expiry first (none: no query)."""
    if account.next_expiry_at is None:
        return []
    return list(db.session.scalars(_open_grants(account.user_id)
                                   .where(CreditGrant.expires_at > clock.now())))


def without_due_grants(account: CreditAccount) -> CreditAccount:
    """The account as it stands once due grants expire: expired credits never count,
    even before the expiry command has written them off. A copy, never flushed."""
    now = clock.now()
    if account.next_expiry_at is None or account.next_expiry_at > now:
        return account
    due = sum(grant.remaining for grant in db.session.scalars(
        _open_grants(account.user_id).where(CreditGrant.expires_at <= now)))
    gone = max(0, min(due, account.balance))
    return CreditAccount(user_id=account.user_id, balance=account.balance - gone,
                         purchased=account.purchased, granted=account.granted,
                         used=account.used, expiring=account.expiring - due,
                         next_expiry_at=account.next_expiry_at)


def _iso_z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def subscriptions_page(before: int | None, size: int) -> Page:
    query = sa.select(Subscription).options(sa.orm.joinedload(Subscription.user))
    return keyset_page(query, Subscription.id, before, size)


# --- usage chart


@dataclass(frozen=True)
class DayTotals:
    day: date
    bought: int  # purchases and plan grants
    spent: int  # usage


def _day_of(column):
    """The UTC calendar day of a timestamp column (a timestamp on PostgreSQL, text on SQLite)."""
    if db.engine.dialect.name == "postgresql":
        return sa.func.date_trunc("day", sa.func.timezone("UTC", column))
    return sa.func.strftime("%Y-%m-%d", column)  # SQLite stores naive UTC


def _as_date(value) -> date:
    return value.date() if isinstance(value, datetime) else date.fromisoformat(value)


def credits_by_day(user_id: int, days: int = 30, today: date | None = None) -> list[DayTotals]:
    """Credits bought and spent per UTC day, oldest first, `days` days ending today.

    One grouped query over the user's rows in the window (index on user_id, created_at).
    """
    today = today or utcnow().date()
    first = today - timedelta(days=days - 1)
    since = datetime.combine(first, time.min, tzinfo=UTC)
    day = _day_of(LedgerEntry.created_at).label("day")
    bought = sa.func.sum(sa.case(
        (LedgerEntry.kind.in_((EntryKind.PURCHASE, EntryKind.GRANT)), LedgerEntry.credits),
        else_=0))
    spent = sa.func.sum(sa.case((LedgerEntry.kind == EntryKind.USAGE, -LedgerEntry.credits),
                                else_=0))
    rows = db.session.execute(
        sa.select(day, bought, spent)
        .where(LedgerEntry.user_id == user_id, LedgerEntry.created_at >= since)
        .group_by(day)
    ).all()
    found = {_as_date(row[0]): (int(row[1] or 0), int(row[2] or 0)) for row in rows}
    result = []
    for offset in range(days):
        current = first + timedelta(days=offset)
        b, s = found.get(current, (0, 0))
        result.append(DayTotals(current, b, s))
    return result


# --- admin views


@dataclass(frozen=True)
class Dashboard:
    credits_sold: int
    credits_granted: int
    credits_used: int
    outstanding: int
    revenue: list[tuple[str, int, int]]  # currency, charged, refunded (minor units)
    by_status: dict[str, int]
    failed_events_24h: int
    recent_failures: list[StripeEvent]


_REVENUE_STATUSES = (PurchaseStatus.PAID, PurchaseStatus.REFUNDED,
                     PurchaseStatus.PARTIALLY_REFUNDED, PurchaseStatus.DISPUTED)


def dashboard() -> Dashboard:
    """Totals for /admin/: running totals from credit_accounts, grouped purchase counts."""
    account = CreditAccount.__table__.c
    sold, granted, used, outstanding = db.session.execute(sa.select(
        *(sa.func.coalesce(sa.func.sum(c), 0) for c in
          (account.purchased, account.granted, account.used, account.balance)))).one()
    # One pass over purchases gives both the counts by status and revenue by currency.
    grouped = db.session.execute(
        sa.select(Purchase.status, Purchase.currency, sa.func.count(),
                  sa.func.sum(Purchase.amount_cents), sa.func.sum(Purchase.amount_refunded_cents))
        .group_by(Purchase.status, Purchase.currency)).all()
    by_status = {status: 0 for status in tuple(PurchaseStatus)}
    revenue: dict[str, tuple[int, int]] = {}
    for status, currency, count, charged, refunded in grouped:
        by_status[status] = by_status.get(status, 0) + count
        if status in _REVENUE_STATUSES:
            before = revenue.get(currency, (0, 0))
            revenue[currency] = (before[0] + int(charged or 0), before[1] + int(refunded or 0))
    since = utcnow() - timedelta(hours=24)
    failed = sa.select(StripeEvent).where(StripeEvent.outcome == EventOutcome.FAILED,
                                          StripeEvent.received_at >= since)
    failed_count = db.session.scalar(sa.select(sa.func.count()).select_from(failed.subquery()))
    # Failed events are few: the (outcome, id) index finds them, newest first by id.
    recent = list(db.session.scalars(failed.order_by(StripeEvent.id.desc()).limit(10)))
    return Dashboard(int(sold), int(granted), int(used), int(outstanding),
                     [(c, *revenue[c]) for c in sorted(revenue)], by_status,
                     failed_count or 0, recent)


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def users_page(q: str, before: int | None, size: int) -> Page:
    """Users newest first with their account, filtered by a piece of their email."""
    query = sa.select(User).options(sa.orm.joinedload(User.account))
    if q.strip():
        query = query.where(User.email.like(_like(q.strip().lower()), escape="\\"))
    return keyset_page(query, User.id, before, size)


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
                User.email.like(_like(self.q.strip().lower()), escape="\\"))
            query = query.where(Purchase.user_id.in_(matching))
        if self.start:
            query = query.where(Purchase.created_at >= datetime.combine(
                self.start, time.min, tzinfo=UTC))
        if self.end:
            query = query.where(Purchase.created_at < datetime.combine(
                self.end + timedelta(days=1), time.min, tzinfo=UTC))
        return query


def purchases_admin_page(filters: PurchaseFilter, before: int | None, size: int) -> Page:
    query = filters.apply(sa.select(Purchase).options(sa.orm.joinedload(Purchase.user)))
    if filters.start or filters.end:
        # A date range walks the (created_at, id) index: walking ids from the newest
        # would first skip every purchase made after the range.
        return time_keyset_page(query, Purchase, before, size)
    return keyset_page(query, Purchase.id, before, size)


def time_keyset_page(query: sa.Select, model, before: int | None, size: int) -> Page:
    """Like keyset_page, newest first by (created_at, id); `before` is still the last id."""
    if before:
        cursor = db.session.get(model, before)
        if cursor is not None:
            query = query.where(sa.tuple_(model.created_at, model.id)
                                < sa.tuple_(sa.literal(cursor.created_at, model.created_at.type),
                                            sa.literal(cursor.id)))
    rows = list(db.session.scalars(
        query.order_by(model.created_at.desc(), model.id.desc()).limit(size + 1)))
    more = len(rows) > size
    rows = rows[:size]
    return Page(rows, rows[-1].id if more and rows else None)


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
    return keyset_page(query, StripeEvent.id, before, size)


def admin_actions_for(target_type: str, target_id: int, limit: int = 50) -> list[AdminAction]:
    return list(db.session.scalars(
        sa.select(AdminAction).options(sa.orm.joinedload(AdminAction.admin))
        .where(AdminAction.target_type == target_type, AdminAction.target_id == target_id)
        .order_by(AdminAction.id.desc()).limit(limit)))
