"""Stripe answers and signed events built from Stripe's own example objects.

The app's StripeClient gets a StripeDouble (webapp/stripe_double/) as its
HTTP client, with these fixtures as templates: requests are checked as they leave the
`stripe` library, and answers have Stripe's real shapes.
"""

import copy
import json
import secrets
import time
from functools import cache
from pathlib import Path
from typing import Any

from webapp.stripe_double import StripeDouble
from webapp.stripe_double.events import signature_header

FIXTURES = Path(__file__).parent / "fixtures" / "stripe"
WEBHOOK_SECRET = "whsec_test_secret"


@cache
def _fixture_text(object_type: str) -> str:
    return (FIXTURES / f"{object_type}.json").read_text()


def fixture(object_type: str, **overrides: Any) -> dict[str, Any]:
    """A fresh copy of Stripe's example `object_type` with some fields replaced."""
    obj = json.loads(_fixture_text(object_type))
    obj.update(overrides)
    return obj


def fixture_templates(object_type: str) -> dict[str, Any]:
    try:
        obj = fixture(object_type)
    except FileNotFoundError:
        return {"object": object_type, "livemode": False, "metadata": {}}
    obj.pop("id", None)
    obj.pop("created", None)  # new objects are created now, as in Stripe
    if object_type == "checkout.session":
        obj.update(NEW_SESSION_FIELDS)
    return obj


# Stripe's example session reports tax and an invoice; a session made by a test has none
# unless it asks.
NEW_SESSION_FIELDS = {
    "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
    "invoice": None,
    "invoice_creation": {"enabled": False, "invoice_data": {}},
}


def new_double() -> StripeDouble:
    return StripeDouble(fixture_templates)


def event(
    event_type: str,
    obj: dict[str, Any],
    *,
    event_id: str | None = None,
    created: int | None = None,
    **extra,
) -> dict[str, Any]:
    """Stripe's example event wrapping `obj`."""
    return fixture(
        "event",
        id=event_id or f"evt_{secrets.token_hex(12)}",
        type=event_type,
        created=created or int(time.time()),
        data={"object": copy.deepcopy(obj)},
        **extra,
    )


def sign(payload: str, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    return signature_header(payload, secret, timestamp)


def deliver(client, evt: dict[str, Any], *, secret: str = WEBHOOK_SECRET, timestamp=None):
    """POST the event to the webhook exactly as Stripe does: raw JSON plus its signature."""
    payload = json.dumps(evt)
    return client.post(
        "/webhooks/stripe",
        data=payload,
        content_type="application/json",
        headers={"Stripe-Signature": sign(payload, secret, timestamp)},
    )


def checkout_session(
    purchase_id: int,
    user_id: int,
    *,
    amount: int,
    currency: str = "usd",
    session_id: str | None = None,
    payment_status: str = "paid",
    status: str = "complete",
    purpose: str = "credits_topup",
    **overrides,
) -> dict[str, Any]:
    """A Checkout Session as Stripe would report it for one of our purchases."""
    fields = {
        "id": session_id or f"cs_test_{secrets.token_hex(12)}",
        "amount_total": amount,
        "amount_subtotal": amount,
        "currency": currency,
        "mode": "payment",
        "payment_status": payment_status,
        "status": status,
        "payment_intent": f"pi_{secrets.token_hex(8)}",
        "client_reference_id": str(user_id),
        "metadata": {"purpose": purpose, "purchase_id": str(purchase_id), "user_id": str(user_id)},
        **NEW_SESSION_FIELDS,
    }
    return fixture("checkout.session", **{**fields, **overrides})


def add_price(
    double: StripeDouble,
    price_id: str,
    *,
    credits: str | None = "500",
    amount: int | None = 900,
    currency: str = "usd",
    product_credits: str | None = None,
    product_name: str = "Credits pack",
    product_active: bool = True,
    **fields: Any,
) -> dict[str, Any]:
    """A one-time Price (Stripe's example, made one-time) and its Product, as made in the
    Dashboard; `credits` goes in the Price's metadata, `product_credits` in the Product's."""
    product = double.new_object(
        "product",
        "prod",
        name=product_name,
        active=product_active,
        default_price=price_id,
        metadata={} if product_credits is None else {"credits": product_credits},
    )
    price = {
        "id": price_id,
        "active": True,
        "type": "one_time",
        "recurring": None,
        "currency": currency,
        "unit_amount": amount,
        "unit_amount_decimal": None if amount is None else str(amount),
        "product": product["id"],
        "transform_quantity": None,
        "metadata": {} if credits is None else {"credits": credits},
        **fields,
    }
    return double.new_object("price", "price", **price)
