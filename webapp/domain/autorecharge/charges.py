"""Charging an auto-recharge attempt off-session (the worker's job) and applying Stripe's answer."""

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from webapp.domain import clock, jobs, stripe_gateway
from webapp.domain.autorecharge.cards import store_card
from webapp.domain.autorecharge.settings import settings_for
from webapp.domain.errors import CardUnavailableError
from webapp.domain.ledger import autorecharge as ledger_autorecharge
from webapp.domain.ledger import recharge_outcomes
from webapp.domain.ledger.recharge_outcomes import Outcome
from webapp.domain.sql import fresh
from webapp.domain.stripe_objects import AUTORECHARGE_PURPOSE, id_of, metadata_ids, purpose_of
from webapp.extensions import db
from webapp.models import AutoRecharge, Purchase, PurchaseSource, PurchaseStatus, User

# An attempt not charged within this long is given up, well inside the 24 hours for which
# Stripe answers a repeated idempotency key with its first answer.
CHARGE_WINDOW = timedelta(hours=20)


def charge_attempt(purchase_id: int) -> Outcome:
    """Charge a recorded auto-recharge attempt off-session and apply Stripe's answer.

    Safe to run again at any point (a worker killed after Stripe answered, a retried
    job): the card and the idempotency key were recorded before the call, so Stripe
    answers the first charge again and the outcome applies once. The card is the
    customer's default as Stripe has it now (one changed in the portal is charged).
    A Stripe failure raises PaymentProviderError: the job is retried later. An attempt
    not sent yet when auto-recharge is off is withdrawn, never charged.
    """
    purchase = db.session.scalars(
        fresh(
            sa.select(Purchase).where(
                Purchase.id == purchase_id, Purchase.source == PurchaseSource.AUTO_RECHARGE
            )
        )
    ).first()
    if purchase is None or purchase.status != PurchaseStatus.PENDING:
        return Outcome.UNCHANGED
    if clock.now() - purchase.created_at > CHARGE_WINDOW:
        # Stripe forgets idempotency keys after 24 hours: never send this key again then.
        return recharge_outcomes.fail_attempt(purchase_id, "It could not be charged in time.")
    user = purchase.user
    method_id = purchase.stripe_payment_method_id
    if method_id is None:
        if not _enabled(user.id):
            withdrawn = recharge_outcomes.withdraw_unsent(user.id)
            return Outcome.WITHDRAWN if withdrawn else Outcome.UNCHANGED
        method_id = _default_card(user)
        if method_id is None:
            return recharge_outcomes.fail_attempt(purchase_id, "There is no saved card.")
        method_id = recharge_outcomes.record_payment_method(purchase_id, method_id)
        if method_id is None:  # withdrawn meanwhile: auto-recharge was turned off
            return Outcome.WITHDRAWN
    try:
        intent = stripe_gateway.charge_off_session(
            _intent_params(purchase, user, method_id), purchase.stripe_idempotency_key
        )
    except CardUnavailableError:
        return recharge_outcomes.fail_attempt(purchase_id, "Your saved card was removed.")
    return recharge_outcomes.apply_payment_intent(purchase_id, intent)


def _enabled(user_id: int) -> bool:
    """Whether auto-recharge is on now, as committed (never the session's cached row)."""
    return bool(
        db.session.scalar(sa.select(AutoRecharge.enabled).where(AutoRecharge.user_id == user_id))
    )


def _default_card(user: User) -> str | None:
    """The customer's default card as Stripe has it now (shown on /credits from then on)."""
    if not user.stripe_customer_id:
        return None
    customer = stripe_gateway.retrieve_customer(user.stripe_customer_id)
    method_id = id_of((customer.get("invoice_settings") or {}).get("default_payment_method"))
    settings = settings_for(user.id)
    if method_id and (settings is None or settings.payment_method_id != method_id):
        store_card(user.id, stripe_gateway.retrieve_payment_method(method_id), None)
    return method_id


def _intent_params(purchase: Purchase, user: User, method_id: str) -> dict[str, Any]:
    return {
        "amount": purchase.amount_cents,
        "currency": purchase.currency,
        "customer": user.stripe_customer_id,
        "payment_method": method_id,
        "description": f"Auto-recharge: {purchase.credits:,} credits",
        "metadata": {
            "purpose": AUTORECHARGE_PURPOSE,
            "user_id": str(purchase.user_id),
            "purchase_id": str(purchase.id),
            "credits": str(purchase.credits),
        },
    }


# Retried until charge_attempt settles the attempt: failing the job for good would leave
# the attempt pending, blocking every later one. It gives up itself at CHARGE_WINDOW.
@jobs.handler(ledger_autorecharge.CHARGE_JOB, retries_until_done=True)
def _charge_job(job: jobs.Claimed) -> None:
    charge_attempt(int(job.payload["purchase_id"]))


@jobs.handler(ledger_autorecharge.CANCEL_JOB)
def _cancel_job(job: jobs.Claimed) -> None:
    stripe_gateway.cancel_payment_intent(job.payload["payment_intent"])


def on_payment_intent(intent: Mapping[str, Any]) -> Outcome:
    """A payment_intent.* event: applied when it is one of our auto-recharge charges."""
    if purpose_of(intent) != AUTORECHARGE_PURPOSE:
        return Outcome.UNKNOWN
    ids = metadata_ids(intent.get("metadata") or {}, "purchase_id", "user_id")
    if ids is None:
        return Outcome.UNKNOWN
    owner = db.session.scalar(sa.select(Purchase.user_id).where(Purchase.id == ids[0]))
    if owner != ids[1]:
        return Outcome.UNKNOWN
    return recharge_outcomes.apply_payment_intent(ids[0], intent)
