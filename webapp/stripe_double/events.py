"""Webhook events as Stripe sends them: built about an object, signed, and POSTed.

The sandbox delivers through the app's own test client, the e2e Stripe server over
HTTP; both give `deliver_event` a `post(payload, headers) -> status` of their own.
"""

import json
import secrets
import time
from collections.abc import Callable
from typing import Any

import stripe

Post = Callable[[str, dict[str, str]], int]


def stripe_event(event_type: str, obj: dict[str, Any]) -> dict[str, Any]:
    """A new event of `event_type` carrying `obj` as it is now."""
    return {
        "id": f"evt_{secrets.token_hex(12)}",
        "object": "event",
        "api_version": "2025-09-30",
        "created": int(time.time()),
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
        "data": {"object": obj},
    }


def event_payload(event_type: str, obj: dict[str, Any]) -> str:
    """The JSON body Stripe POSTs for a new event of `event_type` carrying `obj`."""
    return json.dumps(stripe_event(event_type, obj))


def signature_header(payload: str, secret: str, timestamp: int | None = None) -> str:
    """The `Stripe-Signature` header of `payload` signed with the webhook `secret`, at
    `timestamp` (now without it): Stripe signs every delivery attempt afresh."""
    return stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp)


def deliver_event(event_type: str, obj: dict[str, Any], *, secret: str, post: Post) -> int:
    """Sign an event about `obj` with the webhook `secret` as Stripe does and POST it with
    `post`: the status the webhook answered."""
    payload = event_payload(event_type, obj)
    signature = signature_header(payload, secret)
    return post(payload, {"Stripe-Signature": signature, "Content-Type": "application/json"})
