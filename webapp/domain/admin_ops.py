"""What admins do to users and purchases, each recorded as an AdminAction."""

import sqlalchemy as sa

from webapp.domain import ledger, pricing, stripe_gateway
from webapp.domain.checkout import new_idempotency_key
from webapp.domain.errors import InvalidAmountError, NotUnderReviewError
from webapp.domain.sql import locked
from webapp.domain.stripe_objects import id_of
from webapp.domain.transaction import atomic
from webapp.extensions import db
from webapp.models import AdminAction, Purchase, PurchaseStatus


class AdminTarget:
    USER = "user"
    PURCHASE = "purchase"


def _record(admin_id: int, action: str, target_type: str, target_id: int, details: str) -> None:
    db.session.add(
        AdminAction(
            admin_id=admin_id,
            action=action,
            target_type=target_type,
            target_id=target_id,
            details=details[:2000],
        )
    )


def adjust_credits(admin_id: int, user_id: int, credits: int, reason: str) -> int:
    """Adjust a user's credits with a reason; returns the balance; commits.

    The ledger row (actor_id = the admin) and the AdminAction commit together.
    Raises InvalidAmountError / InsufficientCreditsError from ledger.adjust.
    """
    with atomic():
        balance = ledger.adjust(user_id, credits, reason, actor_id=admin_id)
        _record(
            admin_id,
            "adjust_credits",
            AdminTarget.USER,
            user_id,
            f"{credits:+,} credits: {reason.strip()} (balance after {balance:,})",
        )
    return balance


def release_hold(admin_id: int, user_id: int, hold_id: str) -> dict:
    """Release one of a user's holds for them; returns the release answer; commits.

    The release and the AdminAction commit together; releasing it again answers the same
    and records nothing. Raises NotFoundError or HoldNotOpenError (captured, expired) from
    the ledger, and then records nothing.
    """

    def audit(answer: dict) -> None:
        _record(
            admin_id,
            "release_hold",
            AdminTarget.USER,
            user_id,
            f"released hold {hold_id} ({answer['released']:,} credits)",
        )

    return ledger.release_hold(user_id, hold_id, on_release=audit)


def refundable_cents(purchase: Purchase) -> int:
    """What Stripe can still refund of this purchase as far as we know (minor units)."""
    if purchase.credited_at is None or not purchase.stripe_payment_intent_id:
        return 0
    return max(purchase.total_cents - purchase.amount_refunded_cents, 0)


def request_refund(admin_id: int, purchase: Purchase, amount_text: str) -> dict:
    """Ask Stripe to refund `amount_text` (major units; empty = all that is left); commits.

    Changes no balance: the credits come back through the charge.refunded event.
    The idempotency key is random and stored on the purchase until Stripe accepts the
    refund: a retry after a failure, or a double-submitted form racing the first, sends
    the same key and refunds once; a deliberate second refund gets its own key.
    Raises InvalidAmountError or PaymentProviderError.
    """
    left = refundable_cents(purchase)
    if left <= 0:
        raise InvalidAmountError("Nothing is left to refund on this purchase.")
    amount = _parse_amount(amount_text, purchase.currency) if amount_text.strip() else left
    if amount > left:
        raise InvalidAmountError(
            f"At most {pricing.format_money(left, purchase.currency)} can be refunded."
        )
    key = _refund_key(purchase.id, amount)
    refund = stripe_gateway.create_refund(
        purchase.stripe_payment_intent_id, amount, idempotency_key=key
    )
    with atomic():
        db.session.execute(
            sa.update(Purchase)
            .where(Purchase.id == purchase.id, Purchase.refund_idempotency_key == key)
            .values(refund_idempotency_key=None, refund_request=None)
        )
        _record(
            admin_id,
            "refund_requested",
            AdminTarget.PURCHASE,
            purchase.id,
            f"Refund of {pricing.format_money(amount, purchase.currency)} requested "
            f"({refund.get('id')}, {refund.get('status')})",
        )
    return refund


def _refund_key(purchase_id: int, amount: int | str) -> str:
    """The stored key of the refund of `amount` asked for and not yet accepted, or a new
    one stored now (committed before Stripe is called)."""
    with atomic():
        purchase = db.session.scalars(
            locked(sa.select(Purchase).where(Purchase.id == purchase_id))
        ).one()
        if purchase.refund_request != str(amount) or not purchase.refund_idempotency_key:
            purchase.refund_idempotency_key = new_idempotency_key("refund")
            purchase.refund_request = str(amount)
        return purchase.refund_idempotency_key


def _parse_amount(text: str, currency: str) -> int:
    try:
        return pricing.parse_money(text, currency)
    except ValueError as exc:
        raise InvalidAmountError(
            "Enter the amount to refund like 12.50, or leave it empty for all of it."
        ) from exc


# --- the two ways out of review (a Checkout Session that did not match its purchase)


def credit_reviewed(admin_id: int, purchase: Purchase, reason: str) -> Purchase:
    """Credit a purchase under review once Stripe confirms the money arrived; commits.

    Stripe is asked for the Checkout Session: it must be paid. The credits are those
    recorded at creation; the purchase takes the amount Stripe charged. The ledger row
    (actor_id = the admin) and the AdminAction commit together. NotUnderReviewError,
    InvalidAmountError (no reason, or Stripe says it is unpaid) or PaymentProviderError.
    """
    if not reason.strip():
        raise InvalidAmountError("Say why the purchase is credited.")
    _require_review(purchase)
    session = stripe_gateway.retrieve_checkout_session(purchase.stripe_checkout_session_id)
    amount = session.get("amount_total")
    if session.get("payment_status") != "paid" or not isinstance(amount, int):
        raise InvalidAmountError("Stripe does not report this Checkout Session as paid.")
    currency = str(session.get("currency") or purchase.currency).lower()
    tax = (session.get("total_details") or {}).get("amount_tax")
    tax = tax if isinstance(tax, int) and 0 <= tax <= amount else 0
    with atomic():
        credited = ledger.credit_reviewed_purchase(
            purchase.id,
            actor_id=admin_id,
            amount_cents=amount - tax,
            tax_cents=tax,
            currency=currency,
            payment_intent_id=id_of(session.get("payment_intent")),
        )
        _record(
            admin_id,
            "review_credited",
            AdminTarget.PURCHASE,
            purchase.id,
            f"{credited.credits:,} credits credited after review "
            f"(Stripe charged {pricing.format_money(amount, currency)}): {reason.strip()}",
        )
    return credited


def refund_reviewed(admin_id: int, purchase: Purchase) -> dict:
    """Ask Stripe to refund all of a purchase under review; commits the AdminAction.

    The ledger is untouched (nothing was credited); charge.refunded marks the purchase
    refunded. The key is stored on the purchase like any refund's (reused on a retry).
    NotUnderReviewError, InvalidAmountError (no payment at Stripe) or PaymentProviderError.
    """
    _require_review(purchase)
    intent = purchase.stripe_payment_intent_id
    if not intent:
        session = stripe_gateway.retrieve_checkout_session(purchase.stripe_checkout_session_id)
        intent = id_of(session.get("payment_intent"))
    if not intent:
        raise InvalidAmountError("Stripe has no payment for this purchase to refund.")
    key = _refund_key(purchase.id, "all")
    refund = stripe_gateway.create_refund(intent, None, idempotency_key=key)
    with atomic():
        db.session.execute(
            sa.update(Purchase)
            .where(Purchase.id == purchase.id, Purchase.refund_idempotency_key == key)
            .values(
                refund_idempotency_key=None, refund_request=None, stripe_payment_intent_id=intent
            )
        )
        _record(
            admin_id,
            "review_refund_requested",
            AdminTarget.PURCHASE,
            purchase.id,
            f"Full refund requested instead of crediting ({refund.get('id')}, "
            f"{refund.get('status')})",
        )
    return refund


def _require_review(purchase: Purchase) -> None:
    if purchase.status != PurchaseStatus.NEEDS_REVIEW or purchase.credited_at is not None:
        raise NotUnderReviewError("This purchase is not waiting for review.")
