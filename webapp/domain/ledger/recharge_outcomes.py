"""What an auto-recharge charge's outcome does to its attempt: Stripe's answer (from the
API or an event, whichever comes first) changes the purchase at most once per outcome."""

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from webapp.domain import clock, jobs
from webapp.domain.ledger.autorecharge import CANCEL_JOB, notify, set_trigger
from webapp.domain.ledger.purchases import Fulfilment, credit_paid_purchase, set_status
from webapp.domain.sql import locked
from webapp.domain.stripe_objects import id_of
from webapp.domain.transaction import atomic
from webapp.extensions import db
from webapp.models import AutoRecharge, Purchase, PurchaseSource, PurchaseStatus

FAILURES_BEFORE_OFF = 3
TURNED_OFF = (
    "Auto-recharge was turned off after 3 failed charges in a row. "
    "Check your card, then turn it on again."
)
_CANCELED_OR_DONE = ("canceled", "succeeded")
WITHDRAWN = "Auto-recharge was turned off before this was charged; nothing was charged."


class Outcome(StrEnum):
    CREDITED = "credited"
    ALREADY_CREDITED = "already_credited"
    REVIEW = "needs_review"
    FAILED = "failed"
    NEEDS_ACTION = "needs_action"
    PROCESSING = "processing"
    WITHDRAWN = "withdrawn"
    UNCHANGED = "unchanged"
    UNKNOWN = "unknown"


def apply_payment_intent(purchase_id: int, intent: Mapping[str, Any]) -> Outcome:
    """Apply what an auto-recharge's PaymentIntent says, from the API answer or an event.

    Whichever arrives first changes the purchase; the others find it changed. A
    succeeded intent credits through the same rules as a Checkout purchase (once,
    flagged for review when the money differs); a decline marks it failed (3 in a row
    turn auto-recharge off); authentication wanted marks it needs_action (and has
    the worker cancel the intent). Commits, or joins the caller's transaction.
    """
    with atomic():
        purchase = db.session.scalars(
            locked(
                sa.select(Purchase).where(
                    Purchase.id == purchase_id, Purchase.source == PurchaseSource.AUTO_RECHARGE
                )
            )
        ).first()
        if purchase is None or purchase.stripe_payment_intent_id not in (None, intent.get("id")):
            return Outcome.UNKNOWN
        status = intent.get("status")
        if status == "succeeded":
            return _succeeded(purchase, intent)
        if purchase.credited_at is not None or purchase.status not in (
            PurchaseStatus.PENDING,
            PurchaseStatus.PROCESSING,
        ):
            return Outcome.UNCHANGED
        purchase.stripe_payment_intent_id = intent.get("id")
        error = intent.get("last_payment_error") or {}
        if status == "requires_action" or error.get("code") == "authentication_required":
            return _needs_action(purchase, intent)
        if status == "processing":
            set_status(purchase, PurchaseStatus.PROCESSING)
            return Outcome.PROCESSING
        if status == "canceled" or (status == "requires_payment_method" and error):
            return fail(purchase, _reason(status, error))
        return Outcome.UNCHANGED


def _succeeded(purchase: Purchase, intent: Mapping[str, Any]) -> Outcome:
    result = credit_paid_purchase(
        purchase,
        intent.get("amount"),
        intent.get("currency"),
        reference=intent["id"],
        payment_intent_id=intent["id"],
    )
    if result.outcome is Fulfilment.ALREADY_CREDITED:
        return Outcome.ALREADY_CREDITED
    if result.outcome is not Fulfilment.CREDITED:
        return Outcome.REVIEW
    purchase.stripe_charge_id = purchase.stripe_charge_id or id_of(intent.get("latest_charge"))
    purchase.failure_reason = None
    db.session.execute(
        sa.update(AutoRecharge)
        .where(AutoRecharge.user_id == purchase.user_id)
        .values(consecutive_failures=0)
    )
    # The receipt every credited purchase gets (ledger.purchases) is the success mail.
    return Outcome.CREDITED


def _needs_action(purchase: Purchase, intent: Mapping[str, Any]) -> Outcome:
    """Wait for the card holder: the open intent is cancelled (by the worker), so only the
    Checkout Session the mailed link opens can pay for these credits."""
    set_status(
        purchase,
        PurchaseStatus.NEEDS_ACTION,
        failure_reason="Your bank wants you to confirm this payment.",
    )
    if intent.get("id") and intent.get("status") not in _CANCELED_OR_DONE:
        jobs.record(
            CANCEL_JOB,
            f"{CANCEL_JOB}:{intent['id']}",
            {"payment_intent": intent["id"]},
            user_id=purchase.user_id,
        )
    notify("auto_recharge_needs_action", purchase)
    return Outcome.NEEDS_ACTION


def _reason(status: str, error: Mapping[str, Any]) -> str:
    if status == "canceled":
        return "The payment was cancelled."
    return (error.get("message") or "The card was declined.")[:500]


def fail(purchase: Purchase, reason: str) -> Outcome:
    """Mark an open attempt failed and count the failure; joins (the caller locked it).

    The third failure in a row turns auto-recharge off and says why on /credits.
    """
    set_status(purchase, PurchaseStatus.FAILED, failure_reason=reason[:500])
    now = clock.now()
    settings = db.session.scalars(
        locked(sa.select(AutoRecharge).where(AutoRecharge.user_id == purchase.user_id))
    ).first()
    if settings is not None:
        settings.consecutive_failures += 1
        settings.last_failure_at = settings.updated_at = now
        if settings.consecutive_failures >= FAILURES_BEFORE_OFF and settings.enabled:
            settings.enabled = False
            settings.disabled_reason = TURNED_OFF
            set_trigger(purchase.user_id, None)
    notify("auto_recharge_failed", purchase)
    return Outcome.FAILED


def fail_attempt(purchase_id: int, reason: str) -> Outcome:
    """Fail an attempt that cannot be charged at all (no saved card); commits."""
    with atomic():
        purchase = db.session.scalars(
            locked(
                sa.select(Purchase).where(
                    Purchase.id == purchase_id, Purchase.status == PurchaseStatus.PENDING
                )
            )
        ).first()
        if purchase is None:
            return Outcome.UNCHANGED
        return fail(purchase, reason)


def record_payment_method(purchase_id: int, payment_method_id: str) -> str | None:
    """The card this attempt charges: the first one recorded wins; commits.

    Recorded right before the first charge request, so from here on Stripe may have been
    asked. None when the attempt ended unsent first (withdraw_unsent): do not charge.
    """
    with atomic():
        db.session.execute(
            sa.update(Purchase)
            .where(
                Purchase.id == purchase_id,
                Purchase.status == PurchaseStatus.PENDING,
                Purchase.stripe_payment_method_id.is_(None),
            )
            .values(stripe_payment_method_id=payment_method_id)
        )
        return db.session.scalar(
            sa.select(Purchase.stripe_payment_method_id).where(Purchase.id == purchase_id)
        )


def withdraw_unsent(user_id: int) -> int:
    """End the user's attempts Stripe was never asked to charge; commits (or joins).

    For auto-recharge turned off: the user withdrew the off-session mandate. An attempt
    without a recorded card was never sent (record_payment_method comes first), so it
    ends `expired`: not a card failure (no mail, no failure count) and, like a failed
    one, not counted against the monthly limit. Both this and record_payment_method
    re-check "pending, no card" under the row lock, so exactly one of them wins. An
    attempt with a card is left to be driven to Stripe's answer. Returns how many ended.
    """
    with atomic():
        unsent = db.session.scalars(
            locked(
                sa.select(Purchase).where(
                    Purchase.user_id == user_id,
                    Purchase.source == PurchaseSource.AUTO_RECHARGE,
                    Purchase.status == PurchaseStatus.PENDING,
                    Purchase.stripe_payment_method_id.is_(None),
                )
            )
        ).all()
        for purchase in unsent:
            set_status(purchase, PurchaseStatus.EXPIRED, failure_reason=WITHDRAWN)
        return len(unsent)
