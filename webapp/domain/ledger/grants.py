"""Plan grants, their expiry and draw-down, and usage debits that spend expiring credits first."""

from datetime import UTC, datetime

import sqlalchemy as sa

from webapp.domain import clock
from webapp.domain.errors import InvalidAmountError
from webapp.domain.ledger.entries import current_balance, lock_account, post_entry
from webapp.domain.ledger.hold_expiry import release_due_holds_locked
from webapp.domain.sql import insert_ignoring_duplicates, locked
from webapp.domain.transaction import atomic
from webapp.extensions import db
from webapp.models import CreditAccount, CreditGrant, EntryKind
from webapp.models.types import utcnow


def grant_plan_credits(
    user_id: int,
    credits: int,
    *,
    invoice_id: str,
    plan_code: str,
    subscription_id: int | None,
    expires_at: datetime | None,
) -> int | None:
    """Grant a paid subscription invoice's `credits` once per invoice id; commits (or joins).

    `expires_at` is None for plans that roll over. Returns the new grant's id, or None
    when this invoice was granted before (then nothing changes).
    """
    with atomic():
        grant_id = db.session.execute(
            insert_ignoring_duplicates(
                CreditGrant,
                {
                    "user_id": user_id,
                    "subscription_id": subscription_id,
                    "stripe_invoice_id": invoice_id,
                    "plan_code": plan_code,
                    "credits": credits,
                    "remaining": credits,
                    "expires_at": expires_at,
                    "created_at": utcnow(),
                },
                CreditGrant.stripe_invoice_id,
            ).returning(CreditGrant.id)
        ).scalar_one_or_none()
        if grant_id is None:
            return None
        post_entry(
            user_id,
            credits,
            EntryKind.GRANT,
            grant_id=grant_id,
            reference=invoice_id,
            description=f"{plan_code} plan: {credits:,} credits",
        )
        if expires_at is not None:
            _refresh_expiry_summary(user_id)
        return grant_id


def expire_account_grants(user_id: int) -> int:
    """Expire the account's grants whose time has come; returns credits expired; commits.

    One `expiry` ledger row per expired remainder. The account row is locked first, so
    debits and other expiry runs (other hosts) wait and then find nothing left to do.
    """
    with atomic():
        if lock_account(user_id) is None:
            return 0
        return _expire_due(user_id, clock.now())


def expire_due_grants() -> list[tuple[int, int]]:
    """Expire every account's due grants, one transaction per account (each commits).

    Returns (user_id, credits expired) for each account looked at.
    """
    now = clock.now()
    user_ids = db.session.scalars(
        sa.select(CreditGrant.user_id)
        .distinct()
        .where(CreditGrant.expired_at.is_(None), CreditGrant.expires_at <= now)
    ).all()
    db.session.rollback()  # end the read transaction before locking accounts one by one
    return [(user_id, expire_account_grants(user_id)) for user_id in user_ids]


def _open_expiring_grants(user_id: int):
    """Grants that still expire some day and are not expired yet, soonest first."""
    return (
        sa.select(CreditGrant)
        .where(
            CreditGrant.user_id == user_id,
            CreditGrant.expired_at.is_(None),
            CreditGrant.expires_at.is_not(None),
        )
        .order_by(CreditGrant.expires_at, CreditGrant.id)
    )


def _expire_due(user_id: int, now: datetime) -> int:
    """Expire due grants of an account the caller has locked; returns credits expired."""
    due = db.session.scalars(
        locked(_open_expiring_grants(user_id).where(CreditGrant.expires_at <= now))
    ).all()
    if not due:
        return 0
    balance = current_balance(user_id)
    expired = 0
    for grant in due:
        # A refund or dispute may have taken credits already; expiry never goes below zero.
        amount = max(0, min(grant.remaining, balance))
        grant.remaining, grant.expired_at = 0, now
        if amount:
            balance = post_entry(
                user_id,
                -amount,
                EntryKind.EXPIRY,
                grant_id=grant.id,
                reference=grant.stripe_invoice_id,
                description=f"{grant.plan_code} plan credits expired",
            )
            expired += amount
    _refresh_expiry_summary(user_id)
    return expired


def _draw_down(user_id: int, credits: int) -> None:
    """Take `credits` just spent from the expiring grants, soonest expiry first."""
    left = credits
    grants = db.session.scalars(
        locked(_open_expiring_grants(user_id).where(CreditGrant.remaining > 0))
    )
    for grant in grants:
        take = min(left, grant.remaining)
        grant.remaining -= take
        left -= take
        if left == 0:
            break
    _refresh_expiry_summary(user_id)


def _refresh_expiry_summary(user_id: int) -> None:
    """Recompute the account's `expiring` and `next_expiry_at` from its open grants."""
    open_grants = _open_expiring_grants(user_id).where(CreditGrant.remaining > 0).subquery()
    expiring, next_at = db.session.execute(
        sa.select(
            sa.func.coalesce(sa.func.sum(open_grants.c.remaining), 0),
            sa.func.min(open_grants.c.expires_at),
        )
    ).one()
    if isinstance(next_at, str):  # SQLite returns min() of a datetime column as text
        next_at = datetime.fromisoformat(next_at).replace(tzinfo=UTC)
    elif next_at is not None and next_at.tzinfo is None:
        next_at = next_at.replace(tzinfo=UTC)
    db.session.execute(
        sa.update(CreditAccount)
        .where(CreditAccount.user_id == user_id)
        .values(expiring=expiring, next_expiry_at=next_at)
    )


def debit_usage(
    user_id: int,
    credits: int,
    description: str,
    *,
    reference: str | None = None,
    api_key_id: int | None = None,
) -> int:
    """Spend `credits` (> 0) for usage; returns the new balance; commits (or joins).

    The balance never goes below zero, however many debits run at once; a short
    balance raises InsufficientCreditsError and changes nothing. An account without
    expiring grants takes one conditional UPDATE and one INSERT. Otherwise its due
    grants expire first (committed on their own when not nested), then the debit
    draws expiring grants down, soonest expiry first, before purchased credits.
    """
    if credits <= 0:
        raise InvalidAmountError("credits must be an integer of at least 1")
    refs = {"reference": reference, "description": description[:500] or None}
    if api_key_id is not None:
        refs["api_key_id"] = api_key_id
    with atomic():
        balance = post_entry(
            user_id, -credits, EntryKind.USAGE, allow_negative=False, unless_expiring=True, **refs
        )
    if balance is not None:
        return balance
    expire_account_grants(user_id)
    with atomic():
        lock_account(user_id)
        _expire_due(user_id, clock.now())  # time moved on since the commit above
        release_due_holds_locked(user_id, clock.now())  # a due hold reserves nothing
        balance = post_entry(user_id, -credits, EntryKind.USAGE, allow_negative=False, **refs)
        _draw_down(user_id, credits)
        return balance
