"""The only module that talks to Stripe: API calls through StripeClient, webhook verification."""

import json
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import stripe
from flask import current_app

from webapp.domain.errors import CardUnavailableError, PaymentProviderError, SignatureError
from webapp.domain.stripe_objects import id_of
from webapp.domain.transaction import end_idle_read

log = logging.getLogger(__name__)

USER_MESSAGE = "Payments are unavailable right now; nothing was charged. Please try again."


def init_app(app, api_key: str | None, http_client: stripe.HTTPClient | None) -> None:
    """Build the app's one StripeClient; the app factory chooses the key and HTTP client."""
    base = {"api": app.config["STRIPE_API_BASE"]} if app.config["STRIPE_API_BASE"] else None
    app.extensions["stripe_client"] = stripe.StripeClient(
        api_key or "sk_missing", http_client=http_client, base_addresses=base, max_network_retries=2
    )


def _client() -> stripe.StripeClient:
    return current_app.extensions["stripe_client"]


def _plain(obj) -> dict[str, Any]:
    return obj.to_dict(recursive=True) if hasattr(obj, "to_dict") else dict(obj)


def _call(description: str, func, *args, **kwargs):
    end_idle_read()
    try:
        return func(*args, **kwargs)
    except stripe.StripeError as exc:
        _log_failure(description, exc)
        raise PaymentProviderError(USER_MESSAGE) from exc


def _log_failure(description: str, exc: stripe.StripeError) -> None:
    # Stripe's own code and request id, never the request parameters.
    log.warning(
        "stripe %s failed: %s (%s, request %s)",
        description,
        type(exc).__name__,
        getattr(exc, "code", None),
        getattr(exc, "request_id", None),
    )


def create_customer(email: str, user_id: int, idempotency_key: str) -> str:
    customer = _call(
        "customer create",
        _client().v1.customers.create,
        params={"email": email, "metadata": {"user_id": str(user_id)}},
        options={"idempotency_key": idempotency_key},
    )
    return customer.id


def create_checkout_session(params: Mapping[str, Any], idempotency_key: str) -> dict[str, Any]:
    session = _call(
        "checkout session create",
        _client().v1.checkout.sessions.create,
        params=dict(params),
        options={"idempotency_key": idempotency_key},
    )
    return _plain(session)


def retrieve_checkout_session(session_id: str) -> dict[str, Any]:
    return _plain(
        _call("checkout session retrieve", _client().v1.checkout.sessions.retrieve, session_id)
    )


def expire_checkout_session(session_id: str) -> dict[str, Any]:
    """Close an open Checkout Session so it can no longer be paid; Stripe then sends
    `checkout.session.expired`. A session that is not open any more is an error."""
    return _plain(
        _call("checkout session expire", _client().v1.checkout.sessions.expire, session_id)
    )


def list_checkout_sessions(created_since: int, page_size: int = 100) -> Iterator[dict[str, Any]]:
    """Every Checkout Session created since the Unix time, following all pages."""
    page = _call(
        "checkout session list",
        _client().v1.checkout.sessions.list,
        params={"created": {"gte": created_since}, "limit": page_size},
    )
    pages = page.auto_paging_iter()
    # Each further page is fetched by next(): through _call, so its errors read the same.
    while (session := _call("checkout session list", next, pages, None)) is not None:
        yield _plain(session)


def retrieve_charge(charge_id: str) -> dict[str, Any]:
    return _plain(_call("charge retrieve", _client().v1.charges.retrieve, charge_id))


def find_price(price_id: str) -> dict[str, Any] | None:
    """The Price with its Product expanded; None when Stripe has no such Price
    (PaymentProviderError when Stripe cannot be asked)."""
    try:
        return _plain(
            _call(
                "price retrieve",
                _client().v1.prices.retrieve,
                price_id,
                params={"expand": ["product"]},
            )
        )
    except PaymentProviderError as exc:
        if isinstance(exc.__cause__, stripe.InvalidRequestError):
            return None
        raise


def retrieve_receipt_charge(payment_intent_id: str) -> dict[str, Any] | None:
    """The charge that paid a PaymentIntent (its `receipt_url`), None when it has none."""
    intent = _plain(
        _call(
            "payment intent retrieve",
            _client().v1.payment_intents.retrieve,
            payment_intent_id,
            params={"expand": ["latest_charge"]},
        )
    )
    charge = intent.get("latest_charge")
    return charge if isinstance(charge, dict) else None


def retrieve_invoice(invoice_id: str) -> dict[str, Any]:
    return _plain(_call("invoice retrieve", _client().v1.invoices.retrieve, invoice_id))


def retrieve_payment_intent(payment_intent_id: str) -> dict[str, Any]:
    return _plain(
        _call("payment intent retrieve", _client().v1.payment_intents.retrieve, payment_intent_id)
    )


def retrieve_invoice_with_payments(invoice_id: str) -> dict[str, Any]:
    """The invoice with its payments listed (newer API versions list them only expanded)."""
    return _plain(
        _call(
            "invoice retrieve",
            _client().v1.invoices.retrieve,
            invoice_id,
            params={"expand": ["payments"]},
        )
    )


def invoice_paid_by(payment_intent_id: str) -> str | None:
    """The id of the invoice this payment intent paid, if it paid one."""
    page = _call(
        "invoice payment list",
        _client().v1.invoice_payments.list,
        params={
            "payment": {"type": "payment_intent", "payment_intent": payment_intent_id},
            "limit": 1,
        },
    )
    records = _plain(page).get("data") or []
    return id_of(records[0].get("invoice")) if records else None


def create_refund(payment_intent_id: str, amount_cents: int | None, idempotency_key: str) -> dict:
    params: dict[str, Any] = {"payment_intent": payment_intent_id}
    if amount_cents is not None:
        params["amount"] = amount_cents
    refund = _call(
        "refund create",
        _client().v1.refunds.create,
        params=params,
        options={"idempotency_key": idempotency_key},
    )
    return _plain(refund)


# --- auto-recharge: saved cards and off-session charges


def retrieve_customer(customer_id: str) -> dict[str, Any]:
    return _plain(_call("customer retrieve", _client().v1.customers.retrieve, customer_id))


def set_default_payment_method(customer_id: str, payment_method_id: str) -> dict[str, Any]:
    customer = _call(
        "customer update",
        _client().v1.customers.update,
        customer_id,
        params={"invoice_settings": {"default_payment_method": payment_method_id}},
    )
    return _plain(customer)


def retrieve_setup_intent(setup_intent_id: str) -> dict[str, Any]:
    return _plain(
        _call("setup intent retrieve", _client().v1.setup_intents.retrieve, setup_intent_id)
    )


def retrieve_payment_method(payment_method_id: str) -> dict[str, Any]:
    return _plain(
        _call("payment method retrieve", _client().v1.payment_methods.retrieve, payment_method_id)
    )


def charge_off_session(params: Mapping[str, Any], idempotency_key: str) -> dict[str, Any]:
    """Create and confirm an off-session PaymentIntent; returns it as Stripe answered.

    A card error (a decline, or `authentication_required`) is an answer, not a failure:
    the PaymentIntent Stripe attached to the error comes back with `last_payment_error`
    set. A card no longer attached to the customer (removed in the portal) raises
    CardUnavailableError: Stripe made no charge, and an earlier request under the same key
    that did charge would have been answered instead. Anything else (network, API
    errors) raises PaymentProviderError; the same idempotency key again never makes a
    second charge.
    """
    end_idle_read()
    try:
        intent = _client().v1.payment_intents.create(
            params={**params, "confirm": True, "off_session": True},
            options={"idempotency_key": idempotency_key},
        )
    except stripe.CardError as exc:
        error = (exc.json_body or {}).get("error") or {}
        intent = dict(error.get("payment_intent") or {})
        details = {key: error.get(key) for key in ("type", "code", "decline_code", "message")}
        intent["last_payment_error"] = {**(intent.get("last_payment_error") or {}), **details}
        intent.setdefault("status", "requires_payment_method")
        return intent
    except stripe.InvalidRequestError as exc:
        if exc.code == "resource_missing" and exc.param == "payment_method":
            raise CardUnavailableError("The saved card is no longer available.") from exc
        _log_failure("payment intent create", exc)
        raise PaymentProviderError(USER_MESSAGE) from exc
    except stripe.StripeError as exc:
        _log_failure("payment intent create", exc)
        raise PaymentProviderError(USER_MESSAGE) from exc
    return _plain(intent)


def cancel_payment_intent(payment_intent_id: str) -> dict[str, Any] | None:
    """Cancel an open PaymentIntent; None when it is no longer open (nothing to cancel)."""
    try:
        return _plain(
            _call("payment intent cancel", _client().v1.payment_intents.cancel, payment_intent_id)
        )
    except PaymentProviderError as exc:
        cause = exc.__cause__
        if isinstance(cause, stripe.InvalidRequestError) and (
            cause.code == "payment_intent_unexpected_state"
        ):
            return None
        raise


def create_portal_session(customer_id: str, return_url: str) -> dict[str, Any]:
    portal = _call(
        "portal session create",
        _client().v1.billing_portal.sessions.create,
        params={"customer": customer_id, "return_url": return_url},
    )
    return _plain(portal)


def verify_event(payload: bytes, signature_header: str | None) -> dict[str, Any]:
    """The event in a webhook delivery, after checking its signature on the raw bytes.

    Raises SignatureError for a missing or wrong signature, a stale timestamp, or a
    body that is not a Stripe event.
    """
    config = current_app.config
    if not signature_header:
        raise SignatureError("missing Stripe-Signature header")
    try:
        text = payload.decode("utf-8")
        stripe.WebhookSignature.verify_header(
            text,
            signature_header,
            config["STRIPE_WEBHOOK_SECRET"],
            config["STRIPE_WEBHOOK_TOLERANCE"],
        )
        event = json.loads(text)
    except (stripe.SignatureVerificationError, UnicodeDecodeError, ValueError) as exc:
        raise SignatureError(str(exc).split("\n")[0][:200]) from exc
    if not _looks_like_event(event):
        raise SignatureError("body is not a Stripe event")
    return event


def _looks_like_event(event: Any) -> bool:
    return (
        isinstance(event, dict)
        and event.get("object") == "event"
        and isinstance(event.get("id"), str)
        and isinstance(event.get("type"), str)
        and isinstance(event.get("data"), dict)
        and isinstance(event["data"].get("object"), dict)
    )


# --- subscriptions


def find_checkout_session(session_id: str) -> dict[str, Any] | None:
    """The Checkout Session, or None when Stripe has no such session (PaymentProviderError
    for any other failure)."""
    try:
        return retrieve_checkout_session(session_id)
    except PaymentProviderError as exc:
        if isinstance(exc.__cause__, stripe.InvalidRequestError):
            return None
        raise
