"""One purchase paid through the StripeDouble, and the events Stripe sends about it."""

import copy
import secrets
from collections.abc import Callable

import sqlalchemy as sa

from tests.stripe_fakes import deliver, event, fixture
from webapp.domain import checkout, ledger
from webapp.extensions import db
from webapp.models import CreditAccount, CreditGrant, LedgerEntry, Purchase


class Payment:
    """A purchase started through the app and paid in the double (with intent and charge)."""

    def __init__(self, stripe_double, user, credits: int = 1000, *, paid: bool = True):
        purchase = checkout.start_checkout(user, credits, "https://credits.example.test")
        self.purchase_id, self.user_id = purchase.id, user.id
        self.credits, self.amount = purchase.credits, purchase.amount_cents
        self.session = stripe_double.complete_checkout_session(
            purchase.stripe_checkout_session_id, paid=paid
        )
        self.intent = stripe_double.objects[self.session["payment_intent"]]
        self.charge = stripe_double.objects[self.intent["latest_charge"]]

    def _session_event(self, event_type: str, **fields) -> dict:
        return event(event_type, {**copy.deepcopy(self.session), **fields})

    def completed(self, payment_status: str = "paid", **fields) -> dict:
        return self._session_event(
            "checkout.session.completed", status="complete", payment_status=payment_status, **fields
        )

    def async_succeeded(self) -> dict:
        return self._session_event(
            "checkout.session.async_payment_succeeded", status="complete", payment_status="paid"
        )

    def async_failed(self) -> dict:
        return self._session_event(
            "checkout.session.async_payment_failed", status="complete", payment_status="unpaid"
        )

    def expired(self) -> dict:
        return self._session_event(
            "checkout.session.expired", status="expired", payment_status="unpaid"
        )

    def refunded(self, amount_refunded: int) -> dict:
        charge = {
            **copy.deepcopy(self.charge),
            "amount_refunded": amount_refunded,
            "refunded": amount_refunded >= self.charge["amount"],
        }
        return event("charge.refunded", charge)

    def dispute(
        self,
        event_type: str,
        amount: int | None = None,
        status: str = "needs_response",
        dispute_id: str | None = None,
        *,
        with_intent: bool = True,
    ) -> dict:
        dispute = fixture(
            "dispute",
            id=dispute_id or f"dp_{secrets.token_hex(8)}",
            charge=self.charge["id"],
            amount=self.amount if amount is None else amount,
            currency=self.charge["currency"],
            status=status,
            payment_intent=self.intent["id"] if with_intent else None,
        )
        return event(event_type, dispute)

    def purchase(self) -> Purchase:
        db.session.expire_all()
        return db.session.get(Purchase, self.purchase_id)


class MismatchedPayment(Payment):
    """A purchase whose Checkout Session Stripe reports (and charged) at another amount."""

    def __init__(self, stripe_double, user, credits=1000, charged=1200):
        purchase = checkout.start_checkout(user, credits, "https://credits.example.test")
        stripe_double.objects[purchase.stripe_checkout_session_id]["amount_total"] = charged
        self.purchase_id, self.user_id = purchase.id, user.id
        self.credits, self.amount = purchase.credits, charged
        self.session = stripe_double.complete_checkout_session(purchase.stripe_checkout_session_id)
        self.intent = stripe_double.objects[self.session["payment_intent"]]
        self.charge = stripe_double.objects[self.intent["latest_charge"]]


def balance_of(user_id: int) -> int:
    db.session.expire_all()
    return db.session.scalar(
        sa.select(CreditAccount.balance).where(CreditAccount.user_id == user_id)
    )


def checked_books(user_id: int) -> tuple[int, int]:
    """The account's (balance, expiring), after checking that the balance is the ledger's
    sum, that expiring is what its open grants hold, and 0 <= expiring <= max(balance, 0)."""
    db.session.expire_all()
    account = db.session.get(CreditAccount, user_id)
    open_remaining = db.session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(CreditGrant.remaining), 0)).where(
            CreditGrant.user_id == user_id,
            CreditGrant.expired_at.is_(None),
            CreditGrant.expires_at.is_not(None),
        )
    )
    assert account.balance == ledger_sum(user_id)
    assert account.expiring == open_remaining
    assert 0 <= account.expiring <= max(account.balance, 0), (account.balance, account.expiring)
    return account.balance, account.expiring


def ledger_sum(user_id: int) -> int:
    return db.session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(LedgerEntry.credits), 0)).where(
            LedgerEntry.user_id == user_id
        )
    )


def entries(user_id: int, kind: str | None = None) -> list[LedgerEntry]:
    query = sa.select(LedgerEntry).where(LedgerEntry.user_id == user_id)
    if kind:
        query = query.where(LedgerEntry.kind == kind)
    return list(db.session.scalars(query.order_by(LedgerEntry.id)))


def deliver_until_done(
    client,
    events: list[dict],
    max_rounds: int = 10,
    on_answer: Callable[[dict, int], None] | None = None,
) -> list[int]:
    """Deliver in order; an event answered 500 is delivered again later, as Stripe retries."""
    queue, statuses = list(events), []
    attempts = 0
    while queue:
        attempts += 1
        assert attempts <= max_rounds * len(events), "events never settled"
        evt = queue.pop(0)
        status = deliver(client, evt).status_code
        statuses.append(status)
        if on_answer:
            on_answer(evt, status)
        if status == 500:
            queue.append(evt)
        else:
            assert status == 200
    return statuses


def plan_grant(user_id: int, credits: int, expires_at, invoice_id: str = "in_soon"):
    """A basic plan's grant of `credits` expiring at `expires_at` (None: rolls over),
    made straight through the ledger as invoice.paid would."""
    return ledger.grant_plan_credits(
        user_id,
        credits,
        invoice_id=invoice_id,
        plan_code="basic",
        subscription_id=None,
        expires_at=expires_at,
    )
