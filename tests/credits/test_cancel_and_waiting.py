"""Coming back from Checkout by "cancel", pages that wait for Stripe, and what they say."""

import sqlalchemy as sa

from tests.stripe_fakes import deliver, event
from webapp.domain import api_keys, ledger, stripe_gateway, users
from webapp.extensions import db
from webapp.models import Purchase
from webapp.stripe_double import StripeDouble, minimal_templates


def start(client) -> Purchase:
    client.post("/credits/checkout", data={"credits": "1000"})
    return db.session.scalars(sa.select(Purchase).order_by(Purchase.id.desc())).first()


def test_cancel_expires_the_session_at_stripe_and_the_purchase(logged_in, stripe_double):
    purchase = start(logged_in)
    response = logged_in.get(f"/credits/cancel?purchase={purchase.id}")
    assert response.status_code == 200 and b"Payment cancelled" in response.data
    expire = stripe_double.requests_to("post", "/v1/checkout/sessions/")
    assert [r["path"] for r in expire] == [
        f"/v1/checkout/sessions/{purchase.stripe_checkout_session_id}/expire"
    ]
    assert stripe_double.objects[purchase.stripe_checkout_session_id]["status"] == "expired"
    db.session.refresh(purchase)
    assert purchase.status == "expired" and purchase.credited_at is None
    page = logged_in.get("/credits/history?tab=payments").get_data(as_text=True)
    assert "Checkout expired" in page and "Waiting for payment" not in page
    # Stripe's own checkout.session.expired, arriving afterwards, changes nothing more.
    session = stripe_double.objects[purchase.stripe_checkout_session_id]
    assert deliver(logged_in, event("checkout.session.expired", session)).status_code == 200
    db.session.refresh(purchase)
    assert purchase.status == "expired"


def test_cancel_after_paying_in_another_tab_credits_instead(logged_in, user, stripe_double):
    purchase = start(logged_in)
    stripe_double.complete_checkout_session(purchase.stripe_checkout_session_id)
    response = logged_in.get(f"/credits/cancel?purchase={purchase.id}")
    assert b"This payment went through" in response.data
    db.session.refresh(purchase)
    assert purchase.status == "paid" and ledger.current_balance(user.id) == 1000


def test_cancel_of_someone_elses_or_no_purchase_asks_stripe_nothing(app, client, stripe_double):
    owner = users.create_user("owner@example.com", "correct-horse")
    client.post("/auth/login", data={"email": owner.email, "password": "correct-horse"})
    purchase = start(client)
    client.post("/auth/logout")
    users.create_user("other@example.com", "correct-horse")
    client.post("/auth/login", data={"email": "other@example.com", "password": "correct-horse"})
    calls = len(stripe_double.requests)
    for url in (
        f"/credits/cancel?purchase={purchase.id}",
        "/credits/cancel",
        "/credits/cancel?purchase=abc",
        "/credits/cancel?purchase=99999999999999999999",
    ):
        response = client.get(url)
        assert response.status_code == 200 and b"Payment cancelled" in response.data
    assert len(stripe_double.requests) == calls
    db.session.refresh(purchase)
    assert purchase.status == "pending"


def test_waiting_pages_refresh_themselves_until_the_payment_is_settled(logged_in, stripe_double):
    purchase = start(logged_in)
    url = f"/credits/success?session_id={purchase.stripe_checkout_session_id}"
    waiting = logged_in.get(url).get_data(as_text=True)
    assert '<meta http-equiv="refresh" content="5">' in waiting
    assert "checks again every few seconds" in waiting
    stripe_double.complete_checkout_session(purchase.stripe_checkout_session_id)
    done = logged_in.get(url).get_data(as_text=True)
    assert "1,000 credits added" in done and 'http-equiv="refresh"' not in done


def test_api_checkout_url_is_absolute_in_the_sandbox(app, client, user):
    # The sandbox's double answers with a path on this app, as in `make run`.
    sandbox = StripeDouble(minimal_templates, checkout_base="")
    stripe_gateway.init_app(app, "sk_test_sandbox", sandbox)
    secret = api_keys.mint(user.id).secret
    response = client.post(
        "/api/v1/checkout", json={"credits": 500}, headers={"Authorization": f"Bearer {secret}"}
    )
    assert response.status_code == 201
    url = response.get_json()["url"]
    assert url.startswith("https://credits.example.test/sandbox/checkout/cs_"), url


def test_meter_never_shows_more_than_100_percent_left(logged_in, user):
    ledger.adjust(user.id, 100, "Goodwill")
    page = logged_in.get("/credits").get_data(as_text=True)
    assert "<dd>100%</dd>" in page and "101%" not in page
