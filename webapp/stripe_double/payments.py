"""Customers, saved cards, setup and payment intents, charges and refunds in the double.

Off-session charges follow Stripe's test cards (TEST_CARDS): a card's last 4 digits
decide whether confirming a PaymentIntent succeeds, is declined or needs the card holder.
"""

import copy
import time
from typing import Any

from webapp.stripe_double.core import DoubleCore
from webapp.stripe_double.wire import error

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


class Payments(DoubleCore):
    # --- customers ----------------------------------------------------------------

    def _post_customers(self, params):
        return 200, self.new_object(
            "customer", "cus", email=params.get("email"), metadata=params.get("metadata", {})
        )

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
                return 400, error(
                    "invalid_request_error",
                    "The customer does not have a payment method with that ID.",
                    code="resource_missing",
                )
            customer.setdefault("invoice_settings", {})["default_payment_method"] = wanted
        return 200, copy.deepcopy(customer)

    # --- saved cards --------------------------------------------------------------

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

    def detach_card(self, method_id: str) -> None:
        """What removing a card in the customer portal does: it is detached from its
        customer, and no longer the customer's default."""
        with self._lock:
            method = self.objects[method_id]
            customer = self.objects.get(method.get("customer") or "")
            method["customer"] = None
            settings = (customer or {}).get("invoice_settings") or {}
            if settings.get("default_payment_method") == method_id:
                settings["default_payment_method"] = None

    def _get_setup_intents_id(self, params, intent_id):
        return self._stored(intent_id)

    def _get_payment_methods_id(self, params, method_id):
        return self._stored(method_id)

    # --- payment intents and charges ----------------------------------------------

    def _get_charges_id(self, params, charge_id):
        return self._stored(charge_id, params)

    def _get_payment_intents_id(self, params, intent_id):
        return self._stored(intent_id, params)

    def _post_payment_intents(self, params):
        method = self.objects.get(params.get("payment_method", ""))
        if method is None or method.get("customer") != params.get("customer"):
            return 400, error(
                "invalid_request_error",
                "The payment method is not attached to this customer.",
                code="resource_missing",
                param="payment_method",
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
        return self._decline(intent, method, outcome)

    def _decline(self, intent: dict[str, Any], method: dict[str, Any], outcome: str):
        """Stripe's 402 card_error for a declined confirmation; the intent records it."""
        code, decline_code, message = DECLINES[outcome]
        card_error = {
            "type": "card_error",
            "code": code,
            "message": message,
            "payment_method": copy.deepcopy(method),
        }
        if decline_code:
            card_error["decline_code"] = decline_code
        intent.update(
            status="requires_payment_method", last_payment_error=copy.deepcopy(card_error)
        )
        self.emit("payment_intent.payment_failed", intent)
        return 402, {"error": {**card_error, "payment_intent": copy.deepcopy(intent)}}

    def _post_payment_intents_id_cancel(self, params, intent_id):
        intent = self.objects.get(intent_id)
        if intent is None:
            return self._stored(intent_id)
        if intent["status"] not in CANCELABLE_INTENT_STATUSES:
            return 400, error(
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

    # --- refunds ------------------------------------------------------------------

    def _post_refunds(self, params):
        intent = self.objects.get(params.get("payment_intent", ""))
        if intent is None:
            return 404, error(
                "invalid_request_error", "No such payment_intent", code="resource_missing"
            )
        charge = self.objects[intent["latest_charge"]]
        left = charge["amount"] - charge["amount_refunded"]
        amount = int(params.get("amount", left))
        if amount <= 0 or amount > left:
            return 400, error(
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
