"""The development sandbox: a whole purchase without Stripe, over the real webhook path."""

import pytest
import sqlalchemy as sa

from webapp.extensions import db
from webapp.models import Purchase, StripeEvent

SANDBOX = {
    "SANDBOX_ENABLED": True,
    "STRIPE_SECRET_KEY": "",
    "STRIPE_HTTP_CLIENT": None,
    "PUBLIC_BASE_URL": "",
}


@pytest.fixture
def config_overrides():
    return dict(SANDBOX)


def start(client, credits="1000"):
    """The sandbox's checkout page (an absolute URL on this app), as a path for the client."""
    response = client.post("/credits/checkout", data={"credits": credits})
    assert response.status_code == 303
    location = response.headers["Location"]
    assert location.startswith("http://localhost/sandbox/checkout/cs_test_"), location
    return location.removeprefix("http://localhost")


def test_sandbox_purchase_pays_through_a_signed_webhook(logged_in):
    checkout_url = start(logged_in)
    assert checkout_url.startswith("/sandbox/checkout/cs_test_")
    page = logged_in.get(checkout_url).get_data(as_text=True)
    assert "sandbox: no real payment" in page and "10.00 USD" in page
    done = logged_in.post(f"{checkout_url}/pay", follow_redirects=True)
    assert "1,000 credits added" in done.get_data(as_text=True)
    recorded = db.session.scalar(sa.select(StripeEvent))
    assert (recorded.type, recorded.outcome) == ("checkout.session.completed", "processed")
    assert logged_in.get("/api/v1/balance").get_json()["balance"] == 1000
    assert "Bought 1,000 credits" in logged_in.get("/credits/history").get_data(as_text=True)


def test_sandbox_delayed_payment_processes_then_settles(logged_in):
    checkout_url = start(logged_in)
    later = logged_in.post(f"{checkout_url}/pay-later", follow_redirects=True)
    assert "Payment processing" in later.get_data(as_text=True)
    assert logged_in.get("/api/v1/balance").get_json()["balance"] == 0
    logged_in.post(f"{checkout_url}/settle")
    assert logged_in.get("/api/v1/balance").get_json()["balance"] == 1000


def test_sandbox_delayed_payment_can_fail(logged_in):
    checkout_url = start(logged_in)
    logged_in.post(f"{checkout_url}/pay-later")
    logged_in.post(f"{checkout_url}/fail")
    assert db.session.scalar(sa.select(Purchase.status)) == "failed"
    assert logged_in.get("/api/v1/balance").get_json()["balance"] == 0


def test_sandbox_session_can_expire(logged_in):
    checkout_url = start(logged_in)
    logged_in.post(f"{checkout_url}/expire")
    assert db.session.scalar(sa.select(Purchase.status)) == "expired"


def test_sandbox_pages_belong_to_their_buyer(client, logged_in):
    checkout_url = start(logged_in)
    logged_in.post("/auth/logout")
    client.post("/auth/signup", data={"email": "other@example.com", "password": "long-enough"})
    assert client.get(checkout_url).status_code == 404
    assert client.post(f"{checkout_url}/pay").status_code == 404


def test_sandbox_is_not_served_when_stripe_is_configured(app_factory_config_without_sandbox):
    client = app_factory_config_without_sandbox.test_client()
    assert client.get("/sandbox/checkout/cs_test_x").status_code == 404


@pytest.fixture
def app_factory_config_without_sandbox(database_url):
    from tests.conftest import make_config
    from webapp import create_app

    return create_app(make_config(database_url, SANDBOX_ENABLED=False))


def test_sandbox_admin_refund_arrives_as_a_signed_charge_refunded_event(client, logged_in, admin):
    from flask import g

    from tests.conftest import login
    from webapp.models import LedgerEntry

    admin_email = admin.email  # the sandbox's deliveries close the session: objects detach
    checkout_url = start(logged_in)
    logged_in.post(f"{checkout_url}/pay")
    purchase_id = db.session.scalar(sa.select(Purchase.id))
    logged_in.post("/auth/logout")
    login(client, admin_email)
    response = client.post(f"/admin/purchases/{purchase_id}/refund", data={"amount": "2.50"})
    assert response.status_code == 303
    db.session.expire_all()
    purchase = db.session.get(Purchase, purchase_id)
    assert (purchase.status, purchase.amount_refunded_cents, purchase.credits_refunded) == (
        "partially_refunded",
        250,
        250,
    )
    refund = db.session.scalars(sa.select(LedgerEntry).where(LedgerEntry.kind == "refund")).one()
    assert (refund.credits, refund.balance_after, refund.purchase_id) == (-250, 750, purchase_id)
    event = db.session.scalar(sa.select(StripeEvent).where(StripeEvent.type == "charge.refunded"))
    assert event.outcome == "processed"
    # A second partial refund is delivered with the charge's cumulative amount.
    # The test's requests share one app context, so Flask-Login's cached user (detached
    # by the delivery) would outlive the request; in the server every request has its own.
    g.pop("_login_user", None)
    client.post(f"/admin/purchases/{purchase_id}/refund", data={"amount": "1.00"})
    db.session.expire_all()
    assert db.session.get(Purchase, purchase_id).credits_refunded == 350
    assert (
        db.session.scalar(
            sa.select(sa.func.count())
            .select_from(StripeEvent)
            .where(StripeEvent.type == "charge.refunded")
        )
        == 2
    )
