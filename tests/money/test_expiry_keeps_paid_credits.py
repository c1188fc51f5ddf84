"""Defect 2: every debit keeps the grants' remainders right, so expiry never eats paid credits."""

from datetime import timedelta

from tests.payments import Payment, balance_of, ledger_sum
from tests.stripe_fakes import deliver, event
from tests.subscription_fakes import FEB_1, invoice, new_id


def send(client, evt):
    response = deliver(client, evt)
    assert response.status_code == 200, response.get_data(as_text=True)


def expiring_total(client):
    body = client.get("/api/v1/balance").get_json()
    return body["balance"], sum(entry["credits"] for entry in body["expiring"])


def test_a_refund_after_a_grant_leaves_bought_credits_to_survive_expiry(
    logged_in, user, stripe_double, fixed_clock
):
    first = Payment(stripe_double, user, 1000)
    send(logged_in, first.completed())
    assert logged_in.post("/api/v1/usage", json={"credits": 1000}).status_code == 200
    send(logged_in, event("invoice.paid", invoice(new_id("sub"), user.id, end=FEB_1)))
    assert expiring_total(logged_in) == (1000, 1000)
    send(logged_in, first.refunded(first.amount))
    # The refund took the only credits there were: the expiring ones.
    assert expiring_total(logged_in) == (0, 0)
    second = Payment(stripe_double, user, 1000)
    send(logged_in, second.completed())
    assert expiring_total(logged_in) == (1000, 0)
    fixed_clock.set(FEB_1 + timedelta(seconds=1))
    result = logged_in.application.test_cli_runner().invoke(args=["credits", "expire"])
    assert result.exit_code == 0, result.output
    assert balance_of(user.id) == 1000 == ledger_sum(user.id)
    assert expiring_total(logged_in) == (1000, 0)


def test_a_negative_adjustment_takes_expiring_credits_first(
    client, admin, user, stripe_double, fixed_clock
):
    from tests.conftest import login

    paid = Payment(stripe_double, user, 500)
    send(client, paid.completed())
    send(client, event("invoice.paid", invoice(new_id("sub"), user.id, end=FEB_1)))
    login(client, admin.email)
    response = client.post(
        f"/admin/users/{user.id}/adjust", data={"credits": "-1000", "reason": "goodwill reversed"}
    )
    assert response.status_code == 303
    fixed_clock.set(FEB_1 + timedelta(seconds=1))
    client.application.test_cli_runner().invoke(args=["credits", "expire"])
    assert balance_of(user.id) == 500 == ledger_sum(user.id)
