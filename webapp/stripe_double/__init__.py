"""An in-process Stripe API double, plugged into the `stripe` library as its HTTP client.

The development sandbox uses it so the app's Stripe code runs unchanged without keys;
the tests use it with Stripe's published example objects as templates, so every request
is checked as it leaves the library. It knows the few endpoints this app calls.
"""

import copy
import itertools
import json
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import stripe

from webapp.stripe_double.params import InvalidParams, check_request

Templates = Callable[[str], dict[str, Any]]


def minimal_templates(object_type: str) -> dict[str, Any]:
    """Bare objects of each type, for the sandbox (tests use Stripe's full examples)."""
    return {"object": object_type, "livemode": False, "metadata": {}}


def decode_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's bracketed form encoding (`a[b][0][c]=v`) back into nested dicts and lists."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = key.replace("]", "").split("[")
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return _lists_from_numbered_dicts(root)


def _lists_from_numbered_dicts(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {key: _lists_from_numbered_dicts(value) for key, value in node.items()}
    if converted and all(key.isdigit() for key in converted):
        return [converted[key] for key in sorted(converted, key=int)]
    return converted


class StripeDouble(stripe.HTTPClient):
    name = "stripe_double"

    def __init__(self, templates: Templates = minimal_templates, checkout_base: str | None = None):
        super().__init__()
        self.templates = templates
        self.checkout_base = checkout_base
        self.objects: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.failures: list[tuple[str, int, dict]] = []
        # Path prefixes Stripe cannot be reached for (connection errors) until removed.
        self.unreachable: set[str] = set()
        self._idempotent: dict[str, tuple[str, int, str]] = {}
        # payment_intent_data.metadata of each session, given to its PaymentIntent as Stripe does.
        self.intent_metadata: dict[str, dict[str, Any]] = {}
        self._lock = threading.RLock()
        self._counter = itertools.count(1)
        self.subscription_data: dict[str, dict[str, Any]] = {}  # by Checkout Session id
        # Called with (method, path, status, answer) after Stripe has acted, before the app
        # reads the answer: tests make webhooks overtake answers, or the caller die, here.
        self.after_answer: Callable[[str, str, int, dict], None] | None = None
        self.intent_data: dict[str, dict[str, Any]] = {}  # payment_intent_data, by session id
        self.setup_data: dict[str, dict[str, Any]] = {}  # setup_intent_data, by session id

    # --- the HTTPClient interface -------------------------------------------------

    def request(self, method, url, headers, post_data=None, *, _usage=None):
        parts = urlsplit(url)
        raw = post_data if method == "post" else parts.query
        if isinstance(raw, bytes):
            raw = raw.decode()
        params = decode_form(parse_qsl(raw or "", keep_blank_values=True))
        key = (headers or {}).get("Idempotency-Key")
        if any(parts.path.startswith(prefix) for prefix in self.unreachable):
            raise stripe.APIConnectionError("Stripe double: unreachable", should_retry=False)
        with self._lock:
            self.requests.append(
                {
                    "method": method,
                    "url": url,
                    "path": parts.path,
                    "params": params,
                    "idempotency_key": key,
                    "headers": dict(headers or {}),
                }
            )
            signature = json.dumps([method, parts.path, params], sort_keys=True)
            if key and key in self._idempotent:
                body, status, first = self._idempotent[key]
                if first != signature:
                    return (
                        json.dumps(
                            _error(
                                "idempotency_error",
                                "Keys for idempotent requests can only be used "
                                "with the same parameters they were first used with.",
                            )
                        ),
                        400,
                        {},
                    )
                return body, status, {"Idempotent-Replayed": "true"}
            status, obj = self._answer(method, parts.path, params)
            body = json.dumps(obj)
            if key and status < 500:
                self._idempotent[key] = (body, status, signature)
        if self.after_answer is not None:
            # Outside the lock: a test may deliver a webhook here, before the app hears back.
            self.after_answer(method, parts.path, status, obj)
        return body, status, {"Request-Id": f"req_{next(self._counter)}"}

    def close(self):
        pass

    # --- what tests and the sandbox use -------------------------------------------

    def fail_next(self, path_prefix: str, status: int = 500, error_type: str = "api_error"):
        """The next request under `path_prefix` gets this error instead of an answer."""
        self.failures.append(
            (
                path_prefix,
                status,
                {
                    "error": {
                        "type": error_type,
                        "message": "Injected failure from the Stripe double.",
                    }
                },
            )
        )

    def requests_to(self, method: str, path_prefix: str) -> list[dict[str, Any]]:
        return [
            r for r in self.requests if r["method"] == method and r["path"].startswith(path_prefix)
        ]

    def new_object(self, object_type: str, prefix: str, **fields) -> dict[str, Any]:
        obj = copy.deepcopy(self.templates(object_type))
        obj.update(fields)
        obj.setdefault("id", f"{prefix}_{secrets.token_hex(12)}")
        obj["object"] = object_type
        obj.setdefault("created", int(time.time()))
        with self._lock:
            self.objects[obj["id"]] = obj
        return obj

    def complete_checkout_session(
        self, session_id: str, *, paid: bool = True, card: str = "4242"
    ) -> dict[str, Any]:
        """The customer pays (or starts a delayed payment, or saves a card in setup mode) with
        the test card ending in `card` (see TEST_CARDS): the session as Stripe then has it."""
        with self._lock:
            session = self.objects[session_id]
            session["status"] = "complete"
            session["payment_status"] = "paid" if paid else "unpaid"
            if session.get("mode") == "setup" and not session.get("setup_intent"):
                self._complete_setup(session, card)
            if session.get("mode") == "payment" and not session.get("payment_intent"):
                method = self.new_card(card, session.get("customer"))
                if self.intent_data.get(session_id, {}).get("setup_future_usage") != "off_session":
                    method["customer"] = None  # only a card saved for later stays attached
                intent = self.new_object(
                    "payment_intent",
                    "pi",
                    amount=session["amount_total"],
                    currency=session["currency"],
                    status="succeeded",
                    customer=session.get("customer"),
                    payment_method=method["id"],
                    last_payment_error=None,
                    next_action=None,
                    canceled_at=None,
                    setup_future_usage=self.intent_data.get(session_id, {}).get(
                        "setup_future_usage"
                    ),
                    metadata=dict(self.intent_metadata.get(session_id, {})),
                )
                charge = self.new_object(
                    "charge",
                    "ch",
                    amount=session["amount_total"],
                    currency=session["currency"],
                    amount_refunded=0,
                    refunded=False,
                    payment_intent=intent["id"],
                )
                if "receipt_url" in charge:  # Stripe's example charge has one: make it this one's
                    charge["receipt_url"] = (
                        f"https://pay.stripe.com/receipts/payment/{charge['id']}"
                    )
                intent["latest_charge"] = charge["id"]
                session["payment_intent"] = intent["id"]
                if paid and (session.get("invoice_creation") or {}).get("enabled"):
                    self._checkout_invoice(session, intent, charge)
            if session.get("mode") == "subscription" and paid and not session.get("subscription"):
                self._subscribe(session)
            return copy.deepcopy(session)

    def _checkout_invoice(self, session: dict[str, Any], intent: dict, charge: dict) -> None:
        """The paid invoice Stripe issues for a session with invoice_creation enabled."""
        invoice = self.new_object(
            "invoice",
            "in",
            customer=session.get("customer"),
            billing_reason="manual",
            status="paid",
            amount_due=session["amount_total"],
            amount_paid=session["amount_total"],
            currency=session["currency"],
            subscription=None,
            parent=None,
            metadata=dict(
                (session["invoice_creation"].get("invoice_data") or {}).get("metadata") or {}
            ),
            lines={"object": "list", "has_more": False, "data": []},
            payments={
                "object": "list",
                "data": [
                    {
                        "object": "invoice_payment",
                        "payment": {"type": "payment_intent", "payment_intent": intent["id"]},
                    }
                ],
            },
        )
        invoice["hosted_invoice_url"] = f"https://invoice.stripe.com/i/{invoice['id']}"
        invoice["invoice_pdf"] = f"https://pay.stripe.com/invoice/{invoice['id']}/pdf"
        session["invoice"] = invoice["id"]
        self.emit("invoice.finalized", invoice)
        self.emit("invoice.paid", invoice)

    def expire_checkout_session(self, session_id: str) -> dict[str, Any]:
        with self._lock:
            session = self.objects[session_id]
            session["status"] = "expired"
            return copy.deepcopy(session)

    # --- routing ------------------------------------------------------------------

    def _answer(self, method: str, path: str, params: dict[str, Any]) -> tuple[int, dict]:
        for index, (prefix, status, error) in enumerate(self.failures):
            if path.startswith(prefix):
                del self.failures[index]
                return status, error
        segments = path.strip("/").split("/")[1:]  # drop "v1"
        route = "/".join(segment if not _looks_like_id(segment) else "{id}" for segment in segments)
        handler = getattr(self, f"_{method}_{route.replace('/', '_').replace('{id}', 'id')}", None)
        if handler is None:
            return 404, _error("invalid_request_error", f"Unknown route {method} {path}")
        try:
            check_request(method, route, params)
        except InvalidParams as exc:
            return 400, _error("invalid_request_error", str(exc), param=exc.param)
        object_id = next((s for s in segments if _looks_like_id(s)), None)
        return handler(params, object_id) if object_id else handler(params)

    def _stored(self, object_id: str, params: dict[str, Any] | None = None) -> tuple[int, dict]:
        """The object as stored, with the fields named in `expand[]` replaced by their objects."""
        obj = self.objects.get(object_id)
        if obj is None:
            return 404, _error(
                "invalid_request_error", f"No such object: '{object_id}'", code="resource_missing"
            )
        obj = copy.deepcopy(obj)
        expand = (params or {}).get("expand") or []
        for field in expand if isinstance(expand, list) else [expand]:
            related = obj.get(field)
            if isinstance(related, str) and related in self.objects:
                obj[field] = copy.deepcopy(self.objects[related])
        return 200, obj

    def _post_customers(self, params):
        return 200, self.new_object(
            "customer", "cus", email=params.get("email"), metadata=params.get("metadata", {})
        )

    # Stripe Tax as the double computes it: this percentage of the subtotal, rounded down,
    # on sessions with automatic_tax[enabled]=true (0: no tax).
    tax_percent = 0

    def _line_price(self, item: dict[str, Any]) -> dict[str, Any] | None:
        """A line item's unit amount and currency: its price_data, or the stored Price."""
        if "price_data" in item:
            return item["price_data"]
        return self.objects.get(item.get("price", ""))

    def _post_checkout_sessions(self, params):
        items = params.get("line_items", [])
        prices = [self._line_price(item) for item in items]
        if any(price is None for price in prices):
            return 400, _error("invalid_request_error", "No such price", code="resource_missing")
        subtotal = sum(
            int(price["unit_amount"]) * int(item.get("quantity", 1))
            for item, price in zip(items, prices, strict=True)
        )
        mode = params.get("mode", "payment")
        taxed = (params.get("automatic_tax") or {}).get("enabled") == "true"
        tax = subtotal * self.tax_percent // 100 if taxed else 0
        invoice_creation = params.get("invoice_creation") or {}
        session = self.new_object(
            "checkout.session",
            "cs_test",
            mode=mode,
            status="open",
            payment_status="unpaid",
            amount_total=subtotal + tax,
            amount_subtotal=subtotal,
            total_details={"amount_discount": 0, "amount_shipping": 0, "amount_tax": tax},
            automatic_tax={"enabled": taxed, "liability": None, "status": None},
            invoice_creation={
                "enabled": invoice_creation.get("enabled") == "true",
                "invoice_data": invoice_creation.get("invoice_data") or {},
            },
            invoice=None,
            currency=params.get("currency") or (prices[0]["currency"] if prices else "usd"),
            customer=params.get("customer"),
            client_reference_id=params.get("client_reference_id"),
            metadata=params.get("metadata", {}),
            success_url=params.get("success_url"),
            cancel_url=params.get("cancel_url"),
            payment_intent=None,
            subscription=None,
            expires_at=int(time.time()) + 24 * 3600,
        )
        if mode == "subscription":
            self.subscription_data[session["id"]] = {
                "line_items": items,
                **params.get("subscription_data", {}),
            }
        session["url"] = self._checkout_url(session)
        self.intent_metadata[session["id"]] = dict(
            (params.get("payment_intent_data") or {}).get("metadata") or {}
        )
        self.intent_data[session["id"]] = dict(params.get("payment_intent_data") or {})
        if mode == "setup":
            session.update(
                amount_total=None,
                amount_subtotal=None,
                currency=params.get("currency"),
                payment_status="no_payment_required",
                setup_intent=None,
            )
            self.setup_data[session["id"]] = dict(params.get("setup_intent_data") or {})
        return 200, copy.deepcopy(session)

    def _post_checkout_sessions_id_expire(self, params, session_id):
        with self._lock:
            session = self.objects.get(session_id)
            if session is None or session.get("object") != "checkout.session":
                return self._stored(session_id)
            if session["status"] != "open":
                return 400, _error(
                    "invalid_request_error",
                    'Only Checkout Sessions with a status in ["open"] can be expired. '
                    f'This Checkout Session has a status of "{session["status"]}".',
                )
            session["status"] = "expired"
            self.emit("checkout.session.expired", session)
            return 200, copy.deepcopy(session)

    def _checkout_url(self, session: dict[str, Any]) -> str:
        if self.checkout_base is not None:
            return f"{self.checkout_base}/sandbox/checkout/{session['id']}"
        return f"https://checkout.stripe.com/c/pay/{session['id']}"

    def _get_checkout_sessions_id(self, params, session_id):
        return self._stored(session_id)

    def _get_checkout_sessions(self, params):
        since = int(params.get("created", {}).get("gte", 0))
        limit = int(params.get("limit", 10))
        sessions = sorted(
            (
                o
                for o in self.objects.values()
                if o["object"] == "checkout.session" and o["created"] >= since
            ),
            key=lambda o: (-o["created"], o["id"]),
        )
        after = params.get("starting_after")
        if after:
            ids = [s["id"] for s in sessions]
            sessions = sessions[ids.index(after) + 1 :] if after in ids else []
        page = sessions[:limit]
        return 200, {
            "object": "list",
            "url": "/v1/checkout/sessions",
            "has_more": len(sessions) > limit,
            "data": copy.deepcopy(page),
        }

    def _get_charges_id(self, params, charge_id):
        return self._stored(charge_id, params)

    def _get_payment_intents_id(self, params, intent_id):
        return self._stored(intent_id, params)

    def _get_prices_id(self, params, price_id):
        return self._stored(price_id, params)

    def _get_products_id(self, params, product_id):
        return self._stored(product_id, params)

    def _get_invoices_id(self, params, invoice_id):
        return self._stored(invoice_id, params)

    def _post_refunds(self, params):
        intent = self.objects.get(params.get("payment_intent", ""))
        if intent is None:
            return 404, _error(
                "invalid_request_error", "No such payment_intent", code="resource_missing"
            )
        charge = self.objects[intent["latest_charge"]]
        left = charge["amount"] - charge["amount_refunded"]
        amount = int(params.get("amount", left))
        if amount <= 0 or amount > left:
            return 400, _error(
                "invalid_request_error",
                "Refund amount is greater than unrefunded amount on charge",
                code="amount_too_large",
            )
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        refund = self.new_object(
            "refund",
            "re",
            amount=amount,
            charge=charge["id"],
            payment_intent=intent["id"],
            currency=charge["currency"],
            status="succeeded",
        )
        self.emit("charge.refunded", charge)
        return 200, copy.deepcopy(refund)

    def _post_billing_portal_sessions(self, params):
        portal = self.new_object(
            "billing_portal.session",
            "bps",
            customer=params.get("customer"),
            return_url=params.get("return_url"),
        )
        if self.checkout_base is not None:
            portal["url"] = f"{self.checkout_base}/sandbox/portal/{portal['id']}"
        else:
            portal["url"] = f"https://billing.stripe.com/p/session/{portal['id']}"
        return 200, copy.deepcopy(portal)

    # --- saved cards and off-session charges ------------------------------------------

    def new_card(self, last4: str, customer: str | None) -> dict[str, Any]:
        """A card PaymentMethod like Stripe's test card ending in `last4`, attached to `customer`."""
        brand = TEST_CARDS.get(last4, ("visa", "succeeds"))[0]
        return self.new_object(
            "payment_method",
            "pm",
            type="card",
            customer=customer,
            metadata={},
            card={
                "brand": brand,
                "display_brand": brand,
                "last4": last4,
                "exp_month": 12,
                "exp_year": time.gmtime().tm_year + 4,
                "funding": "credit",
                "country": "US",
            },
        )

    def _complete_setup(self, session: dict[str, Any], card: str) -> None:
        method = self.new_card(card, session.get("customer"))
        data = self.setup_data.get(session["id"], {})
        intent = self.new_object(
            "setup_intent",
            "seti",
            status="succeeded",
            usage="off_session",
            customer=session.get("customer"),
            payment_method=method["id"],
            metadata=dict(data.get("metadata") or {}),
            last_setup_error=None,
            next_action=None,
        )
        session["setup_intent"] = intent["id"]
        session["payment_status"] = "no_payment_required"

    def change_default_card(self, customer_id: str, last4: str) -> dict[str, Any]:
        """What the customer portal does: a new card becomes the customer's default."""
        with self._lock:
            method = self.new_card(last4, customer_id)
            customer = self.objects[customer_id]
            customer.setdefault("invoice_settings", {})["default_payment_method"] = method["id"]
            return copy.deepcopy(method)

    def _get_customers_id(self, params, customer_id):
        return self._stored(customer_id)

    def _post_customers_id(self, params, customer_id):
        customer = self.objects.get(customer_id)
        if customer is None:
            return self._stored(customer_id)
        wanted = (params.get("invoice_settings") or {}).get("default_payment_method")
        if wanted is not None:
            method = self.objects.get(wanted)
            if method is None or method.get("customer") != customer_id:
                return 400, _error(
                    "invalid_request_error",
                    "The customer does not have a payment method with that ID.",
                    code="resource_missing",
                )
            customer.setdefault("invoice_settings", {})["default_payment_method"] = wanted
        return 200, copy.deepcopy(customer)

    def _get_setup_intents_id(self, params, intent_id):
        return self._stored(intent_id)

    def _get_payment_methods_id(self, params, method_id):
        return self._stored(method_id)

    def _post_payment_intents(self, params):
        method = self.objects.get(params.get("payment_method", ""))
        if method is None or method.get("customer") != params.get("customer"):
            return 400, _error(
                "invalid_request_error",
                "The payment method is not attached to this customer.",
                code="resource_missing",
            )
        intent = self.new_object(
            "payment_intent",
            "pi",
            amount=int(params["amount"]),
            currency=params["currency"],
            customer=params["customer"],
            payment_method=method["id"],
            metadata=params.get("metadata", {}),
            status="requires_confirmation",
            amount_received=0,
            latest_charge=None,
            last_payment_error=None,
            next_action=None,
            canceled_at=None,
            cancellation_reason=None,
            setup_future_usage=None,
        )
        if params.get("confirm") != "true":
            return 200, copy.deepcopy(intent)
        return self._confirm(intent, method)

    def _confirm(self, intent: dict[str, Any], method: dict[str, Any]) -> tuple[int, dict]:
        outcome = TEST_CARDS.get(method["card"]["last4"], ("visa", "succeeds"))[1]
        if outcome == "succeeds":
            charge = self.new_object(
                "charge",
                "ch",
                amount=intent["amount"],
                currency=intent["currency"],
                amount_refunded=0,
                refunded=False,
                paid=True,
                status="succeeded",
                payment_intent=intent["id"],
                payment_method=method["id"],
            )
            intent.update(
                status="succeeded", amount_received=intent["amount"], latest_charge=charge["id"]
            )
            self.emit("payment_intent.succeeded", intent)
            return 200, copy.deepcopy(intent)
        if outcome == "requires_action":
            intent.update(status="requires_action", next_action={"type": "use_stripe_sdk"})
            self.emit("payment_intent.requires_action", intent)
            return 200, copy.deepcopy(intent)
        code, decline_code, message = DECLINES[outcome]
        error = {
            "type": "card_error",
            "code": code,
            "message": message,
            "payment_method": copy.deepcopy(method),
        }
        if decline_code:
            error["decline_code"] = decline_code
        intent.update(status="requires_payment_method", last_payment_error=copy.deepcopy(error))
        self.emit("payment_intent.payment_failed", intent)
        return 402, {"error": {**error, "payment_intent": copy.deepcopy(intent)}}

    def _post_payment_intents_id_cancel(self, params, intent_id):
        intent = self.objects.get(intent_id)
        if intent is None:
            return self._stored(intent_id)
        if intent["status"] not in CANCELABLE_INTENT_STATUSES:
            return 400, _error(
                "invalid_request_error",
                f"You cannot cancel this PaymentIntent because it has a status "
                f"of {intent['status']}.",
                code="payment_intent_unexpected_state",
            )
        intent.update(
            status="canceled",
            canceled_at=int(time.time()),
            cancellation_reason=params.get("cancellation_reason"),
        )
        self.emit("payment_intent.canceled", intent)
        return 200, copy.deepcopy(intent)

    # --- subscriptions: what Stripe does over a subscription's life -----------------

    PERIOD = 30 * 24 * 3600

    def _subscribe(self, session: dict[str, Any]) -> None:
        data = self.subscription_data.get(session["id"], {})
        item = (data.get("line_items") or [{}])[0]
        price_id = (
            item.get("price")
            or self.new_object(
                "price",
                "price",
                unit_amount=int(item["price_data"]["unit_amount"]),
                currency=item["price_data"]["currency"],
                recurring={"interval": "month"},
            )["id"]
        )
        start = int(time.time())
        sub = self.new_object(
            "subscription",
            "sub",
            customer=session.get("customer"),
            status="active",
            metadata=data.get("metadata", {}),
            cancel_at_period_end=False,
            cancel_at=None,
            items={
                "object": "list",
                "data": [
                    {
                        "object": "subscription_item",
                        "price": {"id": price_id, "object": "price"},
                        "current_period_start": start,
                        "current_period_end": start + self.PERIOD,
                    }
                ],
            },
            latest_invoice=None,
        )
        session["subscription"] = sub["id"]
        self._invoice(sub, "subscription_create", paid=True)

    def _invoice(self, sub: dict[str, Any], reason: str, *, paid: bool) -> dict[str, Any]:
        item = sub["items"]["data"][0]
        price = self.objects.get(item["price"]["id"], {})
        amount = price.get("unit_amount", 0)
        invoice = self.new_object(
            "invoice",
            "in",
            customer=sub.get("customer"),
            billing_reason=reason,
            status="paid" if paid else "open",
            amount_due=amount,
            amount_paid=amount if paid else 0,
            currency=price.get("currency", "usd"),
            period_start=item["current_period_start"],
            period_end=item["current_period_start"],
            parent={
                "type": "subscription_details",
                "subscription_details": {
                    "subscription": sub["id"],
                    "metadata": sub.get("metadata", {}),
                },
            },
            lines={
                "object": "list",
                "has_more": False,
                "data": [
                    {
                        "object": "line_item",
                        "amount": amount,
                        "metadata": sub.get("metadata", {}),
                        "period": {
                            "start": item["current_period_start"],
                            "end": item["current_period_end"],
                        },
                        "pricing": {
                            "type": "price_details",
                            "price_details": {"price": item["price"]["id"]},
                        },
                        "parent": {
                            "type": "subscription_item_details",
                            "subscription_item_details": {"subscription": sub["id"]},
                        },
                    }
                ],
            },
        )
        if paid and amount:
            self._pay_invoice(invoice)
        sub["latest_invoice"] = invoice["id"]
        return invoice

    def _pay_invoice(self, invoice: dict[str, Any]) -> None:
        """The PaymentIntent and Charge that paid an invoice, listed in its `payments`."""
        amount, currency = invoice["amount_paid"], invoice["currency"]
        intent = self.new_object(
            "payment_intent",
            "pi",
            amount=amount,
            currency=currency,
            status="succeeded",
            metadata={},
        )
        charge = self.new_object(
            "charge",
            "ch",
            amount=amount,
            currency=currency,
            amount_refunded=0,
            refunded=False,
            payment_intent=intent["id"],
        )
        intent["latest_charge"] = charge["id"]
        invoice["payments"] = {
            "object": "list",
            "has_more": False,
            "data": [
                {
                    "object": "invoice_payment",
                    "invoice": invoice["id"],
                    "amount_paid": amount,
                    "status": "paid",
                    "is_default": True,
                    "payment": {"type": "payment_intent", "payment_intent": intent["id"]},
                }
            ],
        }

    def _get_invoice_payments(self, params):
        intent = (params.get("payment") or {}).get("payment_intent")
        found = [
            {**record, "invoice": obj["id"]}
            for obj in list(self.objects.values())
            if obj.get("object") == "invoice"
            for record in (obj.get("payments") or {}).get("data") or []
            if record.get("payment", {}).get("payment_intent") == intent
        ]
        return 200, {
            "object": "list",
            "url": "/v1/invoice_payments",
            "has_more": False,
            "data": copy.deepcopy(found[: int(params.get("limit", 10))]),
        }

    def renew_subscription(self, sub_id: str, *, paid: bool = True) -> tuple[dict, dict]:
        """The next period starts and its invoice is paid (or fails): (subscription, invoice)."""
        with self._lock:
            sub = self.objects[sub_id]
            item = sub["items"]["data"][0]
            item["current_period_start"] = item["current_period_end"]
            item["current_period_end"] += self.PERIOD
            sub["status"] = "active" if paid else "past_due"
            invoice = self._invoice(sub, "subscription_cycle", paid=paid)
            return copy.deepcopy(sub), copy.deepcopy(invoice)

    def cancel_subscription(self, sub_id: str, *, at_period_end: bool) -> dict[str, Any]:
        with self._lock:
            sub = self.objects[sub_id]
            if at_period_end:
                sub["cancel_at_period_end"] = True
                sub["cancel_at"] = sub["items"]["data"][0]["current_period_end"]
            else:
                sub["status"] = "canceled"
                sub["ended_at"] = int(time.time())
            return copy.deepcopy(sub)

    # --- events Stripe would send on its own (the sandbox delivers them) ---------------

    # None: not recorded (tests deliver events themselves); a list in the sandbox.
    pending_events: list[tuple[str, dict[str, Any]]] | None = None

    def emit(self, event_type: str, obj: dict[str, Any]) -> None:
        """Record an event Stripe would send about `obj` as it is now, when recording."""
        with self._lock:
            if self.pending_events is not None:
                self.pending_events.append((event_type, copy.deepcopy(obj)))

    def take_pending_events(self) -> list[tuple[str, dict[str, Any]]]:
        """The recorded events, oldest first, removed from the double."""
        with self._lock:
            events, self.pending_events = (
                self.pending_events or [],
                ([] if self.pending_events is not None else None),
            )
            return events


# Stripe's test cards, by last 4 digits: (brand, what an off-session charge does).
TEST_CARDS = {
    "4242": ("visa", "succeeds"),
    "4444": ("mastercard", "succeeds"),
    "0002": ("visa", "declined"),  # 4000 0000 0000 0002
    "9995": ("visa", "insufficient_funds"),  # 4000 0000 0000 9995
    "3184": ("visa", "authentication_required"),  # 4000 0027 6000 3184
    "3220": ("visa", "requires_action"),  # 4000 0000 0000 3220
}
DECLINES = {
    "declined": ("card_declined", "generic_decline", "Your card was declined."),
    "insufficient_funds": (
        "card_declined",
        "insufficient_funds",
        "Your card has insufficient funds.",
    ),
    "authentication_required": (
        "authentication_required",
        "authentication_required",
        "Your card was declined. This transaction requires authentication.",
    ),
}
CANCELABLE_INTENT_STATUSES = (
    "requires_payment_method",
    "requires_capture",
    "requires_confirmation",
    "requires_action",
    "processing",
)


def _looks_like_id(segment: str) -> bool:
    return "_" in segment and segment.split("_", 1)[0] in {
        "cs",
        "cus",
        "ch",
        "pi",
        "re",
        "in",
        "sub",
        "bps",
        "dp",
        "price",
        "prod",
        "evt",
        "pm",
        "seti",
    }


def _error(
    error_type: str, message: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    error = {"type": error_type, "message": message}
    if code:
        error["code"] = code
    if param:
        error["param"] = param
    return {"error": error}


def sandbox_double(app) -> StripeDouble:
    """The app's sandbox double, created on first use."""
    double = app.extensions.get("stripe_sandbox")
    if double is None:
        path = app.config.get("SANDBOX_STATE_PATH")
        if path:  # the app and its worker (another process) share one sandbox Stripe
            from webapp.stripe_double.shared import SharedDouble

            double = SharedDouble(path)
        else:
            double = StripeDouble(minimal_templates, checkout_base="")
        double.pending_events = []  # delivered after each request by webapp.sandbox.routes
        app.extensions["stripe_sandbox"] = double
    return double
