"""Plan grants, their expiry, and the debits that spend expiring credits first (usage, removals by hand)."""

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from webapp.domain import clock
from webapp.domain.errors import InvalidAmountError
from webapp.domain.ledger.entries import current_balance, lock_account, post_entry
from webapp.domain.ledger.hold_expiry import release_due_holds_locked
from webapp.domain.ledger.remainders import (
    give_back,
    open_expiring_grants,
    refresh_expiry_summary,
)
from webapp.domain.limits import check_credits
from webapp.domain.sql import insert_ignoring_duplicates, locked
from webapp.domain.transaction import atomic
from webapp.extensions import db
from webapp.models import CreditAccount, CreditGrant, EntryKind, LedgerEntry
from webapp.models.types import utcnow


@dataclass(frozen=True)
class InvoicePayment:
    """What paid a subscription invoice: refunds and disputes of it find the grant."""

    amount_cents: int
    currency: str
    charge_id: str | None = None
    payment_intent_id: str | None = None


def grant_plan_credits(
    user_id: int,
    credits: int,
    *,
    invoice_id: str,
    plan_code: str,
    subscription_id: int | None,
    expires_at: datetime | None,
    payment: InvoicePayment | None = None,
) -> int | None:
    """Grant a paid subscription invoice's `credits` once per invoice id; commits (or joins).

    `expires_at` is None for plans that roll over. `payment` links the grant to the
    invoice's charge so refunds and disputes take the credits back. Returns the new
    grant's id, or None when this invoice was granted (or held for review) before: then
    nothing changes.
    """
    with atomic():
        grant_id = _insert_grant(
            user_id,
            invoice_id,
            plan_code,
            subscription_id,
            payment,
            credits=credits,
            expires_at=expires_at,
        )
        if grant_id is None:
            return None
        balance = post_entry(
            user_id,
            credits,
            EntryKind.GRANT,
            grant_id=grant_id,
            reference=invoice_id,
            description=f"{plan_code} plan: {credits:,} credits",
        )
        if expires_at is not None:
            give_back(db.session.get(CreditGrant, grant_id), credits, balance)
        return grant_id


def hold_invoice_for_review(
    user_id: int,
    *,
    invoice_id: str,
    plan_code: str | None,
    subscription_id: int | None,
    reason: str,
    payment: InvoicePayment | None = None,
) -> int | None:
    """Record a paid invoice that grants nothing until an admin looks (shown on the admin
    pages); once per invoice id, like a grant. Returns the row's id, None when seen before."""
    with atomic():
        return _insert_grant(
            user_id,
            invoice_id,
            plan_code,
            subscription_id,
            payment,
            credits=0,
            expires_at=None,
            review_reason=reason[:500],
        )


def _insert_grant(user_id, invoice_id, plan_code, subscription_id, payment, **values):
    payment = payment or InvoicePayment(0, "")
    row = {
        "user_id": user_id,
        "subscription_id": subscription_id,
        "stripe_invoice_id": invoice_id,
        "plan_code": plan_code,
        "remaining": 0,
        "stripe_charge_id": payment.charge_id,
        "stripe_payment_intent_id": payment.payment_intent_id,
        "amount_cents": payment.amount_cents,
        "currency": payment.currency or None,
        "created_at": utcnow(),
        **values,
    }
    if row["expires_at"] is None:
        row["remaining"] = row["credits"]
    return insert_ignoring_duplicates(
        CreditGrant, row, CreditGrant.stripe_invoice_id, returning=CreditGrant.id
    )


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


def _expire_due(user_id: int, now: datetime) -> int:
    """Expire due grants of an account the caller has locked; returns credits expired."""
    due = db.session.scalars(
        locked(open_expiring_grants(user_id).where(CreditGrant.expires_at <= now))
    ).all()
    if not due:
        return 0
    balance = current_balance(user_id)
    expired = 0
    for grant in due:
        # Debits keep remainders within the balance; the floor guards older rows only.
        amount = max(0, min(grant.remaining, balance))
        if amount:
            # The debit draws this grant's own remainder down first (remainders.draw_down).
            balance = post_entry(
                user_id,
                -amount,
                EntryKind.EXPIRY,
                grant_id=grant.id,
                reference=grant.stripe_invoice_id,
                description=f"{grant.plan_code} plan credits expired",
            )
            expired += amount
        grant.remaining, grant.expired_at = 0, now
    refresh_expiry_summary(user_id)
    return expired


def expired_credits(grant: CreditGrant) -> int:
    """Credits the grant's expiry wrote off: the sum of its `expiry` ledger rows (0 while
    it runs). Refunds and disputes must not take these a second time."""
    if grant.expired_at is None:
        return 0
    written_off = db.session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(LedgerEntry.credits), 0)).where(
            LedgerEntry.user_id == grant.user_id,  # its index narrows the rows read
            LedgerEntry.grant_id == grant.id,
            LedgerEntry.kind == EntryKind.EXPIRY,
        )
    )
    return -int(written_off)


def with_due_grants_expired(account: CreditAccount) -> CreditAccount:
    """The account as it stands once its due grants expire: expired credits never count,
    even before the expiry command has written them off. A copy, never flushed; reads only."""
    now = clock.now()
    if account.next_expiry_at is None or account.next_expiry_at > now:
        return account
    due_grants = open_expiring_grants(account.user_id).where(
        CreditGrant.remaining > 0, CreditGrant.expires_at <= now
    )
    due = sum(grant.remaining for grant in db.session.scalars(due_grants))
    gone = max(0, min(due, account.balance))
    return CreditAccount(
        user_id=account.user_id,
        balance=account.balance - gone,
        purchased=account.purchased,
        granted=account.granted,
        used=account.used,
        expiring=account.expiring - due,
        next_expiry_at=account.next_expiry_at,
        held=account.held,
        next_hold_expiry_at=account.next_hold_expiry_at,
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
    check_credits(credits)
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
        lock_with_due_settled(user_id, clock.now())  # time moved on since the commit above
        # post_entry draws the expiring grants down, soonest expiry first.
        return post_entry(user_id, -credits, EntryKind.USAGE, allow_negative=False, **refs)


def adjust(user_id: int, credits: int, reason: str, *, actor_id: int | None = None) -> int:
    """Add (or with a negative number, remove) credits by hand; returns the balance; commits.

    `reason` is required. A removal never takes the available credits (balance - held)
    below zero (InsufficientCreditsError, nothing changes) and, like usage, is checked
    and drawn down only after the account's due grants expire and due holds stop
    counting. `actor_id` is the admin who did it, None for operators.
    """
    if credits == 0 or not reason.strip():
        raise InvalidAmountError("An adjustment needs a non-zero number of credits and a reason.")
    check_credits(credits, allow_negative=True)
    with atomic():
        if credits < 0:
            lock_with_due_settled(user_id, clock.now())
        return post_entry(
            user_id,
            credits,
            EntryKind.ADJUSTMENT,
            allow_negative=False,
            actor_id=actor_id,
            description=reason.strip()[:500],
        )


def lock_with_due_settled(user_id: int, now: datetime) -> bool:
    """Lock the account and settle what is due at `now`: its due grants expire (their
    `expiry` rows written) and its due holds stop counting, so whatever follows in the
    caller's transaction checks and spends only live credits. Joins; False when the
    user has no account (then nothing happened)."""
    if lock_account(user_id) is None:
        return False
    _expire_due(user_id, now)
    release_due_holds_locked(user_id, now)
    return True
