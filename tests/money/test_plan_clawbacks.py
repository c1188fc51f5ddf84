"""Defect 1: refunds and disputes of a subscription invoice take its plan credits back."""

import copy

import pytest
import sqlalchemy as sa

from tests.money.plan_payments import PlanPayment
from tests.payments import balance_of, ledger_sum
from tests.stripe_fakes import deliver, event, fixture
from webapp.extensions import db
from webapp.models import CreditGrant, Dispute, LedgerEntry, StripeEvent


def the_grant():
    db.session.expire_all()
    return db.session.scalars(sa.select(CreditGrant)).one()


def rows(kind):
    return db.session.execute(
        sa.select(LedgerEntry.credits, LedgerEntry.grant_id)
        .where(LedgerEntry.kind == kind)
        .order_by(LedgerEntry.id)
    ).all()


def test_a_full_refund_of_the_first_invoice_takes_the_plan_credits_back(
    logged_in, user, stripe_double
):
    plan = PlanPayment(logged_in, stripe_double, "pro")
    plan.pay()
    grant = the_grant()
    # The invoice.paid named no payment: the app asked Stripe for the invoice.
    assert stripe_double.requests_to("get", f"/v1/invoices/{plan.invoice['id']}")
    assert grant.stripe_payment_intent_id == plan.intent["id"]
    assert (grant.amount_cents, grant.currency) == (3900, "usd")
    assert balance_of(user.id) == 5000
    plan.send(plan.refunded(plan.amount))
    plan.send(plan.refunded(plan.amount))  # replayed: nothing more
    assert balance_of(user.id) == 0 == ledger_sum(user.id)
    assert rows("refund") == [(-5000, grant.id)]


def test_partial_refunds_take_the_same_proportional_cumulative_share_as_purchases(
    logged_in, user, stripe_double
):
    plan = PlanPayment(logged_in, stripe_double, "basic")  # 1,000 credits for 900
    plan.pay()
    plan.send(plan.refunded(300))
    plan.send(plan.refunded(600))
    plan.send(plan.refunded(300))  # stale, smaller: nothing
    assert balance_of(user.id) == 1000 - 1000 * 600 // 900 == ledger_sum(user.id)
    grant = the_grant()
    assert (grant.amount_refunded_cents, grant.credits_refunded) == (600, 666)
    assert grant.remaining == 334


@pytest.mark.parametrize("outcome, kept", [("won", 1000), ("lost", 0)])
def test_a_dispute_takes_the_plan_credits_and_a_won_one_gives_them_back(
    logged_in, user, stripe_double, outcome, kept
):
    plan = PlanPayment(logged_in, stripe_double, "basic")
    plan.pay()
    plan.send(plan.dispute("charge.dispute.created", plan.amount, dispute_id="dp_plan"))
    assert balance_of(user.id) == 0
    assert db.session.scalars(sa.select(Dispute)).one().grant_id == the_grant().id
    plan.send(plan.dispute("charge.dispute.closed", plan.amount, outcome, dispute_id="dp_plan"))
    plan.send(plan.dispute("charge.dispute.closed", plan.amount, outcome, dispute_id="dp_plan"))
    assert balance_of(user.id) == kept == ledger_sum(user.id)
    assert the_grant().remaining == kept  # won: the plan credits still expire as before


def test_an_invoice_that_names_its_payment_is_linked_without_asking_stripe(
    logged_in, user, stripe_double
):
    plan = PlanPayment(logged_in, stripe_double, "basic")
    plan.pay(with_payments=True)
    assert not stripe_double.requests_to("get", "/v1/invoices/")
    plan.send(plan.refunded(plan.amount))
    assert balance_of(user.id) == 0


def test_a_refund_arriving_before_invoice_paid_is_retried_until_the_grant_exists(
    logged_in, user, stripe_double
):
    plan = PlanPayment(logged_in, stripe_double, "basic")
    early = plan.refunded(plan.amount)
    response = deliver(logged_in, early)
    assert response.status_code == 500  # Stripe delivers it again later
    plan.pay()
    assert deliver(logged_in, early).status_code == 200
    assert balance_of(user.id) == 0 == ledger_sum(user.id)


@pytest.mark.parametrize("taking", ["refund", "dispute"])
def test_a_refund_or_dispute_of_a_subscription_invoice_that_grants_nothing_is_acknowledged(
    logged_in, user, stripe_double, taking
):
    """A plan change billed at once (billing_reason subscription_update, a proration
    invoice) grants nothing: its invoice.paid is ignored and no grant row is written. A
    refund or dispute of its charge has no credits to take back: it is recorded as
    ignored and answered 200 (before, 500 on every delivery, as if the invoice were still
    to be granted), and the plan's credits stay."""
    plan = PlanPayment(logged_in, stripe_double, "basic")
    plan.pay()
    proration = stripe_double.bill_plan_change(plan.subscription["id"])
    plan.send(event("invoice.paid", proration))  # ignored: grants nothing
    intent_id = proration["payments"]["data"][0]["payment"]["payment_intent"]
    charge = stripe_double.objects[stripe_double.objects[intent_id]["latest_charge"]]
    if taking == "refund":
        refunded = {**copy.deepcopy(charge), "amount_refunded": charge["amount"], "refunded": True}
        taken = event("charge.refunded", refunded)
    else:
        dispute = fixture(
            "dispute",
            charge=charge["id"],
            amount=charge["amount"],
            currency=charge["currency"],
            payment_intent=intent_id,
        )
        taken = event("charge.dispute.created", dispute)

    response = deliver(logged_in, taken)
    assert response.status_code == 200, response.get_data(as_text=True)
    outcome = sa.select(StripeEvent.outcome).where(StripeEvent.stripe_event_id == taken["id"])
    assert db.session.scalar(outcome) == "ignored"
    assert balance_of(user.id) == 1000 == ledger_sum(user.id)


def test_a_refund_of_a_payment_that_is_neither_a_purchase_nor_a_plan_is_ignored(
    client, user, stripe_double
):
    intent = stripe_double.new_object(
        "payment_intent", "pi", amount=500, currency="usd", metadata={}
    )
    charge = stripe_double.new_object(
        "charge",
        "ch",
        amount=500,
        currency="usd",
        amount_refunded=500,
        refunded=True,
        payment_intent=intent["id"],
    )
    assert deliver(client, event("charge.refunded", charge)).status_code == 200
    assert db.session.scalar(sa.select(StripeEvent.outcome)) == "ignored"
