"""Defect 5: Stripe idempotency keys are random, stored on the row and reused on retries."""

import sqlalchemy as sa

from tests.conftest import empty_all_tables, login
from tests.payments import Payment
from webapp.domain import users
from webapp.extensions import db
from webapp.models import Purchase, User


def checkout_requests(stripe_double):
    return stripe_double.requests_to("post", "/v1/checkout/sessions")


def test_a_database_reset_never_meets_an_earlier_purchases_key_at_stripe(
    client, user, stripe_double
):
    login(client, user.email)
    first = Payment(stripe_double, user, 1000)  # paid at Stripe
    # Staging reset / restore from an older backup: the same ids come round again.
    empty_all_tables()
    again = users.create_user("buyer@example.com", "correct-horse")
    login(client, again.email)
    response = client.post("/credits/checkout", data={"credits": "1000"})
    assert response.status_code == 303
    purchase = db.session.scalars(sa.select(Purchase)).one()
    assert purchase.id == first.purchase_id and again.id == first.user_id  # ids repeated
    assert purchase.stripe_checkout_session_id != first.session["id"]
    assert stripe_double.objects[purchase.stripe_checkout_session_id]["payment_status"] == "unpaid"
    keys = [r["idempotency_key"] for r in checkout_requests(stripe_double)]
    assert len(set(keys)) == 2 and keys[1] == purchase.stripe_idempotency_key
    customers = stripe_double.requests_to("post", "/v1/customers")
    assert len({r["idempotency_key"] for r in customers}) == 2


def test_a_failed_customer_creation_is_retried_with_the_same_stored_key(
    logged_in, user, stripe_double
):
    for _ in range(3):  # the stripe library's own retries (same key) fail too
        stripe_double.fail_next("/v1/customers")
    assert logged_in.post("/credits/checkout", data={"credits": "500"}).status_code != 303
    assert logged_in.post("/credits/checkout", data={"credits": "500"}).status_code == 303
    keys = [r["idempotency_key"] for r in stripe_double.requests_to("post", "/v1/customers")]
    stored = db.session.get(User, user.id).stripe_customer_key
    assert len(keys) == 4 and set(keys) == {stored}


def test_a_refund_asked_again_after_a_failure_reuses_its_key(client, admin, user, stripe_double):
    payment = Payment(stripe_double, user, 1000)
    from tests.stripe_fakes import deliver

    deliver(client, payment.completed())
    login(client, admin.email)
    for _ in range(3):
        stripe_double.fail_next("/v1/refunds")
    url = f"/admin/purchases/{payment.purchase_id}/refund"
    assert client.post(url, data={"amount": "2.00"}).status_code == 502
    assert client.post(url, data={"amount": "2.00"}).status_code == 303
    assert client.post(url, data={"amount": "2.00"}).status_code == 303  # a deliberate second
    keys = [r["idempotency_key"] for r in stripe_double.requests_to("post", "/v1/refunds")]
    assert len(keys) == 5 and len(set(keys[:4])) == 1 and keys[4] != keys[0]
    assert f"-{payment.purchase_id}-" not in keys[0]
