"""When the bank wants the card holder: needs_action, the intent cancelled, a Checkout to confirm."""

import pytest

from tests.stripe_fakes import deliver, event
from webapp.domain.ledger.recharge_outcomes import Outcome


def confirm(recharge, purchase_id: int):
    return recharge.client.get(f"/credits/auto-recharge/confirm/{purchase_id}")


@pytest.mark.parametrize(
    "last4", ["3184", "3220"]
)  # a 402 authentication_required; requires_action
def test_authentication_wanted_marks_needs_action_and_cancels_the_intent(recharge, last4):
    recharge.setup(balance=1000, threshold=200, amount=500, last4=last4)
    recharge.spend(850)

    assert recharge.charge() == [Outcome.NEEDS_ACTION]

    attempt = recharge.attempt()
    assert attempt.status == "needs_action"
    [intent] = recharge.intents()
    assert intent["status"] == "canceled"
    page = recharge.client.get("/credits").get_data(as_text=True)
    assert f"/credits/auto-recharge/confirm/{attempt.id}" in page
    assert recharge.settings().consecutive_failures == 0
    # Events about it, in any order, change nothing.
    for name in (
        "payment_intent.payment_failed",
        "payment_intent.requires_action",
        "payment_intent.canceled",
    ):
        assert deliver(recharge.client, event(name, intent)).status_code == 200
    assert recharge.attempt().status == "needs_action"
    assert recharge.balance() == 150


def test_no_new_attempt_while_one_waits_for_the_card_holder(recharge):
    recharge.setup(balance=1000, threshold=200, amount=500, last4="3184")
    recharge.spend(850)
    recharge.run_worker()
    recharge.spend(10)
    recharge.spend(10)
    assert len(recharge.attempts()) == 1


def test_the_confirm_link_opens_a_checkout_for_the_same_credits_credited_once(
    recharge, stripe_double
):
    recharge.setup(balance=1000, threshold=200, amount=500, last4="3184")
    recharge.spend(850)
    recharge.run_worker()
    attempt = recharge.attempt()

    response = confirm(recharge, attempt.id)
    again = confirm(recharge, attempt.id)

    assert response.status_code == 303 and again.location == response.location
    sessions = stripe_double.requests_to("post", "/v1/checkout/sessions")
    params = sessions[-1]["params"]
    assert params["mode"] == "payment"
    assert params["metadata"]["purchase_id"] == str(attempt.id)
    assert params["line_items"][0]["price_data"]["unit_amount"] == "500"
    session = stripe_double.complete_checkout_session(recharge.attempt().stripe_checkout_session_id)
    for _ in range(2):
        assert (
            deliver(recharge.client, event("checkout.session.completed", session)).status_code
            == 200
        )
    assert recharge.attempt().status == "paid"
    assert recharge.balance() == 650
    assert len(recharge.purchase_credits()) == 1
    recharge.assert_ledger_consistent()
    # Paid: the link now says so instead of opening anything.
    assert confirm(recharge, attempt.id).status_code == 302
    # And a new attempt may start.
    recharge.spend(500)
    assert [p.status for p in recharge.attempts()] == ["paid", "pending"]


def test_an_expired_confirmation_ends_the_wait(recharge, stripe_double):
    recharge.setup(balance=1000, threshold=200, amount=500, last4="3184")
    recharge.spend(850)
    recharge.run_worker()
    attempt = recharge.attempt()
    confirm(recharge, attempt.id)
    session = stripe_double.expire_checkout_session(recharge.attempt().stripe_checkout_session_id)

    assert deliver(recharge.client, event("checkout.session.expired", session)).status_code == 200

    assert recharge.attempt().status == "expired"
    recharge.spend(10)
    assert [p.status for p in recharge.attempts()] == ["expired", "pending"]


def test_someone_elses_or_an_unknown_attempt_is_404(recharge, client, admin):
    recharge.setup(balance=1000, threshold=200, amount=500, last4="3184")
    recharge.spend(850)
    recharge.run_worker()
    attempt = recharge.attempt()
    assert confirm(recharge, 999999).status_code == 404
    recharge.client.post("/auth/logout")
    recharge.client.post("/auth/login", data={"email": admin.email, "password": "correct-horse"})
    assert confirm(recharge, attempt.id).status_code == 404
