"""Auto-recharge settings: reading them, the settings form's rules, and saving them."""

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from flask import current_app

from webapp.domain import pricing
from webapp.domain.errors import DomainError, InvalidPurchaseError
from webapp.domain.ledger import autorecharge as ledger_autorecharge
from webapp.domain.ledger import recharge_outcomes
from webapp.domain.sql import locked
from webapp.domain.transaction import atomic
from webapp.extensions import db
from webapp.models import AutoRecharge
from webapp.models.types import utcnow

MAX_THRESHOLD = 10**12


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


def locked_settings_row(user_id: int) -> AutoRecharge:
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


# --- the settings form


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
    InvalidSettingsError and changes nothing; enabling clears the failure count.

    Turning it off also ends, in the same transaction, an attempt Stripe has not been
    asked to charge yet (one already sent is still settled by Stripe's answer).
    """
    with atomic():
        row = locked_settings_row(user_id)
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
        if not settings.enabled:
            # After set_trigger: it waits for a debit holding the account's lock, so an
            # attempt that debit records is committed and seen here.
            recharge_outcomes.withdraw_unsent(user_id)
    return row
