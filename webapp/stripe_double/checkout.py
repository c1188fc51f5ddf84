"""Checkout Sessions in the double: created, listed, expired, and paid by the customer."""

import copy
import time
from typing import Any

from webapp.stripe_double.core import DoubleCore
from webapp.stripe_double.wire import error


class CheckoutSessions(DoubleCore):
    # Stripe Tax as the double computes it: this percentage of the subtotal, rounded down,
    # on sessions with automatic_tax[enabled]=true (0: no tax).
    tax_percent = 0

    # --- what tests and the sandbox use -------------------------------------------

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
                self._pay_session(session, paid=paid, card=card)
            if session.get("mode") == "subscription" and paid and not session.get("subscription"):
                self._subscribe(session)
            return copy.deepcopy(session)

    def _pay_session(self, session: dict[str, Any], *, paid: bool, card: str) -> None:
        """The PaymentIntent and Charge of a payment-mode session (and its invoice, if asked)."""
        session_id = session["id"]
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
            setup_future_usage=self.intent_data.get(session_id, {}).get("setup_future_usage"),
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
            charge["receipt_url"] = f"https://pay.stripe.com/receipts/payment/{charge['id']}"
        intent["latest_charge"] = charge["id"]
        session["payment_intent"] = intent["id"]
        if paid and (session.get("invoice_creation") or {}).get("enabled"):
            self._checkout_invoice(session, intent, charge)

    def expire_checkout_session(self, session_id: str) -> dict[str, Any]:
        with self._lock:
            session = self.objects[session_id]
            session["status"] = "expired"
            return copy.deepcopy(session)

    # --- the API --------------------------------------------------------------------

    def _line_price(self, item: dict[str, Any]) -> dict[str, Any] | None:
        """A line item's unit amount and currency: its price_data, or the stored Price."""
        if "price_data" in item:
            return item["price_data"]
        return self.objects.get(item.get("price", ""))

    def _post_checkout_sessions(self, params):
        items = params.get("line_items", [])
        prices = [self._line_price(item) for item in items]
        if any(price is None for price in prices):
            return 400, error("invalid_request_error", "No such price", code="resource_missing")
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
        self._keep_session_data(session, params, items)
        return 200, copy.deepcopy(session)

    def _keep_session_data(self, session: dict[str, Any], params, items) -> None:
        """What the session's payment, setup or subscription will be made with, later."""
        mode = session["mode"]
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

    def _post_checkout_sessions_id_expire(self, params, session_id):
        with self._lock:
            session = self.objects.get(session_id)
            if session is None or session.get("object") != "checkout.session":
                return self._stored(session_id)
            if session["status"] != "open":
                return 400, error(
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
