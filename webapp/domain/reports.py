"""What a user sees: their account, ledger, purchases, usage, expiring credits and chart.

Admin lists and the dashboard are in admin_reports; paging in paging."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from webapp.domain import clock, ledger
from webapp.domain.ledger.hold_expiry import held_now
from webapp.domain.ledger.remainders import open_expiring_grants
from webapp.domain.paging import Page, keyset_page
from webapp.extensions import db
from webapp.models import (
    ApiKey,
    CreditAccount,
    CreditDay,
    CreditGrant,
    EntryKind,
    LedgerEntry,
    Purchase,
)
from webapp.models.types import utcnow


def account_for(user_id: int) -> CreditAccount:
    account = db.session.get(CreditAccount, user_id)
    if account is None:
        return CreditAccount(
            user_id=user_id, balance=0, purchased=0, granted=0, used=0, expiring=0, held=0
        )
    return ledger.with_due_grants_expired(account)


def balance_json(account: CreditAccount) -> dict[str, Any]:
    held = held_now(account)
    return {
        "balance": account.balance,
        "purchased": account.purchased + account.granted,
        "used": account.used,
        "held": held,
        "available": account.balance - held,
        "expiring": [
            {"credits": grant.remaining, "expires_at": iso_z(grant.expires_at)}
            for grant in expiring_grants(account)
        ],
    }


def ledger_page(user_id: int, before: int | None, size: int) -> Page:
    query = (
        sa.select(LedgerEntry)
        .where(LedgerEntry.user_id == user_id)
        .options(sa.orm.joinedload(LedgerEntry.purchase))
    )
    return keyset_page(query, LedgerEntry, before, size)


def purchases_page(user_id: int, before: int | None, size: int) -> Page:
    query = sa.select(Purchase).where(Purchase.user_id == user_id)
    return keyset_page(query, Purchase, before, size)


# --- usage by API key


def usage_page(
    user_id: int, start: datetime | None, end: datetime | None, before: int | None, size: int
) -> Page:
    """The user's usage rows (debits and hold captures) in [start, end), newest first."""
    query = (
        sa.select(LedgerEntry)
        .where(LedgerEntry.user_id == user_id, LedgerEntry.kind == EntryKind.USAGE)
        .options(sa.orm.joinedload(LedgerEntry.api_key))
    )
    if start is not None:
        query = query.where(LedgerEntry.created_at >= start)
    if end is not None:
        query = query.where(LedgerEntry.created_at < end)
    return keyset_page(query, LedgerEntry, before, size)


@dataclass(frozen=True)
class KeySpend:
    api_key: ApiKey | None  # None: spent from a browser session or by an operator
    credits: int


def spend_by_key(user_id: int, days: int = 30) -> list[KeySpend]:
    """Credits spent as usage per API key over the last `days` days, most first."""
    since = utcnow() - timedelta(days=days)
    rows = db.session.execute(
        sa.select(LedgerEntry.api_key_id, sa.func.sum(-LedgerEntry.credits))
        .where(
            LedgerEntry.user_id == user_id,
            LedgerEntry.kind == EntryKind.USAGE,
            LedgerEntry.created_at >= since,
        )
        .group_by(LedgerEntry.api_key_id)
    ).all()
    keys = {
        key.id: key
        for key in db.session.scalars(
            sa.select(ApiKey).where(ApiKey.id.in_([r[0] for r in rows if r[0] is not None]))
        )
    }
    spends = [KeySpend(keys.get(key_id), int(total or 0)) for key_id, total in rows]
    return sorted(spends, key=lambda spend: -spend.credits)


# --- expiring credits and subscriptions


def expiring_grants(account: CreditAccount) -> list[CreditGrant]:
    """Unexpired grants with credits left, soonest expiry first (none: no query)."""
    if account.next_expiry_at is None:
        return []
    return list(
        db.session.scalars(
            open_expiring_grants(account.user_id).where(
                CreditGrant.remaining > 0, CreditGrant.expires_at > clock.now()
            )
        )
    )


def iso_z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- usage chart


@dataclass(frozen=True)
class DayTotals:
    day: date
    bought: int  # purchases and plan grants
    spent: int  # usage


def credits_by_day(user_id: int, days: int = 30, today: date | None = None) -> list[DayTotals]:
    """Credits bought and spent per UTC day, oldest first, `days` days ending today.

    Reads the user's days the ledger keeps (credit_days): at most `days` rows.
    """
    today = today or utcnow().date()
    first = today - timedelta(days=days - 1)
    rows = db.session.execute(
        sa.select(CreditDay.day, CreditDay.bought, CreditDay.spent).where(
            CreditDay.user_id == user_id, CreditDay.day >= first
        )
    ).all()
    found = {row.day: (row.bought, row.spent) for row in rows}
    result = []
    for offset in range(days):
        current = first + timedelta(days=offset)
        b, s = found.get(current, (0, 0))
        result.append(DayTotals(current, b, s))
    return result
