"""Taking back a plan invoice (its refund or lost dispute) and the expiry of its credits end
the same in either order: a grant never removes more than it gave."""

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from tests.money.plan_payments import PlanPayment
from tests.payments import checked_books
from webapp.domain import ledger
from webapp.extensions import db
from webapp.models import CreditGrant, LedgerEntry


def _grant():
    db.session.expire_all()
    return db.session.scalars(sa.select(CreditGrant)).one()


def _grant_rows_sum(grant_id):
    return db.session.scalar(
        sa.select(sa.func.sum(LedgerEntry.credits)).where(LedgerEntry.grant_id == grant_id)
    )


def _bought_and_paid(logged_in, user, stripe_double, fixed_clock, plan_code):
    """500 bought (lasting) credits and a paid month of `plan_code`."""
    fixed_clock.set(datetime.now(UTC))
    ledger.adjust(user.id, 500, "bought credits")
    plan = PlanPayment(logged_in, stripe_double, plan_code)
    plan.pay()
    return plan


def _expire(fixed_clock):
    """A month and a day later, the expiry command runs."""
    fixed_clock.set(fixed_clock.now + timedelta(days=31))
    ledger.expire_due_grants()


@pytest.mark.parametrize("taking", ["refund", "dispute"])
@pytest.mark.parametrize(
    "expiry_first", [False, True], ids=["taken_then_expiry", "expiry_then_taken"]
)
def test_taking_back_a_plan_invoice_before_or_after_its_expiry_takes_its_credits_once(
    logged_in, user, stripe_double, fixed_clock, taking, expiry_first
):
    """500 bought credits and a basic month (1,000 credits that expire). The month's
    invoice is refunded (or disputed and lost) and the month ends. Taken back first, the
    grant gives its 1,000 and expiry finds nothing: 500 left. Expired first, expiry writes
    the 1,000 off and the refund/dispute must find nothing left to take: 500 too."""
    plan = _bought_and_paid(logged_in, user, stripe_double, fixed_clock, "basic")
    grant = _grant()
    assert grant.expires_at is not None and checked_books(user.id) == (1500, 1000)

    def take_back():
        if taking == "refund":
            plan.send(plan.refunded(plan.amount))
        else:
            plan.send(plan.dispute("charge.dispute.created", plan.amount, dispute_id="dp_x"))
            plan.send(plan.dispute("charge.dispute.closed", plan.amount, "lost", "dp_x"))

    steps = [take_back, lambda: _expire(fixed_clock)]
    for step in reversed(steps) if expiry_first else steps:
        step()

    assert checked_books(user.id) == (500, 0)  # the bought 500 stay
    assert _grant_rows_sum(grant.id) == 0  # a grant never removes more than it gave


@pytest.mark.parametrize(
    "expiry_after", [0, 1, 2], ids=["expiry_first", "between_refunds", "expiry_last"]
)
def test_a_plan_invoice_refunded_in_two_steps_around_its_expiry_ends_the_same(
    logged_in, user, stripe_double, fixed_clock, expiry_after
):
    """Basic (1,000 credits for 900), refunded 300 then 600 in all, with the month's
    expiry before, between or after the refunds: each order ends with the bought 500."""
    plan = _bought_and_paid(logged_in, user, stripe_double, fixed_clock, "basic")
    grant_id = _grant().id
    steps = [lambda: plan.send(plan.refunded(300)), lambda: plan.send(plan.refunded(600))]
    steps.insert(expiry_after, lambda: _expire(fixed_clock))
    for step in steps:
        step()
    assert checked_books(user.id) == (500, 0)
    assert _grant_rows_sum(grant_id) == 0


@pytest.mark.parametrize("taking", ["refund", "dispute"])
@pytest.mark.parametrize("expiry_first", [False, True], ids=["taken_first", "expiry_first"])
def test_a_partial_take_back_of_a_partly_spent_plan_ends_the_same_either_way(
    logged_in, user, stripe_double, fixed_clock, taking, expiry_first
):
    """Basic (1,000 for 900), 600 of its credits spent, so 400 are left to expire; a
    third of the invoice is refunded (or disputed and lost): 333 credits. Taken first,
    they come out of the grant's own 400 and expiry removes the 67 left; expired first,
    the 400 written off already meet the 333. Both end with the bought 500."""
    plan = _bought_and_paid(logged_in, user, stripe_double, fixed_clock, "basic")
    ledger.debit_usage(user.id, 600, "work")

    def take_back():
        if taking == "refund":
            plan.send(plan.refunded(300))
        else:
            plan.send(plan.dispute("charge.dispute.created", 300, dispute_id="dp_third"))
            plan.send(plan.dispute("charge.dispute.closed", 300, "lost", "dp_third"))

    steps = [take_back, lambda: _expire(fixed_clock)]
    for step in reversed(steps) if expiry_first else steps:
        step()
    assert checked_books(user.id) == (500, 0)


def test_a_dispute_and_a_refund_after_the_expiry_take_what_they_would_have_before_it(
    logged_in, user, stripe_double, fixed_clock
):
    """Basic, 600 spent, a third disputed (lost) and another third refunded: 666 credits
    owed. Before the expiry they take 400 from the grant and 266 from the bought credits;
    after it, the 400 written off meet 400 of them and the rest is taken: 500 - 266."""
    plan = _bought_and_paid(logged_in, user, stripe_double, fixed_clock, "basic")
    ledger.debit_usage(user.id, 600, "work")
    _expire(fixed_clock)
    plan.send(plan.dispute("charge.dispute.created", 300, dispute_id="dp_third"))
    plan.send(plan.dispute("charge.dispute.closed", 300, "lost", "dp_third"))
    plan.send(plan.refunded(300))
    plan.send(plan.refunded(300))  # replayed: nothing more
    assert checked_books(user.id) == (234, 0)


@pytest.mark.parametrize("expiry_first", [False, True], ids=["refund_first", "expiry_first"])
def test_a_rollover_plan_refunded_after_an_expiry_run_takes_back_all_it_gave(
    logged_in, user, stripe_double, fixed_clock, expiry_first
):
    """Pro's 5,000 credits roll over: an expiry run removes none of them, so a refund
    afterwards still takes all 5,000 back, as it does before."""
    plan = _bought_and_paid(logged_in, user, stripe_double, fixed_clock, "pro")
    assert _grant().expires_at is None
    steps = [lambda: plan.send(plan.refunded(plan.amount)), lambda: _expire(fixed_clock)]
    for step in reversed(steps) if expiry_first else steps:
        step()
    assert checked_books(user.id) == (500, 0)
    assert _grant_rows_sum(_grant().id) == 0
