"""The only code that writes ledger rows or changes balances; every public call is one transaction."""

import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from webapp.domain.errors import InsufficientCreditsError, InvalidAmountError
from webapp.domain.transaction import atomic
from webapp.extensions import db
from webapp.models import CreditAccount, EntryKind, LedgerEntry, Purchase, PurchaseStatus
from webapp.models.types import utcnow

log = logging.getLogger(__name__)

# Which running total on the account a kind of entry moves, besides the balance.
_TOTAL_FOR_KIND = {EntryKind.PURCHASE: "purchased", EntryKind.GRANT: "granted",
                   EntryKind.USAGE: "used"}


class Fulfilment(StrEnum):
    CREDITED = "credited"
    ALREADY_CREDITED = "already_credited"
    PROCESSING = "processing"
    MISMATCH = "mismatch"
    NOT_PAID = "not_paid"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class FulfilmentResult:
    outcome: Fulfilment
    purchase: Purchase | None = None


def open_account(user_id: int) -> None:
    """Create the user's empty credit account (joins the caller's transaction)."""
    db.session.add(CreditAccount(user_id=user_id, balance=0))


def post_entry(user_id: int, credits: int, kind: str, *, allow_negative: bool = True,
               **refs: Any) -> int:
    """Move `credits` (signed) on the account and append the ledger row; returns the balance.

    Joins the caller's transaction: the row and the balance commit together or not at
    all. With `allow_negative=False` a debit that would go below zero changes nothing
    and raises InsufficientCreditsError. `refs` are LedgerEntry columns (purchase_id,
    grant_id, actor_id, reference, description).
    """
    total = _TOTAL_FOR_KIND.get(kind)
    params = {"b_user_id": user_id, "b_credits": credits, "b_magnitude": abs(credits),
              "b_now": utcnow(), "b_kind": kind, **{f"b_{name}": v for name, v in refs.items()}}
    if db.session.get_bind().dialect.name == "postgresql":
        balance = db.session.execute(
            _update_and_insert(total, allow_negative, tuple(sorted(refs))), params
        ).scalar_one_or_none()
    else:
        balance = db.session.execute(_balance_update(total, allow_negative),
                                     params).scalar_one_or_none()
        if balance is not None:
            db.session.execute(_LEDGER_INSERT, {
                "user_id": user_id, "kind": kind, "credits": credits, "balance_after": balance,
                "created_at": params["b_now"], **refs})
    if balance is None:
        raise InsufficientCreditsError(current_balance(user_id))
    return balance


# Built once: a prebuilt statement's cache key is memoised, so every webhook and API debit
# skips constructing and hashing these statements again.
_LEDGER_INSERT = sa.insert(LedgerEntry.__table__)


@functools.cache
def _balance_update(total: str | None, allow_negative: bool) -> sa.Update:
    """UPDATE the account by :b_credits (and a running total by :b_magnitude) RETURNING it."""
    account = CreditAccount.__table__.c
    credits = sa.bindparam("b_credits", type_=account.balance.type)
    values = {"balance": account.balance + credits,
              "updated_at": sa.bindparam("b_now", type_=account.updated_at.type)}
    if total:
        values[total] = account[total] + sa.bindparam("b_magnitude", type_=account.balance.type)
    update = sa.update(CreditAccount.__table__).where(
        account.user_id == sa.bindparam("b_user_id", type_=account.user_id.type))
    if not allow_negative:
        update = update.where(account.balance + credits >= 0)
    return update.values(values).returning(account.balance)


@functools.cache
def _update_and_insert(total: str | None, allow_negative: bool,
                       ref_names: tuple[str, ...]) -> sa.Insert:
    """PostgreSQL: the balance UPDATE and the ledger INSERT in one statement (one round
    trip): WITH moved AS (UPDATE ... RETURNING balance) INSERT ... SELECT FROM moved.
    When the UPDATE matches nothing (a short balance), nothing is inserted either."""
    moved = _balance_update(total, allow_negative).cte("moved")
    ledger = LedgerEntry.__table__.c
    names = ("user_id", "kind", "credits", "balance_after", "created_at", *ref_names)
    row = sa.select(*(
        moved.c.balance if name == "balance_after"
        else sa.bindparam("b_now" if name == "created_at" else f"b_{name}", type_=ledger[name].type)
        for name in names))
    return (sa.insert(LedgerEntry.__table__).from_select(names, row).add_cte(moved)
            .returning(ledger.balance_after))


def current_balance(user_id: int) -> int:
    return db.session.scalar(
        sa.select(CreditAccount.balance).where(CreditAccount.user_id == user_id)) or 0


_PURCHASE_BY_SESSION = sa.select(Purchase).where(
    Purchase.stripe_checkout_session_id == sa.bindparam("session_id")).with_for_update()


def _locked_purchase_for_session(session: Mapping[str, Any]) -> Purchase | None:
    """The purchase behind a Checkout Session, row-locked until the transaction ends.

    Found by session id; a session whose id was never stored (the app stopped between
    creating it and saving the id) is matched through its metadata instead.
    """
    purchase = db.session.scalars(_PURCHASE_BY_SESSION, {"session_id": session["id"]}).first()
    if purchase is not None:
        return purchase
    metadata = session.get("metadata") or {}
    purchase_id, user_id = metadata.get("purchase_id"), metadata.get("user_id")
    if not (str(purchase_id).isdigit() and str(user_id).isdigit()):
        return None
    by_metadata = sa.select(Purchase).where(
        Purchase.id == int(purchase_id), Purchase.user_id == int(user_id),
        Purchase.stripe_checkout_session_id.is_(None))
    purchase = db.session.scalars(by_metadata.with_for_update()).first()
    if purchase is not None:
        purchase.stripe_checkout_session_id = session["id"]
    return purchase


def _mismatch(purchase: Purchase, session: Mapping[str, Any]) -> str | None:
    amount, currency = session.get("amount_total"), (session.get("currency") or "").lower()
    if amount != purchase.amount_cents or currency != purchase.currency:
        return (f"Stripe reported {amount} {currency or '?'} but the purchase was "
                f"recorded at {purchase.amount_cents} {purchase.currency}")
    return None


def fulfil_checkout_session(session: Mapping[str, Any]) -> FulfilmentResult:
    """Credit the purchase behind a Checkout Session at most once; commits.

    `session` is the Checkout Session as Stripe reports it (webhook, success page or
    reconcile). The credits are those recorded when the purchase was created. An
    unpaid completed session (a delayed method) marks the purchase processing; a
    different amount or currency credits nothing and flags the purchase for review.
    """
    with atomic():
        purchase = _mark_paid_if_payable(session)
        if purchase is not None:
            _post_purchase_credit(purchase, session)
            return FulfilmentResult(Fulfilment.CREDITED, purchase)
        purchase = _locked_purchase_for_session(session)
        if purchase is None:
            return FulfilmentResult(Fulfilment.UNKNOWN)
        if purchase.credited_at is not None:
            return FulfilmentResult(Fulfilment.ALREADY_CREDITED, purchase)
        if purchase.status == PurchaseStatus.NEEDS_REVIEW:
            return FulfilmentResult(Fulfilment.MISMATCH, purchase)
        reason = _mismatch(purchase, session)
        if reason:
            _set_status(purchase, PurchaseStatus.NEEDS_REVIEW, review_reason=reason)
            log.warning("purchase %s needs review: %s", purchase.id, reason)
            return FulfilmentResult(Fulfilment.MISMATCH, purchase)
        payment_status = session.get("payment_status")
        if payment_status not in ("paid", "no_payment_required"):
            if session.get("status") == "complete" and purchase.status == PurchaseStatus.PENDING:
                _set_status(purchase, PurchaseStatus.PROCESSING)
                return FulfilmentResult(Fulfilment.PROCESSING, purchase)
            return FulfilmentResult(Fulfilment.NOT_PAID, purchase)
        _credit_purchase(purchase, session)
        return FulfilmentResult(Fulfilment.CREDITED, purchase)


def _credit_purchase(purchase: Purchase, session: Mapping[str, Any]) -> None:
    now = utcnow()
    _set_status(purchase, PurchaseStatus.PAID, credited_at=now,
                stripe_payment_intent_id=_id_of(session.get("payment_intent")))
    db.session.flush()
    _post_purchase_credit(purchase, session)


def _post_purchase_credit(purchase: Purchase, session: Mapping[str, Any]) -> None:
    post_entry(purchase.user_id, purchase.credits, EntryKind.PURCHASE,
               purchase_id=purchase.id, reference=session["id"],
               description=f"Bought {purchase.credits:,} credits")


# The usual delivery in one statement: the conditional UPDATE takes the row lock and
# re-checks its conditions after any wait, so it credits exactly when the locked checks in
# fulfil_checkout_session would; every other case matches no row and goes through those.
_MARK_PAID = (
    sa.update(Purchase)
    .where(Purchase.stripe_checkout_session_id == sa.bindparam("b_session_id"),
           Purchase.credited_at.is_(None),
           Purchase.status != PurchaseStatus.NEEDS_REVIEW,
           Purchase.amount_cents == sa.bindparam("b_amount", type_=sa.BigInteger),
           Purchase.currency == sa.bindparam("b_currency", type_=sa.String))
    .values(status=PurchaseStatus.PAID,
            credited_at=sa.bindparam("b_now", type_=Purchase.credited_at.type),
            updated_at=sa.bindparam("b_now", type_=Purchase.updated_at.type),
            stripe_payment_intent_id=sa.func.coalesce(
                sa.bindparam("b_payment_intent", type_=sa.String),
                Purchase.stripe_payment_intent_id))
    .returning(Purchase)
)
_MARK_PAID_OPTIONS = {"synchronize_session": False, "populate_existing": True}


def _mark_paid_if_payable(session: Mapping[str, Any]) -> Purchase | None:
    amount = session.get("amount_total")
    if (session.get("payment_status") not in ("paid", "no_payment_required")
            or not isinstance(amount, int) or not session.get("id")):
        return None
    return db.session.scalars(_MARK_PAID, {
        "b_session_id": session["id"], "b_amount": amount,
        "b_currency": (session.get("currency") or "").lower(), "b_now": utcnow(),
        "b_payment_intent": _id_of(session.get("payment_intent"))},
        execution_options=_MARK_PAID_OPTIONS).first()


def _set_status(purchase: Purchase, status: str, **fields: Any) -> None:
    purchase.status = status
    purchase.updated_at = utcnow()
    for name, value in fields.items():
        if value is not None:
            setattr(purchase, name, value)


def _id_of(value: Any) -> str | None:
    """Stripe sends related objects as an id or, when expanded, as the object."""
    if isinstance(value, Mapping):
        return value.get("id")
    return value


def mark_session_failed(session: Mapping[str, Any]) -> FulfilmentResult:
    """A delayed payment failed: the purchase is failed, nothing is credited; commits."""
    return _mark_uncredited(session, PurchaseStatus.FAILED,
                            (PurchaseStatus.PENDING, PurchaseStatus.PROCESSING))


def mark_session_expired(session: Mapping[str, Any]) -> FulfilmentResult:
    """The Checkout Session expired unpaid: an open purchase is expired; commits."""
    return _mark_uncredited(session, PurchaseStatus.EXPIRED, (PurchaseStatus.PENDING,))


def _mark_uncredited(session: Mapping[str, Any], status: str,
                     from_states: tuple[str, ...]) -> FulfilmentResult:
    with atomic():
        purchase = _locked_purchase_for_session(session)
        if purchase is None:
            return FulfilmentResult(Fulfilment.UNKNOWN)
        if purchase.credited_at is None and purchase.status in from_states:
            _set_status(purchase, status)
        return FulfilmentResult(Fulfilment.NOT_PAID, purchase)


def adjust(user_id: int, credits: int, reason: str, *, actor_id: int | None = None) -> int:
    """Add (or with a negative number, remove) credits by hand; returns the balance; commits.

    `reason` is required. A removal never takes the balance below zero
    (InsufficientCreditsError); `actor_id` is the admin who did it, None for operators.
    """
    if credits == 0 or not reason.strip():
        raise InvalidAmountError("An adjustment needs a non-zero number of credits and a reason.")
    with atomic():
        return post_entry(user_id, credits, EntryKind.ADJUSTMENT, allow_negative=False,
                          actor_id=actor_id, description=reason.strip()[:500])


def debit_usage(user_id: int, credits: int, description: str, *,
                reference: str | None = None) -> int:
    """Spend `credits` (> 0) for usage; returns the new balance; commits (or joins).

    One conditional UPDATE: the balance never goes below zero, however many debits run
    at once. A short balance raises InsufficientCreditsError and changes nothing.
    """
    if credits <= 0:
        raise InvalidAmountError("credits must be an integer of at least 1")
    with atomic():
        return post_entry(user_id, -credits, EntryKind.USAGE, allow_negative=False,
                          reference=reference, description=description[:500] or None)
