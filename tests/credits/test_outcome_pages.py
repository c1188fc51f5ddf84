"""The history and success pages say what happened to each payment in customer words."""

import pytest

from tests.payments import Payment
from tests.stripe_fakes import deliver


@pytest.fixture
def paid(logged_in, user, stripe_double):
    payment = Payment(stripe_double, user, 1000)
    assert deliver(logged_in, payment.completed()).status_code == 200
    return payment


def page_text(client, url):
    response = client.get(url)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_payments_tab_names_every_state(logged_in, user, stripe_double, paid):
    refunded = Payment(stripe_double, user, 500)
    deliver(logged_in, refunded.completed())
    deliver(logged_in, refunded.refunded(200))
    disputed = Payment(stripe_double, user, 600)
    deliver(logged_in, disputed.completed())
    deliver(logged_in, disputed.dispute("charge.dispute.created", 600))
    processing = Payment(stripe_double, user, 700, paid=False)
    deliver(logged_in, processing.completed("unpaid"))
    failed = Payment(stripe_double, user, 800, paid=False)
    deliver(logged_in, failed.completed("unpaid"))
    deliver(logged_in, failed.async_failed())
    review = Payment(stripe_double, user, 900)
    deliver(logged_in, review.completed(amount_total=1))
    expired = Payment(stripe_double, user, 400, paid=False)
    deliver(logged_in, expired.expired())

    text = page_text(logged_in, "/credits/history?tab=payments")
    for words in (
        "Paid",
        "Partly refunded",
        "200 credits taken back for 2.00 USD refunded",
        "Disputed",
        "600 credits held: this payment is disputed with your bank",
        "Payment processing",
        "Your bank is still confirming this payment",
        "Payment failed",
        "Under review",
        "checking this payment by hand",
        "Checkout expired",
    ):
        assert words in text, words
    for code in ("partially_refunded", "needs_review"):
        assert f">{code}<" not in text


def test_activity_tab_shows_refund_and_dispute_lines(logged_in, paid):
    deliver(logged_in, paid.refunded(250))
    deliver(logged_in, paid.dispute("charge.dispute.created", 750, dispute_id="dp_page"))
    deliver(logged_in, paid.dispute("charge.dispute.closed", 750, "won", dispute_id="dp_page"))
    text = page_text(logged_in, "/credits/history")
    for words in (
        "Refund",
        "-250",
        "Refund: 2.50 USD of your 10.00 USD payment returned to you",
        "Dispute",
        "-750",
        "Payment disputed with your bank",
        "Credits returned",
        "+750",
        "Dispute settled: the held credits are yours again",
    ):
        assert words in text, words


def test_success_page_explains_a_refund(logged_in, paid):
    deliver(logged_in, paid.refunded(1000))
    text = page_text(logged_in, f"/credits/success?session_id={paid.session['id']}")
    assert "Refunded: 10.00 USD of this payment was returned to you" in text
    assert "1,000 of its credits were taken back" in text


def test_success_page_explains_a_dispute(logged_in, paid):
    deliver(logged_in, paid.dispute("charge.dispute.created", 400))
    text = page_text(logged_in, f"/credits/success?session_id={paid.session['id']}")
    assert "disputed with your bank, so 400 of its credits are held" in text


def test_success_page_says_a_delayed_payment_is_processing(logged_in, user, stripe_double):
    payment = Payment(stripe_double, user, 1000, paid=False)
    deliver(logged_in, payment.completed("unpaid"))
    text = page_text(logged_in, f"/credits/success?session_id={payment.session['id']}")
    assert "Payment processing" in text and "credits added" not in text
