"""Posting: every balance change is one conditional UPDATE of the account and one ledger row."""

import functools
from typing import Any

import sqlalchemy as sa

from webapp.domain import notices
from webapp.domain.errors import InsufficientCreditsError, InvalidAmountError
from webapp.domain.sql import is_postgresql, locked
from webapp.domain.transaction import atomic
from webapp.extensions import db
from webapp.models import CreditAccount, EntryKind, LedgerEntry
from webapp.models.types import utcnow

# Which running total on the account a kind of entry moves, besides the balance.
_TOTAL_FOR_KIND = {
    EntryKind.PURCHASE: "purchased",
    EntryKind.GRANT: "granted",
    EntryKind.USAGE: "used",
}


def open_account(user_id: int) -> None:
    """Create the user's empty credit account (joins the caller's transaction)."""
    db.session.add(CreditAccount(user_id=user_id, balance=0))


def post_entry(
    user_id: int,
    credits: int,
    kind: str,
    *,
    allow_negative: bool = True,
    unless_expiring: bool = False,
    **refs: Any,
) -> int | None:
    """Move `credits` (signed) on the account and append the ledger row; returns the balance.

    Joins the caller's transaction: the row and the balance commit together or not at
    all. With `allow_negative=False` a debit that would go below zero changes nothing
    and raises InsufficientCreditsError. `refs` are LedgerEntry columns (purchase_id,
    grant_id, actor_id, reference, description). With `unless_expiring`, an account
    holding expiring grants (or failing the balance check) changes nothing and the call
    returns None instead of raising: the caller then takes the grant-aware path.
    """
    total = _TOTAL_FOR_KIND.get(kind)
    params = {
        "b_user_id": user_id,
        "b_credits": credits,
        "b_magnitude": abs(credits),
        "b_now": utcnow(),
        "b_kind": kind,
        **{f"b_{name}": v for name, v in refs.items()},
    }
    if is_postgresql():
        statement = _update_and_insert(total, allow_negative, unless_expiring, tuple(sorted(refs)))
        moved = db.session.execute(statement, params).first()
    else:
        update = _balance_update(total, allow_negative, unless_expiring)
        moved = db.session.execute(update, params).first()
        if moved is not None:
            row = {"user_id": user_id, "kind": kind, "credits": credits, "balance_after": moved[0]}
            db.session.execute(_LEDGER_INSERT, {**row, "created_at": params["b_now"], **refs})
    if moved is None and unless_expiring:
        return None
    if moved is None:
        raise InsufficientCreditsError(current_balance(user_id))
    balance, recharge_below = moved
    if credits < 0:
        notices.balance_fell(user_id, balance, -credits)
    if recharge_below is not None and balance < recharge_below and kind in _RECHARGING_KINDS:
        _after_debit(user_id, balance)
    return balance


# Debits that may start an auto-recharge, in their own transaction (the account is locked).
# The account's `auto_recharge_below` (the threshold while auto-recharge is on) comes back
# with the balance, so other debits cost no extra statement.
_RECHARGING_KINDS = (EntryKind.USAGE, EntryKind.EXPIRY)


def _after_debit(user_id: int, balance: int) -> None:
    from webapp.domain.ledger import autorecharge  # it builds on purchases, which import us

    autorecharge.after_debit(user_id, balance)


# Built once: a prebuilt statement's cache key is memoised, so every webhook and API debit
# skips constructing and hashing these statements again.
_LEDGER_INSERT = sa.insert(LedgerEntry.__table__)


@functools.cache
def _balance_update(total: str | None, allow_negative: bool, unless_expiring: bool) -> sa.Update:
    """UPDATE the account by :b_credits (and a running total by :b_magnitude) RETURNING it
    and its auto-recharge threshold."""
    account = CreditAccount.__table__.c
    credits = sa.bindparam("b_credits", type_=account.balance.type)
    values = {
        "balance": account.balance + credits,
        "updated_at": sa.bindparam("b_now", type_=account.updated_at.type),
    }
    if total:
        values[total] = account[total] + sa.bindparam("b_magnitude", type_=account.balance.type)
    update = sa.update(CreditAccount.__table__).where(
        account.user_id == sa.bindparam("b_user_id", type_=account.user_id.type)
    )
    if not allow_negative:
        update = update.where(account.balance + credits >= 0)
    if unless_expiring:
        update = update.where(account.next_expiry_at.is_(None))
    return update.values(values).returning(account.balance, account.auto_recharge_below)


@functools.cache
def _update_and_insert(
    total: str | None, allow_negative: bool, unless_expiring: bool, ref_names: tuple[str, ...]
) -> sa.Select:
    """PostgreSQL: the balance UPDATE and the ledger INSERT in one statement (one round
    trip): WITH moved AS (UPDATE ... RETURNING balance, auto_recharge_below), inserted AS
    (INSERT ... SELECT FROM moved RETURNING balance_after) SELECT both. When the UPDATE
    matches nothing (a short balance), nothing is inserted and no row comes back."""
    moved = _balance_update(total, allow_negative, unless_expiring).cte("moved")
    ledger = LedgerEntry.__table__.c
    names = ("user_id", "kind", "credits", "balance_after", "created_at", *ref_names)

    def value(name: str):
        if name == "balance_after":
            return moved.c.balance
        param = "b_now" if name == "created_at" else f"b_{name}"
        return sa.bindparam(param, type_=ledger[name].type)

    row = sa.select(*(value(name) for name in names))
    inserted = (
        sa.insert(LedgerEntry.__table__)
        .from_select(names, row)
        .returning(ledger.balance_after)
        .cte("inserted")
    )
    return sa.select(inserted.c.balance_after, moved.c.auto_recharge_below).select_from(
        moved.join(inserted, sa.true())
    )


def current_balance(user_id: int) -> int:
    """The account's balance in credits as the current transaction sees it (0 without one)."""
    return (
        db.session.scalar(sa.select(CreditAccount.balance).where(CreditAccount.user_id == user_id))
        or 0
    )


def lock_account(user_id: int) -> CreditAccount | None:
    """The account row, locked until the transaction ends (None when there is none)."""
    return db.session.scalars(
        locked(sa.select(CreditAccount).where(CreditAccount.user_id == user_id))
    ).first()


def adjust(user_id: int, credits: int, reason: str, *, actor_id: int | None = None) -> int:
    """Add (or with a negative number, remove) credits by hand; returns the balance; commits.

    `reason` is required. A removal never takes the balance below zero
    (InsufficientCreditsError); `actor_id` is the admin who did it, None for operators.
    """
    if credits == 0 or not reason.strip():
        raise InvalidAmountError("An adjustment needs a non-zero number of credits and a reason.")
    with atomic():
        return post_entry(
            user_id,
            credits,
            EntryKind.ADJUSTMENT,
            allow_negative=False,
            actor_id=actor_id,
            description=reason.strip()[:500],
        )
