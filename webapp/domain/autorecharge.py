"""Auto-recharge: the saved card, the settings' rules, and charging an attempt (the worker's job)."""

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app

from webapp.domain import clock, jobs, pricing, stripe_gateway
from webapp.domain.checkout import _session_params as checkout_session_params
from webapp.domain.checkout import ensure_customer
from webapp.domain.errors import DomainError, InvalidPurchaseError, NotFoundError
from webapp.domain.ledger import autorecharge as ledger_autorecharge
from webapp.domain.ledger.autorecharge import Outcome
from webapp.domain.mailer import Letter, letter
from webapp.domain.sql import fresh, locked
from webapp.domain.stripe_objects import (
    AUTORECHARGE_PURPOSE,
    CARD_PURPOSE,
    TOPUP_PURPOSE,
    id_of,
    metadata_ids,
    purpose_of,
)
from webapp.domain.transaction import atomic
from webapp.extensions import db
from webapp.models import AutoRecharge, Purchase, PurchaseSource, PurchaseStatus, User
from webapp.models.types import utcnow

log = logging.getLogger(__name__)

MAX_THRESHOLD = 10**12
# An attempt not charged within this long is given up, well inside the 24 hours for which
# Stripe answers a repeated idempotency key with its first answer.
CHARGE_WINDOW = timedelta(hours=20)


class InvalidSettingsError(DomainError):
    """Auto-recharge settings that cannot be saved; `errors` maps each field to its message."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(errors.values()))
        self.errors = errors


@dataclass(frozen=True)
class Settings:
    enabled: bool
    threshold: int
    amount: int
    monthly_limit_cents: int | None
    errors: dict[str, str] = field(default_factory=dict)


def settings_for(user_id: int) -> AutoRecharge | None:
    return db.session.get(AutoRecharge, user_id)


def summary(user_id: int) -> dict[str, Any]:
    """The `auto_recharge` object of GET /api/v1/balance."""
    settings = settings_for(user_id)
    if settings is None:
        return {"enabled": False, "threshold": 0, "amount": 0}
    return {"enabled": settings.enabled, "threshold": settings.threshold, "amount": settings.amount}


def form_values(settings: AutoRecharge | None) -> dict[str, Any]:
    """The settings form's fields as the user last saved them (suggestions when never)."""
    if settings is None or not settings.amount:
        config = current_app.config
        amount = max(config["MIN_PURCHASE_CREDITS"], min(500, config["MAX_PURCHASE_CREDITS"]))
        return {
            "enabled": False,
            "threshold": "100",
            "amount": str(amount),
            "monthly_limit": "",
        }
    limit = settings.monthly_limit_cents
    per_major = pricing.minor_units_per_major(current_app.config["CURRENCY"])
    major, minor = divmod(limit or 0, per_major)
    text = "" if limit is None else f"{major}.{minor:02d}" if minor else str(major)
    return {
        "enabled": settings.enabled,
        "threshold": str(settings.threshold),
        "amount": str(settings.amount),
        "monthly_limit": text,
    }


def _settings_row(user_id: int) -> AutoRecharge:
    """The user's row, locked (created empty first if there is none); joins."""
    row = db.session.scalars(
        locked(sa.select(AutoRecharge).where(AutoRecharge.user_id == user_id))
    ).first()
    if row is None:
        row = AutoRecharge(
            user_id=user_id, enabled=False, threshold=0, amount=0, consecutive_failures=0
        )
        db.session.add(row)
        db.session.flush()
    return row


# --- settings


def parse_settings(enabled: bool, threshold: str, amount: str, monthly_limit: str) -> Settings:
    """The form's text as settings; InvalidSettingsError naming each bad field."""
    errors: dict[str, str] = {}
    currency = current_app.config["CURRENCY"]
    threshold_value = _whole(threshold, "threshold", errors, "Threshold")
    if threshold_value is not None and not 0 <= threshold_value <= MAX_THRESHOLD:
        errors["threshold"] = "Threshold must be 0 or more credits."
    amount_value = _whole(amount, "amount", errors, "Amount")
    quote = None
    if amount_value is not None:
        try:
            quote = pricing.quote(amount_value)
        except InvalidPurchaseError as exc:
            errors["amount"] = str(exc)
    limit = None
    if (monthly_limit or "").strip():
        try:
            limit = pricing.parse_money(monthly_limit, currency)
        except ValueError:
            errors["monthly_limit"] = (
                f"Monthly limit must be an amount in {currency.upper()}, like 500 or 120.50."
            )
    if quote is not None and "monthly_limit" not in errors:
        effective = ledger_autorecharge.monthly_limit(limit)
        if quote.amount_cents > effective:
            errors["monthly_limit"] = (
                f"One recharge costs {pricing.format_money(quote.amount_cents, currency)}, "
                f"more than the monthly limit of {pricing.format_money(effective, currency)}."
            )
    if errors:
        raise InvalidSettingsError(errors)
    return Settings(enabled, threshold_value, amount_value, limit)


def _whole(text: str, name: str, errors: dict[str, str], label: str) -> int | None:
    text = (text or "").strip()
    if not text.isdigit() or len(text) > 13:
        errors[name] = f"{label} must be a whole number of credits."
        return None
    return int(text)


def save_settings(user_id: int, settings: Settings) -> AutoRecharge:
    """Store the settings; commits. Enabling without a saved card raises
    InvalidSettingsError and changes nothing; enabling clears the failure count."""
    with atomic():
        row = _settings_row(user_id)
        if settings.enabled and not row.has_card:
            raise InvalidSettingsError(
                {"enabled": "Save a card first: auto-recharge charges your saved card."}
            )
        if settings.enabled and not row.enabled:
            row.consecutive_failures, row.disabled_reason = 0, None
        row.enabled, row.threshold, row.amount = (
            settings.enabled,
            settings.threshold,
            settings.amount,
        )
        row.monthly_limit_cents = settings.monthly_limit_cents
        row.updated_at = utcnow()
        ledger_autorecharge.set_trigger(user_id, settings.threshold if settings.enabled else None)
    return row


# --- saving a card


def start_card_setup(user: User, base_url: str) -> str:
    """Open a setup-mode Checkout Session saving a card for the user; returns its URL."""
    customer_id = ensure_customer(user)
    metadata = {"purpose": CARD_PURPOSE, "user_id": str(user.id)}
    session = stripe_gateway.create_checkout_session(
        {
            "mode": "setup",
            "customer": customer_id,
            "currency": current_app.config["CURRENCY"],
            "metadata": metadata,
            "setup_intent_data": {"metadata": metadata},
            "success_url": f"{base_url}/credits?card_session={{CHECKOUT_SESSION_ID}}",
            "cancel_url": f"{base_url}/credits",
        },
        idempotency_key=f"card-setup-{user.id}-{utcnow().timestamp():.0f}",
    )
    with atomic():
        _settings_row(user.id).card_session_id = session["id"]
    return session["url"]


def card_session_returned(user: User, session_id: str) -> bool:
    """Back from a setup session on /credits: save its card if it is this user's pending
    one (never asks Stripe about any other id). True when a card was saved."""
    row = settings_for(user.id)
    if not session_id or row is None or row.card_session_id != session_id:
        return False
    return save_card_from_session(stripe_gateway.retrieve_checkout_session(session_id))


def save_card_from_session(session: Mapping[str, Any]) -> bool:
    """Make the card of a completed session the user's default; True when one was saved.

    A setup-mode session gives its SetupIntent's card, a purchase with save_card its
    PaymentIntent's. The card always comes from Stripe's objects, never from a browser,
    and only for the customer the user's account already has.
    """
    if session.get("status") != "complete":
        return False
    purpose = purpose_of(session)
    metadata = session.get("metadata") or {}
    if purpose == CARD_PURPOSE:
        source = stripe_gateway.retrieve_setup_intent(id_of(session.get("setup_intent")) or "")
    elif purpose == TOPUP_PURPOSE and metadata.get("save_card") == "1":
        intent_id = id_of(session.get("payment_intent"))
        source = stripe_gateway.retrieve_payment_intent(intent_id) if intent_id else {}
    else:
        return False
    ids = metadata_ids(metadata, "user_id")
    user = db.session.get(User, ids[0]) if ids else None
    method_id = id_of(source.get("payment_method"))
    customer_id = id_of(session.get("customer"))
    if user is None or not method_id or not customer_id or user.stripe_customer_id != customer_id:
        return False
    method = stripe_gateway.retrieve_payment_method(method_id)
    stripe_gateway.set_default_payment_method(customer_id, method_id)
    _store_card(user.id, method, session.get("id"))
    return True


def _store_card(user_id: int, method: Mapping[str, Any], session_id: str | None) -> None:
    card = method.get("card") or {}
    with atomic():
        row = _settings_row(user_id)
        row.payment_method_id = method["id"]
        row.card_brand = (card.get("display_brand") or card.get("brand") or "card")[:30]
        row.card_last4 = (card.get("last4") or "")[:4] or None
        row.card_exp_month, row.card_exp_year = card.get("exp_month"), card.get("exp_year")
        if row.card_session_id == session_id:
            row.card_session_id = None
        row.updated_at = utcnow()


# --- charging (the worker's job)


def charge_attempt(purchase_id: int) -> Outcome:
    """Charge a recorded auto-recharge attempt off-session and apply Stripe's answer.

    Safe to run again at any point (a worker killed after Stripe answered, a retried
    job): the card and the idempotency key were recorded before the call, so Stripe
    answers the first charge again and the outcome applies once. The card is the
    customer's default as Stripe has it now (one changed in the portal is charged).
    A Stripe failure raises PaymentProviderError: the job is retried later.
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
        return ledger_autorecharge.fail_attempt(purchase_id, "It could not be charged in time.")
    user = purchase.user
    method_id = purchase.stripe_payment_method_id
    if method_id is None:
        method_id = _default_card(user)
        if method_id is None:
            return ledger_autorecharge.fail_attempt(purchase_id, "There is no saved card.")
        method_id = ledger_autorecharge.record_payment_method(purchase_id, method_id)
    intent = stripe_gateway.charge_off_session(
        _intent_params(purchase, user, method_id), purchase.idempotency_key
    )
    return ledger_autorecharge.apply_payment_intent(purchase_id, intent)


def _default_card(user: User) -> str | None:
    """The customer's default card as Stripe has it now (shown on /credits from then on)."""
    if not user.stripe_customer_id:
        return None
    customer = stripe_gateway.retrieve_customer(user.stripe_customer_id)
    method_id = id_of((customer.get("invoice_settings") or {}).get("default_payment_method"))
    settings = settings_for(user.id)
    if method_id and (settings is None or settings.payment_method_id != method_id):
        _store_card(user.id, stripe_gateway.retrieve_payment_method(method_id), None)
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


@jobs.handler(ledger_autorecharge.CHARGE_JOB)
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
    return ledger_autorecharge.apply_payment_intent(ids[0], intent)


# --- the card holder confirms


def confirmation_url(user: User, purchase_id: int, base_url: str) -> str | None:
    """The Checkout Session paying an attempt that waits for the card holder, opened once.

    NotFoundError for someone else's or an unknown attempt; None when it no longer waits
    (paid, failed or expired).
    """
    purchase = db.session.scalar(
        sa.select(Purchase).where(
            Purchase.id == purchase_id,
            Purchase.user_id == user.id,
            Purchase.source == PurchaseSource.AUTO_RECHARGE,
        )
    )
    if purchase is None:
        raise NotFoundError("No such auto-recharge.")
    if purchase.status != PurchaseStatus.NEEDS_ACTION:
        return None
    if purchase.checkout_url:
        return purchase.checkout_url
    params = checkout_session_params(purchase, ensure_customer(user), base_url)
    session = stripe_gateway.create_checkout_session(
        params, idempotency_key=f"confirm-{purchase.idempotency_key}"
    )
    with atomic():
        db.session.execute(
            sa.update(Purchase)
            .where(Purchase.id == purchase_id, Purchase.stripe_checkout_session_id.is_(None))
            .values(stripe_checkout_session_id=session["id"], checkout_url=session["url"])
        )
    return session["url"]


def recent_attempts(user_id: int, limit: int = 10) -> list[Purchase]:
    return list(
        db.session.scalars(
            sa.select(Purchase)
            .where(Purchase.user_id == user_id, Purchase.source == PurchaseSource.AUTO_RECHARGE)
            .order_by(Purchase.id.desc())
            .limit(limit)
        )
    )


def waiting_attempt(user_id: int) -> Purchase | None:
    """The attempt waiting for the card holder, if any (shown on /credits)."""
    return db.session.scalar(
        sa.select(Purchase)
        .where(
            Purchase.user_id == user_id,
            Purchase.source == PurchaseSource.AUTO_RECHARGE,
            Purchase.status == PurchaseStatus.NEEDS_ACTION,
        )
        .order_by(Purchase.id.desc())
        .limit(1)
    )


# --- mail (built by the worker when it sends; recorded by the ledger with each outcome)


def _attempt_letter(payload: dict[str, Any]) -> tuple[Purchase, User] | None:
    purchase = db.session.get(Purchase, payload.get("purchase_id"))
    return (purchase, purchase.user) if purchase is not None else None


@letter("auto_recharge_failed")
def _failed_letter(payload: dict[str, Any]) -> Letter | None:
    found = _attempt_letter(payload)
    if found is None:
        return None
    purchase, user = found
    settings = settings_for(user.id)
    return Letter(
        user.email,
        "auto-recharge payment failed",
        "auto_recharge_failed",
        {
            "purchase": purchase,
            "turned_off": bool(settings and settings.disabled_reason and not settings.enabled),
            "amount": pricing.format_money(purchase.amount_cents, purchase.currency),
        },
    )


@letter("auto_recharge_needs_action")
def _needs_action_letter(payload: dict[str, Any]) -> Letter | None:
    found = _attempt_letter(payload)
    if found is None or found[0].status != PurchaseStatus.NEEDS_ACTION:
        return None  # paid or expired meanwhile: nothing to confirm
    purchase, user = found
    return Letter(
        user.email,
        "please confirm your auto-recharge",
        "auto_recharge_needs_action",
        {
            "purchase": purchase,
            "amount": pricing.format_money(purchase.amount_cents, purchase.currency),
        },
    )
