"""Read-only views of accounts, ledgers and purchases, paginated by keyset."""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from webapp.domain import clock
from webapp.extensions import db
from webapp.models import CreditAccount, CreditGrant, LedgerEntry, Purchase, Subscription


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


def purchase_for_session(user_id: int, session_id: str) -> Purchase | None:
    return db.session.scalar(sa.select(Purchase).where(
        Purchase.stripe_checkout_session_id == session_id, Purchase.user_id == user_id))


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
