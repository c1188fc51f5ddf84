"""What admins do to users and purchases, each recorded as an AdminAction."""

import sqlalchemy as sa

from webapp.domain import ledger, pricing, stripe_gateway
from webapp.domain.errors import InvalidAmountError
from webapp.domain.transaction import atomic
from webapp.extensions import db
from webapp.models import AdminAction, Purchase


class AdminTarget:
    USER = "user"
    PURCHASE = "purchase"


def _record(admin_id: int, action: str, target_type: str, target_id: int, details: str) -> None:
    db.session.add(AdminAction(admin_id=admin_id, action=action, target_type=target_type,
                               target_id=target_id, details=details[:2000]))


def adjust_credits(admin_id: int, user_id: int, credits: int, reason: str) -> int:
    """Adjust a user's credits with a reason; returns the balance; commits.

    The ledger row (actor_id = the admin) and the AdminAction commit together.
    Raises InvalidAmountError / InsufficientCreditsError from ledger.adjust.
    """
    with atomic():
        balance = ledger.adjust(user_id, credits, reason, actor_id=admin_id)
        _record(admin_id, "adjust_credits", AdminTarget.USER, user_id,
                f"{credits:+,} credits: {reason.strip()} (balance after {balance:,})")
    return balance


def refundable_cents(purchase: Purchase) -> int:
    """What Stripe can still refund of this purchase as far as we know (minor units)."""
    if purchase.credited_at is None or not purchase.stripe_payment_intent_id:
        return 0
    return max(purchase.total_cents - purchase.amount_refunded_cents, 0)


def request_refund(admin_id: int, purchase: Purchase, amount_text: str) -> dict:
    """Ask Stripe to refund `amount_text` (major units; empty = all that is left); commits.

    Changes no balance: the credits come back through the charge.refunded event.
    The idempotency key names the purchase, how many refunds were asked for before
    and the amount, so a double-submitted form refunds once, while a deliberate
    second refund gets its own key. Raises InvalidAmountError or PaymentProviderError.
    """
    left = refundable_cents(purchase)
    if left <= 0:
        raise InvalidAmountError("Nothing is left to refund on this purchase.")
    amount = _parse_amount(amount_text, purchase.currency) if amount_text.strip() else left
    if amount > left:
        raise InvalidAmountError(
            f"At most {pricing.format_money(left, purchase.currency)} can be refunded.")
    earlier = db.session.scalar(sa.select(sa.func.count()).select_from(AdminAction).where(
        AdminAction.target_type == AdminTarget.PURCHASE, AdminAction.target_id == purchase.id,
        AdminAction.action == "refund_requested"))
    refund = stripe_gateway.create_refund(
        purchase.stripe_payment_intent_id, amount,
        idempotency_key=f"refund-purchase-{purchase.id}-{earlier}-{amount}")
    with atomic():
        _record(admin_id, "refund_requested", AdminTarget.PURCHASE, purchase.id,
                f"Refund of {pricing.format_money(amount, purchase.currency)} requested "
                f"({refund.get('id')}, {refund.get('status')})")
    return refund


def _parse_amount(text: str, currency: str) -> int:
    try:
        return pricing.parse_money(text, currency)
    except ValueError as exc:
        raise InvalidAmountError(
            "Enter the amount to refund like 12.50, or leave it empty for all of it.") from exc
