"""Checkout fulfilment: a paid session credits its recorded purchase once; failed and expired."""

import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from webapp.domain import clock, notices
from webapp.domain.ledger import totals
from webapp.domain.ledger.entries import post_entry
from webapp.domain.ledger.payable import (
    PAID_PAYMENT_STATUSES,
    Session,
    amount_before_tax,
    invoice_id,
    mark_paid,
    payable_params,
    reported_tax,
)
from webapp.domain.sql import locked
from webapp.domain.stripe_objects import id_of, metadata_ids
from webapp.domain.transaction import atomic
from webapp.extensions import db
from webapp.models import EntryKind, Purchase, PurchaseStatus
from webapp.models.types import utcnow

log = logging.getLogger(__name__)


class Fulfilment(StrEnum):
    CREDITED = "credited"
    ALREADY_CREDITED = "already_credited"
    PROCESSING = "processing"
    MISMATCH = "mismatch"
    NOT_PAID = "not_paid"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class FulfilmentResult:
    """What fulfilment did. `purchase` is loaded only on the slow (locked) path."""

    outcome: Fulfilment
    purchase: Purchase | None = None
    purchase_id: int | None = None

    def __post_init__(self):
        if self.purchase is not None and self.purchase_id is None:
            object.__setattr__(self, "purchase_id", self.purchase.id)


def purchase_description(credits: int) -> str:
    """The ledger text of a purchase credit."""
    return f"Bought {credits:,} credits"


def fulfil_checkout_session(session: Session) -> FulfilmentResult:
    """Credit the purchase behind a Checkout Session at most once; commits.

    `session` is the Checkout Session as Stripe reports it (webhook, success page or
    reconcile). The credits are those recorded when the purchase was created. An
    unpaid completed session (a delayed method) marks the purchase processing; a
    different amount or currency credits nothing and flags the purchase for review.
    """
    with atomic():
        params = payable_params(session)
        paid = mark_paid(params) if params["b_amount"] >= 0 else None
        if paid is not None:
            credit_marked_purchase(paid, session["id"])
            return FulfilmentResult(Fulfilment.CREDITED, purchase_id=paid.id)
        return _fulfil_locked(session)


def _fulfil_locked(session: Session) -> FulfilmentResult:
    """Every case the one-statement path leaves: sorted out under the purchase's row lock."""
    purchase = _locked_purchase_for_session(session)
    if purchase is None:
        return FulfilmentResult(Fulfilment.UNKNOWN)
    amount = session.get("amount_total")
    settled = _not_payable(
        purchase,
        _mismatch(purchase, session),
        amount=amount,
        currency=session.get("currency"),
        payment_intent_id=id_of(session.get("payment_intent")),
    )
    if settled is not None:
        return settled
    if session.get("payment_status") not in PAID_PAYMENT_STATUSES:
        if session.get("status") == "complete" and purchase.status == PurchaseStatus.PENDING:
            set_status(purchase, PurchaseStatus.PROCESSING)
            return FulfilmentResult(Fulfilment.PROCESSING, purchase)
        return FulfilmentResult(Fulfilment.NOT_PAID, purchase)
    return _credit(
        purchase,
        session["id"],
        stripe_payment_intent_id=id_of(session.get("payment_intent")),
        tax_cents=reported_tax(session),
        stripe_invoice_id=invoice_id(session),
    )


def credit_paid_purchase(
    purchase: Purchase, amount: Any, currency: Any, *, reference: str, payment_intent_id: str
) -> FulfilmentResult:
    """Credit a row-locked purchase that Stripe reports paid by `amount` `currency`; joins.

    The rules of Checkout fulfilment, for a payment made without a session (an
    auto-recharge PaymentIntent, which carries no tax): credited once, never under
    review, flagged for review when the money differs from what was recorded.
    """
    currency = (currency or "").lower()
    reason = None
    if amount != purchase.amount_cents or currency != purchase.currency:
        reason = (
            f"Stripe reported {_shown(amount)} {_shown(currency or '?')} but the purchase was "
            f"recorded at {purchase.amount_cents} {purchase.currency}"
        )
    settled = _not_payable(
        purchase, reason, amount=amount, currency=currency, payment_intent_id=payment_intent_id
    )
    if settled is not None:
        return settled
    return _credit(purchase, reference, stripe_payment_intent_id=payment_intent_id)


def _not_payable(
    purchase: Purchase,
    mismatch: str | None,
    *,
    amount: Any = None,
    currency: Any = None,
    payment_intent_id: str | None = None,
) -> FulfilmentResult | None:
    """The result for a purchase that must not be credited now, else None.

    A mismatch flags the purchase for review and keeps what Stripe reported: the payment
    intent lets an admin refund it and later refunds find it.
    """
    if purchase.credited_at is not None:
        return FulfilmentResult(Fulfilment.ALREADY_CREDITED, purchase)
    if purchase.status == PurchaseStatus.NEEDS_REVIEW or refunded_in_review(purchase):
        return FulfilmentResult(Fulfilment.MISMATCH, purchase)
    if mismatch:
        set_status(
            purchase,
            PurchaseStatus.NEEDS_REVIEW,
            review_reason=mismatch,
            stripe_payment_intent_id=payment_intent_id,
            review_amount_cents=amount if isinstance(amount, int) else None,
            review_currency=(currency or "").lower()[:3] or None,
        )
        log.warning("purchase %s needs review: %s", purchase.id, mismatch)
        return FulfilmentResult(Fulfilment.MISMATCH, purchase)
    return None


def _credit(purchase: Purchase, reference: str, **fields: Any) -> FulfilmentResult:
    # The domain clock: the monthly auto-recharge limit compares it with month_start().
    set_status(purchase, PurchaseStatus.PAID, credited_at=clock.now(), **fields)
    db.session.flush()
    _post_purchase_credit(purchase.id, purchase.user_id, purchase.credits, reference)
    return FulfilmentResult(Fulfilment.CREDITED, purchase)


def credit_marked_purchase(paid: sa.Row, session_id: str) -> None:
    """Post the credit of a purchase mark_paid_statement has just marked paid, and count
    its move to paid in the totals (joins the caller's transaction)."""
    money = (paid.currency, paid.amount_cents, paid.amount_refunded_cents)
    totals.purchase_moved((paid.old_status, *money), (PurchaseStatus.PAID.value, *money))
    _post_purchase_credit(paid.id, paid.user_id, paid.credits, session_id)


def _post_purchase_credit(
    purchase_id: int, user_id: int, credits: int, session_id: str, **refs: Any
) -> None:
    post_entry(
        user_id,
        credits,
        EntryKind.PURCHASE,
        purchase_id=purchase_id,
        **refs,
        reference=session_id,
        description=purchase_description(credits),
    )
    notices.purchase_credited(purchase_id, user_id)


# --- finding the purchase, and the other outcomes


def _locked_purchase_for_session(session: Session) -> Purchase | None:
    """The purchase behind a Checkout Session, row-locked until the transaction ends.

    Found by session id; a session whose id was never stored (the app stopped between
    creating it and saving the id) is matched through its metadata instead.
    """
    by_session = sa.select(Purchase).where(Purchase.stripe_checkout_session_id == session["id"])
    purchase = db.session.scalars(locked(by_session)).first()
    if purchase is not None:
        return purchase
    ids = metadata_ids(session.get("metadata") or {}, "purchase_id", "user_id")
    if ids is None:
        return None
    # No "session id IS NULL" in the WHERE: a concurrent handler may set it while we wait
    # for the lock, and PostgreSQL would then skip the row instead of returning it.
    by_metadata = sa.select(Purchase).where(Purchase.id == ids[0], Purchase.user_id == ids[1])
    purchase = db.session.scalars(locked(by_metadata)).first()
    if purchase is None or purchase.stripe_checkout_session_id not in (None, session["id"]):
        return None
    purchase.stripe_checkout_session_id = session["id"]
    return purchase


def _mismatch(purchase: Purchase, session: Session) -> str | None:
    """Why the session cannot pay for the purchase: the same rule as payable_params."""
    currency = (session.get("currency") or "").lower()
    if amount_before_tax(session) != purchase.amount_cents or currency != purchase.currency:
        tax = (session.get("total_details") or {}).get("amount_tax", 0)
        return (
            f"Stripe reported {_shown(session.get('amount_total'))} {_shown(currency or '?')} "
            f"(tax {_shown(tax)}) but the purchase was recorded at {purchase.amount_cents} "
            f"{purchase.currency} before tax"
        )
    return None


def refunded_in_review(purchase: Purchase) -> bool:
    """A purchase under review that an admin refunded instead of crediting."""
    return purchase.status == PurchaseStatus.REFUNDED and purchase.credited_at is None


def _shown(value: Any) -> str:
    """A value from Stripe, short enough for the review reason whatever it is."""
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def set_status(purchase: Purchase, status: str, **fields: Any) -> None:
    """Set the purchase's status (and any non-None fields); joins the caller's transaction."""
    purchase.status = status
    purchase.updated_at = utcnow()
    for name, value in fields.items():
        if value is not None:
            setattr(purchase, name, value)


def abandon_checkout(purchase_id: int) -> None:
    """Stripe refused to open the purchase's Checkout Session: a pending purchase is
    failed with the reason; commits."""
    with atomic():
        purchase = db.session.scalars(
            locked(sa.select(Purchase).where(Purchase.id == purchase_id))
        ).first()
        if purchase is not None and purchase.status == PurchaseStatus.PENDING:
            set_status(
                purchase,
                PurchaseStatus.FAILED,
                review_reason="Checkout could not be started (Stripe error).",
            )


def mark_session_failed(session: Session) -> FulfilmentResult:
    """A delayed payment failed: the purchase is failed, nothing is credited; commits."""
    return _mark_uncredited(
        session,
        PurchaseStatus.FAILED,
        (PurchaseStatus.PENDING, PurchaseStatus.PROCESSING, PurchaseStatus.NEEDS_ACTION),
    )


def mark_session_expired(session: Session) -> FulfilmentResult:
    """The Checkout Session expired unpaid: an open purchase is expired; commits."""
    return _mark_uncredited(
        session, PurchaseStatus.EXPIRED, (PurchaseStatus.PENDING, PurchaseStatus.NEEDS_ACTION)
    )


def _mark_uncredited(
    session: Session, status: str, from_states: tuple[str, ...]
) -> FulfilmentResult:
    with atomic():
        purchase = _locked_purchase_for_session(session)
        if purchase is None:
            return FulfilmentResult(Fulfilment.UNKNOWN)
        if purchase.credited_at is None and purchase.status in from_states:
            set_status(purchase, status)
        return FulfilmentResult(Fulfilment.NOT_PAID, purchase)
