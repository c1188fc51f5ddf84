"""A plan subscribed to through the app and paid in the StripeDouble, and Stripe's events."""

import copy
import secrets

from tests.stripe_fakes import deliver, event, fixture


class PlanPayment:
    """POST /billing/subscribe, the customer pays in the double, its invoice and charge."""

    def __init__(self, client, stripe_double, plan: str = "basic"):
        self.client, self.double = client, stripe_double
        response = client.post("/billing/subscribe", data={"plan": plan})
        assert response.status_code == 303, response.get_data(as_text=True)
        session_id = response.headers["Location"].rsplit("/", 1)[-1]
        self.session = stripe_double.complete_checkout_session(session_id)
        self.subscription = stripe_double.objects[self.session["subscription"]]
        self.invoice = copy.deepcopy(stripe_double.objects[self.subscription["latest_invoice"]])
        payment = self.invoice["payments"]["data"][0]["payment"]
        self.intent = stripe_double.objects[payment["payment_intent"]]
        self.charge = stripe_double.objects[self.intent["latest_charge"]]
        self.amount = self.charge["amount"]

    def send(self, evt) -> None:
        response = deliver(self.client, evt)
        assert response.status_code == 200, response.get_data(as_text=True)

    def paid_events(self, *, with_payments: bool = False) -> list[dict]:
        """The session's completion and invoice.paid; by default the invoice names no
        payment (newer API versions list payments only when expanded)."""
        invoice = copy.deepcopy(self.invoice)
        if not with_payments:
            invoice.pop("payments", None)
        return [event("checkout.session.completed", self.session), event("invoice.paid", invoice)]

    def pay(self, **kwargs) -> None:
        for evt in self.paid_events(**kwargs):
            self.send(evt)

    def refunded(self, amount_refunded: int) -> dict:
        charge = {
            **copy.deepcopy(self.charge),
            "amount_refunded": amount_refunded,
            "refunded": amount_refunded >= self.amount,
        }
        return event("charge.refunded", charge)

    def dispute(
        self,
        event_type: str,
        amount: int,
        status: str = "needs_response",
        dispute_id: str | None = None,
    ) -> dict:
        dispute = fixture(
            "dispute",
            id=dispute_id or f"dp_{secrets.token_hex(8)}",
            charge=self.charge["id"],
            amount=amount,
            currency=self.charge["currency"],
            status=status,
            payment_intent=self.intent["id"],
        )
        return event(event_type, dispute)
