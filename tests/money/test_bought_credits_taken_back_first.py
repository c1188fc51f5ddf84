"""Taking back a purchase (its refund or dispute) takes the bought credits, not the plan's
expiring ones; so a won dispute, which returns ordinary credits, never makes plan credits
last forever, and a refund never leaves bought credits where plan credits were."""

from datetime import timedelta

import sqlalchemy as sa

from tests.money.plan_payments import PlanPayment
from tests.payments import Payment, balance_of, ledger_sum
from tests.stripe_fakes import deliver, event
from tests.subscription_fakes import invoice, new_id
from webapp.domain import clock, ledger
from webapp.extensions import db
from webapp.models import CreditAccount, EntryKind, LedgerEntry
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
    clock.fix(utcnow() + timedelta(days=40))
    try:
        ledger.expire_due_grants()
    finally:
        clock.fix(None)
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


def test_a_won_dispute_returns_the_plan_credits_it_took_to_the_plan(logged_in, user, stripe_double):
    bought = _dispute_taking_plan_credits(logged_in, user, stripe_double)
    won = bought.dispute("charge.dispute.closed", status="won", dispute_id="dp_plan")
    assert deliver(logged_in, won).status_code == 200
    assert deliver(logged_in, won).status_code == 200  # a replay gives nothing more
    # As before the dispute: 200 bought credits and the plan's 1,000, which still expire.
    assert (balance_of(user.id), expiring(user.id)) == (1200, 1000)
    _expire_in(40)
    assert (balance_of(user.id), expiring(user.id)) == (200, 0)
    assert balance_of(user.id) == ledger_sum(user.id)


def test_plan_credits_held_by_a_dispute_past_the_plans_end_expire_when_it_is_won(
    logged_in, user, stripe_double
):
    bought = _dispute_taking_plan_credits(logged_in, user, stripe_double)
    _expire_in(40)  # the plan's period ends: its 700 credits left expire
    assert (balance_of(user.id), expiring(user.id)) == (0, 0)
    now = utcnow()
    renewal = invoice(new_id("sub"), user.id, start=now, end=now + timedelta(days=30))
    assert deliver(logged_in, event("invoice.paid", renewal)).status_code == 200  # 1,000
    assert (balance_of(user.id), expiring(user.id)) == (1000, 1000)

    won = bought.dispute("charge.dispute.closed", status="won", dispute_id="dp_plan")
    assert deliver(logged_in, won).status_code == 200
    # The 200 bought credits come back; the 300 of the ended plan expire as they would
    # have, and the new period's credits are untouched.
    assert (balance_of(user.id), expiring(user.id)) == (1200, 1000)
    kinds = db.session.execute(
        sa.select(LedgerEntry.kind, LedgerEntry.credits)
        .where(LedgerEntry.user_id == user.id)
        .order_by(LedgerEntry.id.desc())
        .limit(2)
    ).all()
    assert [tuple(row) for row in reversed(kinds)] == [
        (EntryKind.DISPUTE_WON, 500),
        (EntryKind.EXPIRY, -300),
    ]
    _expire_in(80)
    assert (balance_of(user.id), expiring(user.id)) == (200, 0)
    assert balance_of(user.id) == ledger_sum(user.id)
