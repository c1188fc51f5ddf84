"""Holds against expiring plan credits, as a Hypothesis state machine: whatever the
sequence of grants, removals and additions by hand, usage, holds of any length, captures,
releases, time passing and the expiry jobs (no refunds, which may take a balance below
zero), the balance equals its ledger, held never exceeds the live balance, and at every
future grant expiry the holds still open then are covered by the credits that outlive it
(the rule in webapp/domain/ledger/holds.py)."""

from datetime import timedelta

import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from tests.conftest import empty_all_tables
from tests.payments import checked_books, plan_grant
from webapp.domain import clock, ledger, users
from webapp.domain.errors import (
    HoldNotOpenError,
    InsufficientCreditsError,
)
from webapp.domain.ledger import holds
from webapp.domain.ledger.hold_expiry import held_now, release_stale_holds
from webapp.extensions import db
from webapp.models import CreditAccount, CreditGrant, Hold, HoldStatus
from webapp.models.types import utcnow


def _open_holds(user_id, now):
    return db.session.execute(
        sa.select(Hold.expires_at, Hold.credits).where(
            Hold.user_id == user_id, Hold.status == HoldStatus.HELD, Hold.expires_at > now
        )
    ).all()


def _grants(user_id, now):
    return db.session.execute(
        sa.select(CreditGrant.expires_at, CreditGrant.remaining).where(
            CreditGrant.user_id == user_id,
            CreditGrant.expired_at.is_(None),
            CreditGrant.expires_at.is_not(None),
            CreditGrant.remaining > 0,
        )
    ).all()


def test_holds_state_machine_held_never_exceeds_balance(app, fixed_clock):
    state = {}

    class Holds(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            empty_all_tables()
            fixed_clock.set(utcnow().replace(microsecond=0))
            state["user"] = users.create_user("holds-machine@example.com", "correct-horse").id
            state["holds"] = []
            state["n"] = 0

        @property
        def uid(self):
            return state["user"]

        @rule(credits=st.integers(1, 300), minutes=st.one_of(st.none(), st.integers(1, 180)))
        def grant(self, credits, minutes):
            state["n"] += 1
            at = None if minutes is None else clock.now() + timedelta(minutes=minutes)
            plan_grant(self.uid, credits, at, f"in_{state['n']}")

        @rule(credits=st.integers(-300, 300).filter(bool))
        def adjust(self, credits):
            try:
                ledger.adjust(self.uid, credits, "machine")
            except InsufficientCreditsError:
                db.session.rollback()

        @rule(credits=st.integers(1, 300))
        def use(self, credits):
            try:
                ledger.debit_usage(self.uid, credits, "machine")
            except InsufficientCreditsError:
                db.session.rollback()

        @rule(
            credits=st.integers(1, 300),
            seconds=st.sampled_from([60, 600, 1800, 3600, 5400, 7200, 10800]),
        )
        def place(self, credits, seconds):
            try:
                body = holds.place_hold(self.uid, credits, expires_in=seconds)
            except InsufficientCreditsError:
                db.session.rollback()
                return
            state["holds"].append(body["id"])

        @rule(data=st.data())
        def capture(self, data):
            if not state["holds"]:
                return
            public_id = data.draw(st.sampled_from(state["holds"]))
            hold = holds.find_hold(self.uid, public_id)
            amount = data.draw(st.integers(0, hold.credits))
            try:
                holds.capture_hold(self.uid, public_id, amount)
            except (HoldNotOpenError, InsufficientCreditsError):
                db.session.rollback()

        @rule(data=st.data())
        def release(self, data):
            if not state["holds"]:
                return
            public_id = data.draw(st.sampled_from(state["holds"]))
            try:
                holds.release_hold(self.uid, public_id)
            except HoldNotOpenError:
                db.session.rollback()

        @rule(minutes=st.integers(1, 120))
        def wait(self, minutes):
            fixed_clock.set(clock.now() + timedelta(minutes=minutes))

        @rule()
        def expire(self):
            ledger.expire_due_grants()
            release_stale_holds()

        @invariant()
        def books(self):
            db.session.expire_all()
            now = clock.now()
            account = db.session.get(CreditAccount, self.uid)
            if account is None:
                return
            checked_books(self.uid)
            # What is really there now: due grants gone, due holds not counted.
            due = sum(r for at, r in _grants(self.uid, now) if at <= now)
            live_balance = account.balance - min(due, account.balance)
            held = held_now(account, now)
            assert held <= live_balance, (account.balance, due, held)
            # The rule every hold keeps, at each future grant expiry.
            open_ = _open_holds(self.uid, now)
            gone = due
            for at, remaining in sorted(_grants(self.uid, now)):
                if at <= now:
                    continue
                gone += remaining
                still = sum(c for ends, c in open_ if ends > at)
                assert still <= account.balance - gone, (at, still, account.balance, gone)

    run_state_machine_as_test(
        Holds,
        settings=settings(
            max_examples=60,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
