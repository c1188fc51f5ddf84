"""A user with a card saved through the app, as a browser and Stripe would do it."""

import pytest
import sqlalchemy as sa
from flask import current_app

from tests.payments import balance_of, ledger_sum
from tests.stripe_fakes import deliver, event
from tests.subscription_fakes import fixed_clock  # noqa: F401
from webapp.domain import autorecharge, jobs, ledger
from webapp.extensions import db
from webapp.models import AutoRecharge, LedgerEntry, Purchase, User


class Recharge:
    """Drives one logged-in user's auto-recharge through the app's pages and Stripe's double."""

    def __init__(self, client, double, user):
        self.client, self.double, self.user_id = client, double, user.id

    def save_card(self, last4: str = "4242") -> dict:
        response = self.client.post("/credits/auto-recharge/card")
        assert response.status_code == 303
        session_id = response.location.rsplit("/", 1)[-1]
        session = self.double.complete_checkout_session(session_id, card=last4)
        assert deliver(self.client, event("checkout.session.completed", session)).status_code == 200
        return session

    def enable(self, threshold: int = 200, amount: int = 500, limit: str = "") -> None:
        response = self.client.post(
            "/credits/auto-recharge",
            data={
                "enabled": "y",
                "threshold": str(threshold),
                "amount": str(amount),
                "monthly_limit": limit,
            },
        )
        assert response.status_code == 303, response.data

    def setup(self, *, balance: int = 1000, last4: str = "4242", **settings) -> None:
        ledger.adjust(self.user_id, balance, "starting balance")
        self.save_card(last4)
        self.enable(**settings)

    def spend(self, credits: int) -> dict:
        response = self.client.post("/api/v1/usage", json={"credits": credits})
        assert response.status_code == 200, response.data
        return response.get_json()

    def attempts(self) -> list[Purchase]:
        db.session.expire_all()
        return list(
            db.session.scalars(
                sa.select(Purchase)
                .where(Purchase.user_id == self.user_id, Purchase.source == "auto_recharge")
                .order_by(Purchase.id)
            )
        )

    def attempt(self) -> Purchase:
        attempts = self.attempts()
        assert attempts, "no auto-recharge attempt was recorded"
        return attempts[-1]

    def charge(self) -> list[str]:
        """The charge job's function, called as the worker calls it, for each open attempt."""
        outcomes = [
            autorecharge.charge_attempt(p.id) for p in self.attempts() if p.status == "pending"
        ]
        self.run_worker()  # and what the outcome recorded (cancelling, mail)
        return outcomes

    def run_worker(self) -> int:
        """The worker: every job due, until none is left; returns how many ran."""
        ran = 0
        while (done := jobs.run_due()) > 0:
            ran += done
        return ran

    def mails(self) -> list:
        return list(getattr(current_app.extensions["mailman"], "outbox", []))

    def subjects(self) -> list[str]:
        return [message.subject for message in self.mails()]

    def settings(self) -> AutoRecharge:
        db.session.expire_all()
        return db.session.get(AutoRecharge, self.user_id)

    def intents(self) -> list[dict]:
        return [
            o
            for o in self.double.objects.values()
            if o["object"] == "payment_intent"
            and o.get("metadata", {}).get("purpose") == "credits_autorecharge"
        ]

    def intent_requests(self) -> list[dict]:
        return [
            r
            for r in self.double.requests_to("post", "/v1/payment_intents")
            if not r["path"].endswith("/cancel")
        ]

    def user_customer(self) -> str:
        db.session.expire_all()
        return db.session.get(User, self.user_id).stripe_customer_id

    def balance(self) -> int:
        return balance_of(self.user_id)

    def assert_ledger_consistent(self) -> None:
        assert self.balance() == ledger_sum(self.user_id)

    def purchase_credits(self) -> list[LedgerEntry]:
        return list(
            db.session.scalars(
                sa.select(LedgerEntry).where(
                    LedgerEntry.user_id == self.user_id, LedgerEntry.kind == "purchase"
                )
            )
        )


@pytest.fixture
def recharge(logged_in, stripe_double, user):
    return Recharge(logged_in, stripe_double, user)
