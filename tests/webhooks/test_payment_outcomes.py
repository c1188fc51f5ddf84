"""Every way a Checkout Session can end, through the signed webhook, in every order."""

import itertools

import pytest
import sqlalchemy as sa

from tests.payments import Payment, balance_of, deliver_until_done, entries, ledger_sum
from tests.stripe_fakes import deliver
from webapp.extensions import db
from webapp.models import StripeEvent


@pytest.fixture
def payment(app, user, stripe_double):
    return Payment(stripe_double, user, 1000)


def test_completed_unpaid_marks_the_purchase_processing_without_credit(client, payment):
    assert deliver(client, payment.completed("unpaid")).status_code == 200
    assert payment.purchase().status == "processing"
    assert balance_of(payment.user_id) == 0


def test_async_payment_succeeded_credits_a_processing_purchase(client, payment):
    deliver(client, payment.completed("unpaid"))
    assert deliver(client, payment.async_succeeded()).status_code == 200
    purchase = payment.purchase()
    assert purchase.status == "paid" and purchase.credited_at is not None
    assert balance_of(payment.user_id) == 1000 == ledger_sum(payment.user_id)


def test_async_payment_failed_marks_failed_and_credits_nothing(client, payment):
    deliver(client, payment.completed("unpaid"))
    assert deliver(client, payment.async_failed()).status_code == 200
    assert payment.purchase().status == "failed"
    assert balance_of(payment.user_id) == 0 == ledger_sum(payment.user_id)


def test_expired_session_marks_an_open_purchase_expired(client, app, user, stripe_double):
    payment = Payment(stripe_double, user, 1000, paid=False)
    assert deliver(client, payment.expired()).status_code == 200
    assert payment.purchase().status == "expired"
    assert balance_of(user.id) == 0


def test_expired_event_does_not_touch_a_credited_purchase(client, payment):
    deliver(client, payment.completed())
    deliver(client, payment.expired())
    assert payment.purchase().status == "paid"
    assert balance_of(payment.user_id) == 1000


@pytest.mark.parametrize(
    "fields, words",
    [
        ({"amount_total": 999}, "999 usd"),
        ({"currency": "eur"}, "1000 eur"),
    ],
)
def test_amount_or_currency_mismatch_credits_nothing_and_asks_for_review(
    client, payment, fields, words
):
    assert deliver(client, payment.completed(**fields)).status_code == 200
    purchase = payment.purchase()
    assert purchase.status == "needs_review"
    assert words in purchase.review_reason
    assert balance_of(payment.user_id) == 0
    # A correct event afterwards does not credit a purchase under review either.
    deliver(client, payment.async_succeeded())
    assert balance_of(payment.user_id) == 0 and payment.purchase().status == "needs_review"


def _deliver_twice(client, events):
    """Each event twice: once as a replay of the same id, once more later."""
    for evt in events + events:
        assert deliver(client, evt).status_code == 200


def test_a_paid_session_is_credited_once_in_every_order(client, user, stripe_double):
    """All 24 orders of completed / async_succeeded / async_failed / expired, each twice."""
    for number, order in enumerate(
        itertools.permutations(["completed", "async_succeeded", "async_failed", "expired"])
    ):
        payment = Payment(stripe_double, user, 1000)
        _deliver_twice(client, [getattr(payment, name)() for name in order])
        assert payment.purchase().status == "paid", order
        assert balance_of(user.id) == 1000 * (number + 1) == ledger_sum(user.id), order
    assert len(entries(user.id, "purchase")) == 24


@pytest.mark.parametrize(
    "second, status, credited", [("async_succeeded", "paid", 1000), ("async_failed", "failed", 0)]
)
@pytest.mark.parametrize("first_is_completed", [True, False])
def test_a_delayed_payment_ends_right_in_either_order(
    client, payment, second, status, credited, first_is_completed
):
    completed = payment.completed("unpaid")
    other = getattr(payment, second)()
    _deliver_twice(client, [completed, other] if first_is_completed else [other, completed])
    assert payment.purchase().status == status
    assert balance_of(payment.user_id) == credited == ledger_sum(payment.user_id)


def test_replayed_event_ids_are_recorded_once(client, payment):
    evt = payment.completed()
    deliver_until_done(client, [evt, evt, evt])
    assert db.session.scalar(sa.select(sa.func.count()).select_from(StripeEvent)) == 1
    assert balance_of(payment.user_id) == 1000
