"""Taking back a purchase (its refund or dispute) takes the bought credits, not the plan's
expiring ones, so a refund never leaves bought credits where plan credits were; and a won
dispute never leaves the user below where the same events without it would."""

from contextlib import contextmanager
from datetime import timedelta

import pytest
import sqlalchemy as sa

from tests.money.plan_payments import PlanPayment
from tests.payments import Payment, balance_of, checked_books, ledger_sum, plan_grant
from tests.stripe_fakes import deliver, event
from tests.subscription_fakes import FEB_1, JAN_1, running_invoice
from webapp.domain import clock, ledger
from webapp.extensions import db
from webapp.models import CreditAccount
from webapp.models.types import utcnow


def expiring(user_id: int) -> int:
    db.session.expire_all()
    return db.session.scalar(
        sa.select(CreditAccount.expiring).where(CreditAccount.user_id == user_id)
    )


def test_a_refunded_purchase_takes_back_bought_credits_and_leaves_the_plan_credits(
    logged_in, user, stripe_double
):
    PlanPayment(logged_in, stripe_double, "basic").pay()  # 1,000 credits that expire
    bought = Payment(stripe_double, user, 500)
    assert deliver(logged_in, bought.completed()).status_code == 200
    assert (balance_of(user.id), expiring(user.id)) == (1500, 1000)

    assert deliver(logged_in, bought.refunded(bought.amount)).status_code == 200
    assert (balance_of(user.id), expiring(user.id)) == (1000, 1000)


def test_a_won_dispute_gives_back_what_it_took_and_plan_credits_still_expire(
    logged_in, user, stripe_double
):
    PlanPayment(logged_in, stripe_double, "basic").pay()
    bought = Payment(stripe_double, user, 500)
    assert deliver(logged_in, bought.completed()).status_code == 200

    opened = bought.dispute("charge.dispute.created", dispute_id="dp_bought")
    assert deliver(logged_in, opened).status_code == 200
    assert (balance_of(user.id), expiring(user.id)) == (1000, 1000)
    won = bought.dispute("charge.dispute.closed", status="won", dispute_id="dp_bought")
    assert deliver(logged_in, won).status_code == 200
    assert (balance_of(user.id), expiring(user.id)) == (1500, 1000)

    # The plan's period ends: its 1,000 credits expire, the 500 given back stay.
    _expire_in(40)
    assert (balance_of(user.id), expiring(user.id)) == (500, 0)
    assert balance_of(user.id) == ledger_sum(user.id)


def test_bought_credits_already_spent_leave_the_rest_to_the_plan_credits(
    logged_in, user, stripe_double
):
    bought = Payment(stripe_double, user, 500)
    assert deliver(logged_in, bought.completed()).status_code == 200
    ledger.debit_usage(user.id, 300, "work")  # 200 bought credits left
    PlanPayment(logged_in, stripe_double, "basic").pay()
    assert (balance_of(user.id), expiring(user.id)) == (1200, 1000)

    # The refund takes all 500 credits back: the 200 bought ones, then 300 of the plan's.
    assert deliver(logged_in, bought.refunded(bought.amount)).status_code == 200
    assert (balance_of(user.id), expiring(user.id)) == (700, 700)


def test_credits_taken_back_never_come_out_of_a_grant_already_past_its_expiry(
    logged_in, user, stripe_double, fixed_clock
):
    """A refund draws only on live grants: the due grant's credits are gone whatever it
    takes, so taking them would let the user keep others."""
    bought = Payment(stripe_double, user, 100)
    assert deliver(logged_in, bought.completed()).status_code == 200
    ledger.debit_usage(user.id, 100, "work")  # the bought credits are spent
    plan_grant(user.id, 100, JAN_1 + timedelta(days=14), "in_due")
    plan_grant(user.id, 100, FEB_1, "in_live")
    fixed_clock.set(JAN_1 + timedelta(days=15))  # the first grant is due, not expired
    assert deliver(logged_in, bought.refunded(bought.amount)).status_code == 200
    ledger.expire_due_grants()
    assert checked_books(user.id) == (0, 0)


@pytest.mark.parametrize("taking", ["refund", "lost_dispute"])
@pytest.mark.parametrize("expiry_job_first", [True, False], ids=["job_first", "taking_first"])
def test_a_take_back_after_a_grant_is_due_ends_the_same_whether_the_expiry_job_ran(
    logged_in, user, stripe_double, fixed_clock, taking, expiry_job_first
):
    """100 bought and spent, then 100 plan credits due on 15 Jan; on 16 Jan the purchase
    is taken back. The plan credits are gone since the 15th, so the user owes the 100
    whether the expiry job ran before the webhook or not: the take-back settles what is
    due first, and right after it the books hold (expiring within the balance)."""
    bought = Payment(stripe_double, user, 100)
    assert deliver(logged_in, bought.completed()).status_code == 200
    ledger.debit_usage(user.id, 100, "work")
    plan_grant(user.id, 100, JAN_1 + timedelta(days=14), "in_due")
    fixed_clock.set(JAN_1 + timedelta(days=15))
    if expiry_job_first:
        ledger.expire_due_grants()
        checked_books(user.id)
    if taking == "refund":
        events = [bought.refunded(bought.amount)]
    else:
        events = [
            bought.dispute("charge.dispute.created", dispute_id="dp_due"),
            bought.dispute("charge.dispute.closed", status="lost", dispute_id="dp_due"),
        ]
    for taken in events:
        assert deliver(logged_in, taken).status_code == 200
        checked_books(user.id)
    ledger.expire_due_grants()
    assert checked_books(user.id) == (-100, 0)


def _dispute_taking_plan_credits(client, user, stripe_double) -> Payment:
    """500 bought, 300 of them spent, then a 1,000-credit plan: a dispute of the purchase
    takes the 200 bought credits left and 300 of the plan's (the balance holds no more)."""
    bought = Payment(stripe_double, user, 500)
    assert deliver(client, bought.completed()).status_code == 200
    ledger.debit_usage(user.id, 300, "work")
    PlanPayment(client, stripe_double, "basic").pay()
    opened = bought.dispute("charge.dispute.created", dispute_id="dp_plan")
    assert deliver(client, opened).status_code == 200
    assert (balance_of(user.id), expiring(user.id)) == (700, 700)
    return bought


def _expire_in(days: int) -> None:
    clock.fix(utcnow() + timedelta(days=days))
    try:
        ledger.expire_due_grants()
    finally:
        clock.fix(None)


# --- a won dispute next to refunds, expiry and a refunded plan: the books stay right, and
# the user never ends below where the same events without the dispute leave them (the
# won dispute's credits come back lasting, even the plan credits among them: see the
# README's known limits)


def _plan_grant(client, user, days: int) -> None:
    _send(client, event("invoice.paid", running_invoice(user.id, days)))


def _send(client, evt) -> None:
    response = deliver(client, evt)
    assert response.status_code == 200, response.get_data(as_text=True)


def _owed_while_plan_credits_are_held(client, user, stripe_double) -> Payment:
    """Three purchases of 500, all spent, then a plan: the first one's dispute holds 500
    plan credits; refunds of the other two leave 500 owed."""
    first, second, third = (Payment(stripe_double, user, 500) for _ in range(3))
    for payment in (first, second, third):
        _send(client, payment.completed())
    ledger.debit_usage(user.id, 1500, "work")
    _plan_grant(client, user, 30)
    _send(client, first.dispute("charge.dispute.created", dispute_id="dp_owed"))
    assert checked_books(user.id) == (500, 500)
    for payment in (second, third):
        _send(client, payment.refunded(payment.amount))
    assert checked_books(user.id) == (-500, 0)
    return first


def test_a_dispute_won_before_or_after_its_plan_ends_leaves_the_same_balance(
    logged_in, user, stripe_double
):
    first = _owed_while_plan_credits_are_held(logged_in, user, stripe_double)
    _expire_in(40)
    _send(logged_in, first.dispute("charge.dispute.closed", status="won", dispute_id="dp_owed"))
    assert checked_books(user.id) == (0, 0)


def test_a_refund_while_the_dispute_holds_the_credits_is_taken_once_it_is_won(
    logged_in, user, stripe_double
):
    bought = _dispute_taking_plan_credits(logged_in, user, stripe_double)
    _send(logged_in, bought.refunded(bought.amount))  # the dispute holds them: waits
    assert checked_books(user.id) == (700, 700)
    _send(logged_in, bought.dispute("charge.dispute.closed", status="won", dispute_id="dp_plan"))
    # As refunding the purchase without the dispute: its 500 go, bought credits first.
    assert checked_books(user.id) == (700, 700)


def test_a_refunded_plan_gets_back_nothing_its_refund_took(logged_in, user, stripe_double):
    bought = Payment(stripe_double, user, 500)
    _send(logged_in, bought.completed())
    ledger.debit_usage(user.id, 300, "work")
    plan = PlanPayment(logged_in, stripe_double, "basic")
    plan.pay()
    _send(logged_in, bought.dispute("charge.dispute.created", dispute_id="dp_g"))
    assert checked_books(user.id) == (700, 700)
    _send(logged_in, plan.refunded(plan.amount))  # all the plan's 1,000 credits go
    assert checked_books(user.id) == (-300, 0)
    _send(logged_in, bought.dispute("charge.dispute.closed", status="won", dispute_id="dp_g"))
    assert checked_books(user.id) == (200, 0)  # the 200 bought credits, lasting


def test_two_plans_a_debt_and_one_plan_ended_keep_the_books(logged_in, user, stripe_double):
    first = Payment(stripe_double, user, 1500)
    second = Payment(stripe_double, user, 800)
    for payment in (first, second):
        _send(logged_in, payment.completed())
    ledger.debit_usage(user.id, 2300, "work")
    _plan_grant(logged_in, user, 60)
    _plan_grant(logged_in, user, 30)
    _send(logged_in, first.dispute("charge.dispute.created", dispute_id="dp_two"))
    assert checked_books(user.id) == (500, 500)
    _send(logged_in, second.refunded(second.amount))
    assert checked_books(user.id) == (-300, 0)
    _expire_in(40)
    _send(logged_in, first.dispute("charge.dispute.closed", status="won", dispute_id="dp_two"))
    balance, _ = checked_books(user.id)
    # Without the dispute: (1000, 1000). The refund drew the running plan while the debt
    # lasted, and the ended plan's held credits come back lasting (give_back_won's known
    # limit): never less than the user would have had.
    assert balance >= 1000


# Each scenario runs with and without a dispute of the first purchase that is opened and
# then won: without it, the figures are what the rules give; with it, the user has at
# least as many credits, and at least as many lasting ones, before and after the plans end.
# (A review found each one ending below when the win put plan credits back into their
# grant: debits and refunds meanwhile had landed elsewhere because those were held.)


def _spent_purchase(client, user, stripe_double, credits: int) -> Payment:
    """A purchase of `credits`, credited and all spent."""
    purchase = Payment(stripe_double, user, credits)
    _send(client, purchase.completed())
    ledger.debit_usage(user.id, credits, "work")
    return purchase


def _usage_while_held_drains_another_plan(client, user, stripe_double, dispute):
    first = _spent_purchase(client, user, stripe_double, 500)
    _plan_grant(client, user, 30)
    _plan_grant(client, user, 60)
    with dispute(first):
        ledger.debit_usage(user.id, 800, "work")


def _bought_while_held(client, user, stripe_double, dispute):
    first = _spent_purchase(client, user, stripe_double, 500)
    _plan_grant(client, user, 30)
    with dispute(first):
        _send(client, Payment(stripe_double, user, 1000).completed())
        ledger.debit_usage(user.id, 800, "work")


def _refund_waiting_on_the_dispute(client, user, stripe_double, dispute):
    first = _spent_purchase(client, user, stripe_double, 300)
    _plan_grant(client, user, 30)
    with dispute(first):
        _send(client, first.refunded(first.amount // 2))
        _send(client, Payment(stripe_double, user, 300).completed())


def _plan_refunded_on_a_debt(client, user, stripe_double, dispute):
    first = _spent_purchase(client, user, stripe_double, 500)
    plan = PlanPayment(client, stripe_double, "basic")
    plan.pay()
    with dispute(first):
        ledger.debit_usage(user.id, 500, "work")
        _send(client, plan.refunded(plan.amount // 2))
        _send(client, Payment(stripe_double, user, 1000).completed())


@pytest.mark.parametrize(
    ("scenario", "without", "after_expiry"),
    [
        (_usage_while_held_drains_another_plan, (1200, 1200), (1000, 1000)),
        (_bought_while_held, (1200, 200), (1000, 0)),
        (_refund_waiting_on_the_dispute, (1150, 850), (300, 0)),
        (_plan_refunded_on_a_debt, (1000, 0), (1000, 0)),
    ],
    ids=["usage_while_held", "bought_while_held", "refund_waiting", "plan_refunded_on_a_debt"],
)
@pytest.mark.parametrize("disputed", [False, True], ids=["without", "won"])
def test_a_won_dispute_never_leaves_the_user_below_the_same_events_without_it(
    logged_in, user, stripe_double, scenario, without, after_expiry, disputed
):
    @contextmanager
    def dispute(purchase: Payment):
        if not disputed:
            yield
            return
        _send(logged_in, purchase.dispute("charge.dispute.created", dispute_id="dp_held"))
        yield
        won = purchase.dispute("charge.dispute.closed", status="won", dispute_id="dp_held")
        _send(logged_in, won)

    scenario(logged_in, user, stripe_double, dispute)
    for expected in (without, after_expiry):
        if expected is after_expiry:
            _expire_in(40)
        balance, left = checked_books(user.id)
        if disputed:
            assert balance >= expected[0] and balance - left >= expected[0] - expected[1]
        else:
            assert (balance, left) == expected


@pytest.mark.parametrize("taking", ["refund", "dispute"])
def test_taking_back_a_rollover_plan_invoice_takes_lasting_credits_and_leaves_another_plans_expiring(
    logged_in, user, stripe_double, fixed_clock, taking
):
    """A rollover (pro) grant's 5,000 credits never expire; a basic grant adds 1,000 that
    do. Refunding (or losing a dispute of) the pro invoice takes back lasting credits, so
    the basic month's 1,000 are what is left and still expire: before, the take drew the
    basic grant down and its 1,000 became lasting credits nobody paid for."""
    plan = PlanPayment(logged_in, stripe_double, "pro")
    plan.pay()
    # next month on basic: 1,000 credits that expire
    plan_grant(user.id, 1000, fixed_clock.now + timedelta(days=30), "in_basic_next_month")
    assert checked_books(user.id) == (6000, 1000)
    if taking == "refund":
        plan.send(plan.refunded(plan.amount))
    else:
        plan.send(plan.dispute("charge.dispute.created", plan.amount, dispute_id="dp_pro"))
        plan.send(plan.dispute("charge.dispute.closed", plan.amount, "lost", "dp_pro"))
    assert checked_books(user.id) == (1000, 1000)
    fixed_clock.set(fixed_clock.now + timedelta(days=31))
    ledger.expire_due_grants()
    assert checked_books(user.id) == (0, 0)
