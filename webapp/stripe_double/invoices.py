"""Invoices in the double: a subscription period's invoice, a paid Checkout's invoice, and
the invoice payments that tie an invoice to the PaymentIntent that paid it."""

import copy
from typing import Any

from webapp.stripe_double.core import DoubleCore


class Invoices(DoubleCore):
    def _invoice(self, sub: dict[str, Any], reason: str, *, paid: bool) -> dict[str, Any]:
        """The invoice for the subscription's current period, paid or left open."""
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
                "data": [_subscription_line(sub, item, amount)],
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

    # --- the API --------------------------------------------------------------------

    def _get_invoices_id(self, params, invoice_id):
        return self._stored(invoice_id, params)

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


def _subscription_line(sub: dict[str, Any], item: dict[str, Any], amount: int) -> dict[str, Any]:
    """The invoice line for one period of a subscription item."""
    return {
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
