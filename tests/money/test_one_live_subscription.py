"""Defect 6: a second subscription cannot be bought while one is live (stale or second tab)."""

import pytest

from tests.money.plan_payments import PlanPayment


def subscription_sessions(stripe_double):
    return [
        r
        for r in stripe_double.requests_to("post", "/v1/checkout/sessions")
        if r["params"].get("mode") == "subscription"
    ]


@pytest.mark.parametrize("plan", ["basic", "pro"])
def test_subscribing_again_while_a_subscription_is_live_is_refused(
    logged_in, user, stripe_double, plan
):
    PlanPayment(logged_in, stripe_double, "basic").pay()
    response = logged_in.post("/billing/subscribe", data={"plan": plan})
    assert response.status_code == 409
    assert "already have" in response.get_data(as_text=True)
    assert len(subscription_sessions(stripe_double)) == 1


def test_after_the_subscription_ended_a_new_one_can_be_bought(logged_in, user, stripe_double):
    from tests.stripe_fakes import deliver, event

    first = PlanPayment(logged_in, stripe_double, "basic")
    first.pay()
    ended = stripe_double.cancel_subscription(first.subscription["id"], at_period_end=False)
    assert deliver(logged_in, event("customer.subscription.deleted", ended)).status_code == 200
    response = logged_in.post("/billing/subscribe", data={"plan": "pro"})
    assert response.status_code == 303
    assert len(subscription_sessions(stripe_double)) == 2
