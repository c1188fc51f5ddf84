"""Subscriptions in the double, over their life (start, renewals, cancellation), with the
Prices and Products they bill and the customer portal that manages them."""

import copy
import time
from typing import Any

from webapp.stripe_double.core import DoubleCore


class Subscriptions(DoubleCore):
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

    # --- what tests and the sandbox use -------------------------------------------

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

    def bill_plan_change(self, sub_id: str) -> dict[str, Any]:
        """A plan change billed at once: a paid invoice with billing_reason
        subscription_update (a proration), the kind that grants no credits."""
        with self._lock:
            return copy.deepcopy(
                self._invoice(self.objects[sub_id], "subscription_update", paid=True)
            )

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

    # --- the API --------------------------------------------------------------------

    def _get_prices_id(self, params, price_id):
        return self._stored(price_id, params)

    def _get_products_id(self, params, product_id):
        return self._stored(product_id, params)

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
