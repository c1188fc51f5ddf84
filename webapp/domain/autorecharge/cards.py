"""The saved card auto-recharge charges: saving it through Checkout, keeping its details."""

from collections.abc import Mapping
from typing import Any

from flask import current_app

from webapp.domain import stripe_gateway
from webapp.domain.autorecharge.settings import locked_settings_row, settings_for
from webapp.domain.checkout import ensure_customer
from webapp.domain.stripe_objects import (
    CARD_PURPOSE,
    TOPUP_PURPOSE,
    id_of,
    metadata_ids,
    purpose_of,
)
from webapp.domain.transaction import atomic
from webapp.extensions import db
from webapp.models import User
from webapp.models.types import utcnow


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
        locked_settings_row(user.id).card_session_id = session["id"]
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
    store_card(user.id, method, session.get("id"))
    return True


def store_card(user_id: int, method: Mapping[str, Any], session_id: str | None) -> None:
    """Keep the PaymentMethod's card as the user's saved card (brand, last 4, expiry); commits."""
    card = method.get("card") or {}
    with atomic():
        row = locked_settings_row(user_id)
        row.payment_method_id = method["id"]
        row.card_brand = (card.get("display_brand") or card.get("brand") or "card")[:30]
        row.card_last4 = (card.get("last4") or "")[:4] or None
        row.card_exp_month, row.card_exp_year = card.get("exp_month"), card.get("exp_year")
        if row.card_session_id == session_id:
            row.card_session_id = None
        row.updated_at = utcnow()
