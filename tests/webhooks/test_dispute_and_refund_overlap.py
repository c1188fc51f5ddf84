"""A dispute that gives its credits back still leaves the overlapping refund its share."""

import pytest

from tests.payments import Payment, balance_of, ledger_sum
from tests.stripe_fakes import deliver


@pytest.fixture
def payment(app, user, stripe_double, client):
    payment = Payment(stripe_double, user, 1000)
    assert deliver(client, payment.completed()).status_code == 200
    return payment


def test_inquiry_resolved_by_full_refund_leaves_no_credits(client, payment):
    # Stripe's usual inquiry flow: inquiry opened, merchant refunds in full, inquiry closes.
    deliver(
        client,
        payment.dispute(
            "charge.dispute.created", 1000, "warning_needs_response", dispute_id="dp_inq"
        ),
    )
    assert deliver(client, payment.refunded(1000)).status_code == 200
    deliver(
        client,
        payment.dispute("charge.dispute.closed", 1000, "warning_closed", dispute_id="dp_inq"),
    )
    # Customer got all 1000 cents back, so no credits may remain.
    assert balance_of(payment.user_id) == 0 == ledger_sum(payment.user_id)


@pytest.mark.parametrize("refund_first", [True, False])
def test_won_dispute_and_earlier_refund_end_the_same_in_either_delivery_order(
    client, payment, refund_first
):
    refund = payment.refunded(400)
    created = payment.dispute("charge.dispute.created", 1000, dispute_id="dp_ord")
    events = [refund, created] if refund_first else [created, refund]
    for evt in events:
        assert deliver(client, evt).status_code == 200
    deliver(client, payment.dispute("charge.dispute.closed", 1000, "won", dispute_id="dp_ord"))
    # 400 of 1000 cents refunded, dispute won: 600 credits should remain.
    assert balance_of(payment.user_id) == 600 == ledger_sum(payment.user_id)
