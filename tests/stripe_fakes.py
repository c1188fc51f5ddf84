"""Stripe answers and signed events built from Stripe's own example objects.

The app's StripeClient gets a StripeDouble (webapp/sandbox/stripe_double.py) as its
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

import stripe

from webapp.stripe_double import StripeDouble

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
    return obj


def new_double() -> StripeDouble:
    return StripeDouble(fixture_templates)


def event(event_type: str, obj: dict[str, Any], *, event_id: str | None = None,
          created: int | None = None, **extra) -> dict[str, Any]:
    """Stripe's example event wrapping `obj`."""
    return fixture("event", id=event_id or f"evt_{secrets.token_hex(12)}", type=event_type,
                   created=created or int(time.time()), data={"object": copy.deepcopy(obj)},
                   **extra)


def sign(payload: str, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    return stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp)


def deliver(client, evt: dict[str, Any], *, secret: str = WEBHOOK_SECRET, timestamp=None):
    """POST the event to the webhook exactly as Stripe does: raw JSON plus its signature."""
    payload = json.dumps(evt)
    return client.post("/webhooks/stripe", data=payload, content_type="application/json",
                       headers={"Stripe-Signature": sign(payload, secret, timestamp)})


def checkout_session(purchase_id: int, user_id: int, *, amount: int, currency: str = "usd",
                     session_id: str | None = None, payment_status: str = "paid",
                     status: str = "complete", purpose: str = "credits_topup",
                     **overrides) -> dict[str, Any]:
    """A Checkout Session as Stripe would report it for one of our purchases."""
    fields = {
        "id": session_id or f"cs_test_{secrets.token_hex(12)}", "amount_total": amount,
        "amount_subtotal": amount, "currency": currency, "mode": "payment",
        "payment_status": payment_status, "status": status,
        "payment_intent": f"pi_{secrets.token_hex(8)}", "client_reference_id": str(user_id),
        "metadata": {"purpose": purpose, "purchase_id": str(purchase_id),
                     "user_id": str(user_id)},
    }
    return fixture("checkout.session", **{**fields, **overrides})
