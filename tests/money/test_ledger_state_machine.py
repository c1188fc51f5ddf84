"""Random sequences of every money event keep the books right (Hypothesis state machine).

Purchases, plan grants (expiring and rolling over), usage, refunds, disputes won and lost,
adjustments and expiry, through the signed webhook and the API. After every step:
balance == ledger sum; 0 <= expiring <= max(balance, 0); debits take expiring credits
first; expiry takes exactly the expiring remainder, so credits bought never expire;
refunds and disputes never take more than their purchase or grant gave.
"""

import copy
import secrets
from datetime import timedelta

import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)

from tests.conftest import empty_all_tables, login
from tests.payments import Payment, checked_books
from tests.stripe_fakes import deliver, event, fixture
from tests.subscription_fakes import PLAN_PRICES, invoice, new_id
from webapp.domain import clock, ledger, users
from webapp.domain.errors import InsufficientCreditsError
from webapp.extensions import db
from webapp.models import CreditAccount, CreditGrant, EntryKind, LedgerEntry, Purchase
from webapp.models.types import utcnow

TAKING = (EntryKind.REFUND, EntryKind.DISPUTE, EntryKind.DISPUTE_WON)


class Paid:
    """A purchase or a plan invoice: what refunds and disputes are about."""

    def __init__(self, kind, ident, amount, charge, intent):
        self.kind, self.id, self.amount = kind, ident, amount
        self.charge, self.intent = charge, intent
        self.refunded = 0

    def __repr__(self):
        return f"<{self.kind} {self.id} {self.amount}>"


def make_machine(client, stripe_double, fixed_clock):
    user = user_id = None

    class Ledger(RuleBasedStateMachine):
        paid = Bundle("paid")

        def __init__(self):
            """Each example starts from empty tables, a new user and the clock at now."""
            nonlocal user, user_id
            super().__init__()
            empty_all_tables()
            fixed_clock.set(utcnow())
            user = users.create_user("machine@example.com", "correct-horse")
            user_id = user.id
            login(client, user.email)

        # --- reading the account

        def state(self):
            db.session.expire_all()
            account = db.session.get(CreditAccount, user_id)
            return account.balance, account.expiring

        def send(self, evt):
            response = deliver(client, evt)
            assert response.status_code == 200, response.get_data(as_text=True)

        def debited(self, before, after, bought=False):
            """A debit took expiring credits first: expiring fell by min(debit, expiring).
            Taking back `bought` credits (a purchase's refund or dispute) took bought ones
            first: expiring fell only as far as the balance can no longer hold it."""
            (b0, e0), (b1, e1) = before, after
            taken = b0 - b1
            assert taken >= 0
            if bought:
                assert e1 == min(e0, max(b1, 0)), (before, after)
            else:
                assert e1 == max(0, e0 - taken), (before, after)

        # --- rules

        @rule(target=paid, credits=st.integers(100, 3000))
        def buy(self, credits):
            payment = Payment(stripe_double, user, credits)
            before = self.state()
            self.send(payment.completed())
            after = self.state()
            assert after == (before[0] + credits, before[1])
            return Paid(
                "purchase",
                payment.purchase_id,
                payment.amount,
                payment.charge["id"],
                payment.intent["id"],
            )

        @rule(target=paid, plan=st.sampled_from(["basic", "pro"]), days=st.integers(1, 40))
        def plan_invoice(self, plan, days):
            now = clock.now()
            paid_invoice = invoice(
                new_id("sub"), user_id, plan=plan, start=now, end=now + timedelta(days=days)
            )
            intent = paid_invoice["payments"]["data"][0]["payment"]["payment_intent"]
            before = self.state()
            self.send(event("invoice.paid", paid_invoice))
            after = self.state()
            credits = 1000 if plan == "basic" else 5000
            assert after[0] == before[0] + credits
            if plan == "basic":  # expires: kept within the balance (a debt is paid first)
                assert after[1] == before[1] + min(credits, max(0, after[0] - before[1]))
            else:
                assert after[1] == before[1]
            return Paid("grant", paid_invoice["id"], PLAN_PRICES[plan], new_id("ch"), intent)

        @rule(credits=st.integers(1, 4000))
        def use(self, credits):
            before = self.state()
            response = client.post("/api/v1/usage", json={"credits": credits})
            assert response.status_code in (200, 402)
            after = self.state()
            if response.status_code == 402:
                assert after == before and before[0] < credits
            else:
                assert after[0] == before[0] - credits
                self.debited(before, after)

        @rule(credits=st.integers(-3000, 3000).filter(bool))
        def adjust(self, credits):
            before = self.state()
            try:
                ledger.adjust(user_id, credits, "state machine")
            except InsufficientCreditsError:
                assert self.state() == before and before[0] + credits < 0
                return
            after = self.state()
            assert after[0] == before[0] + credits
            if credits < 0:
                self.debited(before, after)
            else:
                assert after[1] == before[1]

        @rule(target=paid, target_paid=paid, share=st.integers(1, 100))
        def refund(self, target_paid, share):
            # Cumulative amount_refunded; sometimes stale (smaller) than before.
            amount = target_paid.amount * share // 100
            target_paid.refunded = max(target_paid.refunded, amount)
            charge = {
                **fixture("charge"),
                "id": target_paid.charge,
                "object": "charge",
                "amount": target_paid.amount,
                "amount_refunded": amount,
                "refunded": amount >= target_paid.amount,
                "currency": "usd",
                "payment_intent": target_paid.intent,
            }
            before = self.state()
            self.send(event("charge.refunded", charge))
            self.debited(before, self.state(), bought=target_paid.kind == "purchase")
            return target_paid

        @rule(
            target_paid=paid,
            share=st.integers(1, 100),
            outcome=st.sampled_from([None, "won", "lost"]),
        )
        def dispute(self, target_paid, share, outcome):
            dispute = fixture(
                "dispute",
                id=f"dp_{secrets.token_hex(8)}",
                charge=target_paid.charge,
                amount=max(1, target_paid.amount * share // 100),
                currency="usd",
                status="needs_response",
                payment_intent=target_paid.intent,
            )
            before = self.state()
            self.send(event("charge.dispute.created", dispute))
            after = self.state()
            self.debited(before, after, bought=target_paid.kind == "purchase")
            if outcome:
                closed = {**copy.deepcopy(dispute), "status": outcome}
                self.send(event("charge.dispute.closed", closed))
                final = self.state()
                if outcome == "lost":
                    assert final == after
                elif target_paid.kind == "purchase":  # ordinary credits back, plan's untouched
                    assert final[0] >= after[0] and final[1] == after[1]
                else:  # back into the grant's remainder while it has not expired
                    assert final[0] >= after[0] and final[1] >= after[1]

        @rule(days=st.integers(1, 45))
        def expire(self, days):
            fixed_clock.set(clock.now() + timedelta(days=days))
            before = self.state()
            ledger.expire_due_grants()
            after = self.state()
            # Only expiring credits go: the non-expiring part (balance - expiring) stays.
            assert before[0] - after[0] == before[1] - after[1] >= 0, (before, after)

        # --- after every step

        @invariant()
        def books_balance(self):
            checked_books(user_id)

        @invariant()
        def nothing_takes_more_than_it_gave(self):
            for model, column in (
                (Purchase, LedgerEntry.purchase_id),
                (CreditGrant, LedgerEntry.grant_id),
            ):
                rows = db.session.execute(
                    sa.select(column, sa.func.sum(LedgerEntry.credits))
                    .where(
                        LedgerEntry.user_id == user_id,
                        LedgerEntry.kind.in_(TAKING),
                        column.is_not(None),
                    )
                    .group_by(column)
                ).all()
                for ident, total in rows:
                    paid = db.session.get(model, ident)
                    assert 0 <= -total <= paid.credits
                    assert 0 <= paid.credits_refunded + paid.credits_disputed <= paid.credits
            expired = db.session.execute(
                sa.select(LedgerEntry.grant_id, sa.func.sum(LedgerEntry.credits))
                .where(LedgerEntry.user_id == user_id, LedgerEntry.kind == EntryKind.EXPIRY)
                .group_by(LedgerEntry.grant_id)
            ).all()
            for grant_id, total in expired:
                grant = db.session.get(CreditGrant, grant_id)
                assert grant.expires_at is not None and -total <= grant.credits

    return Ledger


def test_random_money_sequences_keep_every_invariant(client, stripe_double, fixed_clock):
    machine = make_machine(client, stripe_double, fixed_clock)
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=25,
            stateful_step_count=15,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        ),
    )
