"""Auto-recharge in the ledger: the attempt a debit records, and what a charge's outcome does.

A debit (usage, hold capture, expiry) that leaves the balance below the user's
threshold records one attempt, a pending purchase with source `auto_recharge`, in the
debit's own transaction. post_entry calls `after_debit` after moving the balance, so
the account's row lock is held: debits of one account meet here one at a time, and the
unique index "one open attempt per account" backs that up. The worker then charges the
attempt (domain/autorecharge/) and hands Stripe's answer, like the webhook does its
events, to `apply_payment_intent`, which changes a purchase at most once per outcome.
"""

import logging
import secrets
from collections.abc import Mapping
from datetime import timedelta
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.dialects import postgresql, sqlite

from webapp.domain import clock, jobs, mailer, pricing
from webapp.domain.errors import InvalidPurchaseError
from webapp.domain.ledger.purchases import Fulfilment, credit_paid_purchase, set_status
from webapp.domain.sql import is_postgresql, locked
from webapp.domain.stripe_objects import id_of
from webapp.domain.transaction import atomic
from webapp.extensions import db
from webapp.models import AutoRecharge, CreditAccount, Purchase, PurchaseSource, PurchaseStatus
from webapp.models.ledger import OPEN_AUTO_RECHARGE

log = logging.getLogger(__name__)

RETRY_AFTER_FAILURE = timedelta(hours=1)
FAILURES_BEFORE_OFF = 3
TURNED_OFF = (
    "Auto-recharge was turned off after 3 failed charges in a row. "
    "Check your card, then turn it on again."
)
# Statuses whose money counts against the monthly limit (charged, or still may be).
_NOT_CHARGED = (PurchaseStatus.FAILED, PurchaseStatus.EXPIRED)
OPEN_STATUSES = (PurchaseStatus.PENDING, PurchaseStatus.PROCESSING, PurchaseStatus.NEEDS_ACTION)
# Jobs for the worker (domain/jobs.py), recorded in the transaction that causes them.
CHARGE_JOB = "auto_recharge_charge"
CANCEL_JOB = "auto_recharge_cancel_intent"
_CANCELED_OR_DONE = ("canceled", "succeeded")


class Outcome(StrEnum):
    CREDITED = "credited"
    ALREADY_CREDITED = "already_credited"
    REVIEW = "needs_review"
    FAILED = "failed"
    NEEDS_ACTION = "needs_action"
    PROCESSING = "processing"
    UNCHANGED = "unchanged"
    UNKNOWN = "unknown"


# --- the trigger (joins the debit's transaction)

_settings = AutoRecharge.__table__.c
_WANTED = sa.select(
    _settings.amount, _settings.monthly_limit_cents, _settings.last_failure_at
).where(
    _settings.user_id == sa.bindparam("user_id"),
    _settings.enabled.is_(True),
    _settings.threshold > sa.bindparam("balance", type_=sa.BigInteger),
)


def after_debit(user_id: int, balance: int) -> int | None:
    """Record an attempt when a debit left `balance` below the threshold; joins.

    Nothing when auto-recharge is off or the balance is not below the threshold, an
    attempt is still open (pending, processing or waiting for the card holder), the last
    one failed less than an hour ago, or this calendar month's (UTC) auto-recharge
    charges plus this one would pass the monthly limit. Returns the new purchase's id.
    """
    wanted = db.session.execute(_WANTED, {"user_id": user_id, "balance": balance}).first()
    if wanted is None:
        return None
    now = clock.now()
    if wanted.last_failure_at is not None and now - wanted.last_failure_at < RETRY_AFTER_FAILURE:
        return None
    if _open_attempt(user_id):
        return None
    try:
        quote = pricing.quote(wanted.amount)
    except InvalidPurchaseError as exc:  # the bounds changed since the settings were saved
        log.warning("auto-recharge for user %s not started: %s", user_id, exc)
        return None
    if charged_this_month(user_id) + quote.amount_cents > monthly_limit(wanted.monthly_limit_cents):
        return None
    recorded = db.session.execute(_insert_attempt(user_id, quote)).first()
    if recorded is None:
        return None
    enqueue_charge(recorded.id, user_id, recorded.stripe_idempotency_key)
    return recorded.id


def set_trigger(user_id: int, threshold: int | None) -> None:
    """Arm (a threshold) or disarm (None) the debit check on the account; joins.

    post_entry reads it back with the balance, so a debit costs no extra statement
    unless it leaves the balance below an armed threshold.
    """
    db.session.execute(
        sa.update(CreditAccount)
        .where(CreditAccount.user_id == user_id)
        .values(auto_recharge_below=threshold)
    )


def _open_attempt(user_id: int) -> bool:
    return db.session.scalar(
        sa.select(
            sa.exists().where(
                Purchase.user_id == user_id,
                Purchase.source == PurchaseSource.AUTO_RECHARGE,
                Purchase.status.in_(OPEN_STATUSES),
            )
        )
    )


def monthly_limit(limit_cents: int | None) -> int:
    if limit_cents is None:
        return current_app.config["AUTO_RECHARGE_MONTHLY_LIMIT"]
    return limit_cents


def month_start():
    return clock.now().replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def charged_this_month(user_id: int) -> int:
    """Money (minor units) of this UTC month's auto-recharges, charged or in flight."""
    return db.session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(Purchase.amount_cents), 0)).where(
            Purchase.user_id == user_id,
            Purchase.source == PurchaseSource.AUTO_RECHARGE,
            Purchase.created_at >= month_start(),
            Purchase.status.not_in(_NOT_CHARGED),
        )
    )


def _insert_attempt(user_id: int, quote: pricing.Quote) -> sa.Insert:
    """INSERT the pending purchase unless one is open (the unique partial index)."""
    insert = postgresql.insert if is_postgresql() else sqlite.insert
    now = clock.now()
    values = {
        "user_id": user_id,
        "credits": quote.credits,
        "value_cents": quote.value_cents,
        "fee_cents": quote.fee_cents,
        "amount_cents": quote.amount_cents,
        "currency": quote.currency,
        "status": PurchaseStatus.PENDING,
        "source": PurchaseSource.AUTO_RECHARGE,
        # At random, never from the id: ids repeat after a database restore, Stripe's keys not.
        "stripe_idempotency_key": f"autorecharge-{secrets.token_urlsafe(24)}",
        "created_at": now,
        "updated_at": now,
    }
    return (
        insert(Purchase)
        .values(values)
        .on_conflict_do_nothing(index_elements=["user_id"], index_where=OPEN_AUTO_RECHARGE)
        .returning(Purchase.id, Purchase.stripe_idempotency_key)
    )


def enqueue_charge(purchase_id: int, user_id: int, key: str) -> None:
    """Have the worker charge attempt `purchase_id` (joins the debit's transaction).

    The job row commits with the attempt or not at all; its dedupe key is the attempt's
    random idempotency key, so nothing can record the same charge twice.
    """
    jobs.record(CHARGE_JOB, f"{CHARGE_JOB}:{key}", {"purchase_id": purchase_id}, user_id=user_id)


def notify(message: str, purchase: Purchase) -> None:
    """Mail the user about an attempt, once per attempt and message (joins)."""
    mailer.queue(
        message,
        purchase.stripe_idempotency_key or f"purchase:{purchase.id}",
        user_id=purchase.user_id,
        purchase_id=purchase.id,
    )


# --- outcomes (each one transaction, joining a webhook's)


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


def record_payment_method(purchase_id: int, payment_method_id: str) -> str:
    """The card this attempt charges: the first one recorded wins; commits."""
    with atomic():
        db.session.execute(
            sa.update(Purchase)
            .where(Purchase.id == purchase_id, Purchase.stripe_payment_method_id.is_(None))
            .values(stripe_payment_method_id=payment_method_id)
        )
        return db.session.scalar(
            sa.select(Purchase.stripe_payment_method_id).where(Purchase.id == purchase_id)
        )
