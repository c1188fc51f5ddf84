"""Refunds and disputes through the signed webhook: proportional, cumulative, exactly once."""

import itertools

import pytest
import sqlalchemy as sa

from tests.payments import Payment, balance_of, deliver_until_done, entries, ledger_sum
from tests.stripe_fakes import deliver, event
from webapp.domain import ledger
from webapp.domain.errors import InsufficientCreditsError
from webapp.extensions import db
from webapp.models import Dispute, StripeEvent


@pytest.fixture
def payment(app, user, stripe_double, client):
    payment = Payment(stripe_double, user, 1000)
    assert deliver(client, payment.completed()).status_code == 200
    return payment


def outcome_of(event_id):
    return db.session.scalar(
        sa.select(StripeEvent.outcome).where(StripeEvent.stripe_event_id == event_id)
    )


# --- refunds


def test_full_refund_takes_back_every_credit(client, payment):
    assert deliver(client, payment.refunded(1000)).status_code == 200
    assert balance_of(payment.user_id) == 0 == ledger_sum(payment.user_id)
    purchase = payment.purchase()
    assert purchase.status == "refunded"
    assert purchase.credits_refunded == 1000 and purchase.amount_refunded_cents == 1000
    [refund] = entries(payment.user_id, "refund")
    assert refund.credits == -1000 and refund.purchase_id == payment.purchase_id
    assert purchase.stripe_charge_id == payment.charge["id"]


def test_second_partial_refund_takes_only_the_difference(client, payment):
    deliver(client, payment.refunded(300))
    assert balance_of(payment.user_id) == 700
    assert payment.purchase().status == "partially_refunded"
    deliver(client, payment.refunded(500))
    assert balance_of(payment.user_id) == 500 == ledger_sum(payment.user_id)
    assert [e.credits for e in entries(payment.user_id, "refund")] == [-300, -200]


def test_replayed_and_stale_refund_events_take_nothing_more(client, payment):
    first, bigger = payment.refunded(300), payment.refunded(600)
    deliver(client, bigger)
    deliver(client, first)  # older, smaller cumulative amount, arriving late
    deliver(client, bigger)  # the same event again
    deliver(client, payment.refunded(600))  # a new event with the same amount
    assert balance_of(payment.user_id) == 400 == ledger_sum(payment.user_id)
    purchase = payment.purchase()
    assert purchase.credits_refunded == 600 and purchase.amount_refunded_cents == 600
    assert purchase.status == "partially_refunded"


@pytest.mark.parametrize("config_overrides", [{"CREDIT_UNIT_AMOUNT": 3}])
def test_refunds_round_down_each_time_and_the_last_takes_the_rest(client, payment):
    assert payment.amount == 3000
    steps = []
    for refunded in (1000, 2000, 3000):
        deliver(client, payment.refunded(refunded))
        steps.append(balance_of(payment.user_id))
    assert steps == [1000 - 333, 1000 - 666, 0]
    assert payment.purchase().status == "refunded"


COMPANION_EVENTS = (
    "refund.created",
    "refund.updated",
    "charge.refund.updated",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.funds_reinstated",
    "charge.dispute.updated",
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "charge.succeeded",
)


def test_companion_events_take_nothing(client, payment):
    refund = {
        "id": "re_123",
        "object": "refund",
        "amount": 1000,
        "status": "succeeded",
        "charge": payment.charge["id"],
        "payment_intent": payment.intent["id"],
    }
    for event_type in COMPANION_EVENTS:
        family = (
            event_type.split(".")[0] if not event_type.startswith("charge.dispute") else "dispute"
        )
        obj = {
            "refund": refund,
            "payment_intent": payment.intent,
            "charge": payment.charge,
            "dispute": payment.dispute(event_type, 1000)["data"]["object"],
        }[family]
        evt = event(event_type, obj)
        assert deliver(client, evt).status_code == 200
        assert outcome_of(evt["id"]) == "ignored", event_type
    assert balance_of(payment.user_id) == 1000 == ledger_sum(payment.user_id)


def test_a_refund_may_take_the_balance_below_zero_but_usage_never_does(client, payment):
    ledger.debit_usage(payment.user_id, 800, "api calls")
    deliver(client, payment.refunded(1000))
    assert balance_of(payment.user_id) == -800 == ledger_sum(payment.user_id)
    with pytest.raises(InsufficientCreditsError):
        ledger.debit_usage(payment.user_id, 1, "more calls")
    assert balance_of(payment.user_id) == -800


def test_refund_for_a_charge_that_is_not_ours_is_ignored(client, payment, stripe_double):
    intent = stripe_double.new_object("payment_intent", "pi", metadata={"purpose": "other"})
    charge = {
        **payment.charge,
        "id": "ch_someone_else",
        "payment_intent": intent["id"],
        "amount_refunded": 1000,
        "refunded": True,
    }
    evt = event("charge.refunded", charge)
    assert deliver(client, evt).status_code == 200
    assert outcome_of(evt["id"]) == "ignored"
    assert balance_of(payment.user_id) == 1000


# --- linking


def test_refund_is_linked_by_the_stored_payment_intent_without_asking_stripe(
    client, payment, stripe_double
):
    deliver(client, payment.refunded(100))
    assert stripe_double.requests_to("get", "/v1/payment_intents") == []
    assert stripe_double.requests_to("get", "/v1/charges") == []
    assert balance_of(payment.user_id) == 900


def test_dispute_naming_only_the_charge_is_linked_by_the_stored_charge_id(
    client, payment, stripe_double
):
    deliver(client, payment.refunded(100))  # stores the charge id
    deliver(client, payment.dispute("charge.dispute.created", 900, with_intent=False))
    assert stripe_double.requests_to("get", "/v1/") == []
    assert balance_of(payment.user_id) == 0


def test_purchase_without_stored_ids_is_found_by_asking_stripe(client, app, user, stripe_double):
    payment = Payment(stripe_double, user, 1000)
    deliver(client, payment.completed(payment_intent=None))  # fulfilled, intent unknown
    assert payment.purchase().stripe_payment_intent_id is None
    deliver(client, payment.dispute("charge.dispute.created", 1000, with_intent=False))
    assert len(stripe_double.requests_to("get", f"/v1/charges/{payment.charge['id']}")) == 1
    assert len(stripe_double.requests_to("get", f"/v1/payment_intents/{payment.intent['id']}")) == 1
    purchase = payment.purchase()
    assert purchase.stripe_charge_id == payment.charge["id"]
    assert purchase.stripe_payment_intent_id == payment.intent["id"]
    assert balance_of(user.id) == 0 and purchase.status == "disputed"


def test_stripe_failing_during_lookup_answers_500_and_the_retry_applies(
    client, app, user, stripe_double
):
    payment = Payment(stripe_double, user, 1000)
    deliver(client, payment.completed(payment_intent=None))
    evt = payment.refunded(1000)
    stripe_double.fail_next("/v1/payment_intents", 500)
    stripe_double.fail_next("/v1/payment_intents", 500)
    stripe_double.fail_next("/v1/payment_intents", 500)
    assert deliver(client, evt).status_code == 500
    assert balance_of(user.id) == 1000 and outcome_of(evt["id"]) == "failed"
    assert deliver(client, evt).status_code == 200
    assert balance_of(user.id) == 0


# --- events before the event they depend on


@pytest.mark.parametrize(
    "make_event",
    [
        lambda p: p.refunded(400),
        lambda p: p.dispute("charge.dispute.created", 400, dispute_id="dp_early"),
        lambda p: p.dispute("charge.dispute.closed", 400, "lost", dispute_id="dp_early"),
    ],
    ids=["refund", "dispute_created", "dispute_closed_lost"],
)
def test_taking_back_before_the_purchase_is_credited_is_retried_not_lost(
    client, app, user, stripe_double, make_event
):
    payment = Payment(stripe_double, user, 1000)
    early = make_event(payment)
    assert deliver(client, early).status_code == 500
    assert outcome_of(early["id"]) == "failed" and balance_of(user.id) == 0
    assert deliver(client, payment.completed()).status_code == 200
    assert deliver(client, early).status_code == 200  # Stripe's retry
    assert balance_of(user.id) == 600 == ledger_sum(user.id)
    assert len(entries(user.id, "purchase")) == 1


def test_refund_arriving_while_the_session_looks_expired_waits_for_the_payment(
    client, app, user, stripe_double
):
    payment = Payment(stripe_double, user, 1000)
    deliver(client, payment.expired())  # out of order: Stripe's expiry raced the payment
    early = payment.refunded(1000)
    assert deliver(client, early).status_code == 500
    deliver(client, payment.completed())
    assert deliver(client, early).status_code == 200
    assert balance_of(user.id) == 0 == ledger_sum(user.id)
    assert payment.purchase().status == "refunded"


def test_refund_for_a_purchase_under_review_takes_nothing_and_is_kept(
    client, app, user, stripe_double
):
    payment = Payment(stripe_double, user, 1000)
    deliver(client, payment.completed(amount_total=1))
    assert deliver(client, payment.refunded(1000)).status_code == 200
    purchase = payment.purchase()
    # Fully refunded, nothing credited: the review is settled (the reason stays on record).
    assert purchase.status == "refunded" and purchase.amount_refunded_cents == 1000
    assert purchase.credited_at is None and purchase.review_reason
    assert balance_of(user.id) == 0 == ledger_sum(user.id)


# --- disputes


def test_dispute_takes_the_disputed_credits_once(client, payment):
    created = payment.dispute("charge.dispute.created", 400, dispute_id="dp_once")
    assert deliver(client, created).status_code == 200
    deliver(client, created)
    deliver(client, payment.dispute("charge.dispute.created", 400, dispute_id="dp_once"))
    assert balance_of(payment.user_id) == 600 == ledger_sum(payment.user_id)
    [taken] = entries(payment.user_id, "dispute")
    assert taken.credits == -400 and taken.reference == "dp_once"
    assert payment.purchase().status == "disputed"
    assert db.session.scalar(sa.select(Dispute.credits_taken)) == 400


def test_won_dispute_returns_the_credits_once(client, payment):
    deliver(client, payment.dispute("charge.dispute.created", 1000, dispute_id="dp_won"))
    closed = payment.dispute("charge.dispute.closed", 1000, "won", dispute_id="dp_won")
    deliver(client, closed)
    deliver(client, closed)
    deliver(client, payment.dispute("charge.dispute.closed", 1000, "won", dispute_id="dp_won"))
    assert balance_of(payment.user_id) == 1000 == ledger_sum(payment.user_id)
    [returned] = entries(payment.user_id, "dispute_reversal")
    assert returned.credits == 1000
    assert payment.purchase().status == "paid"


def test_lost_dispute_keeps_the_credits(client, payment):
    deliver(client, payment.dispute("charge.dispute.created", 1000, dispute_id="dp_lost"))
    deliver(client, payment.dispute("charge.dispute.closed", 1000, "lost", dispute_id="dp_lost"))
    assert balance_of(payment.user_id) == 0 == ledger_sum(payment.user_id)
    assert entries(payment.user_id, "dispute_reversal") == []
    assert payment.purchase().status == "disputed"


@pytest.mark.parametrize("status, balance", [("won", 1000), ("lost", 0)])
def test_dispute_closed_before_created_ends_the_same(client, payment, status, balance):
    deliver(client, payment.dispute("charge.dispute.closed", 1000, status, dispute_id="dp_x"))
    deliver(client, payment.dispute("charge.dispute.created", 1000, dispute_id="dp_x"))
    assert balance_of(payment.user_id) == balance == ledger_sum(payment.user_id)
    assert payment.purchase().status == ("paid" if status == "won" else "disputed")


def test_dispute_after_a_partial_refund_takes_only_what_is_left(client, payment):
    deliver(client, payment.refunded(300))
    deliver(client, payment.dispute("charge.dispute.created", 1000, dispute_id="dp_rest"))
    assert balance_of(payment.user_id) == 0 == ledger_sum(payment.user_id)
    purchase = payment.purchase()
    assert purchase.credits_refunded == 300 and purchase.credits_disputed == 700
    deliver(client, payment.dispute("charge.dispute.closed", 1000, "won", dispute_id="dp_rest"))
    assert balance_of(payment.user_id) == 700
    assert payment.purchase().status == "partially_refunded"


def test_refund_and_dispute_together_never_take_more_than_was_credited(client, payment):
    deliver(client, payment.dispute("charge.dispute.created", 800, dispute_id="dp_big"))
    deliver(client, payment.refunded(1000))
    assert balance_of(payment.user_id) == 0 == ledger_sum(payment.user_id)
    taken = sum(-e.credits for e in entries(payment.user_id) if e.credits < 0)
    assert taken == 1000


# --- every order for one purchase


@pytest.mark.parametrize(
    "outcome, taken_back, status", [("lost", 1000, "disputed"), ("won", 400, "partially_refunded")]
)
def test_every_order_of_payment_refund_and_dispute_ends_the_same(
    client, app, user, stripe_double, outcome, taken_back, status
):
    """All 24 orders of completed / refund / dispute created / dispute closed, with
    async_succeeded slipped in at a different place each time and replays of the first two."""
    balance = 0
    for number, order in enumerate(itertools.permutations(range(4))):
        payment = Payment(stripe_double, user, 1000)
        dispute_id = f"dp_order_{number}"
        events = [
            payment.completed(),
            payment.refunded(400),
            payment.dispute("charge.dispute.created", 600, dispute_id=dispute_id),
            payment.dispute("charge.dispute.closed", 600, outcome, dispute_id=dispute_id),
        ]
        ordered = [events[i] for i in order]
        ordered.insert(number % 5, payment.async_succeeded())
        deliver_until_done(client, ordered + ordered[:2])
        balance += 1000 - taken_back
        assert balance_of(user.id) == balance == ledger_sum(user.id), order
        assert payment.purchase().status == status, order
    assert len(entries(user.id, "purchase")) == 24
