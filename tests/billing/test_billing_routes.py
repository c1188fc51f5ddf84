"""Subscribing, the customer portal, the success page for subscriptions, the admin list."""

import pytest
import sqlalchemy as sa

from tests.conftest import login
from tests.stripe_fakes import deliver, event
from tests.subscription_fakes import FEB_1, invoice, new_id, subscription_session
from webapp.domain import users
from webapp.extensions import db
from webapp.models import Subscription


def test_subscribe_opens_a_subscription_checkout_with_metadata_in_both_places(
    logged_in, user, stripe_double
):
    response = logged_in.post("/billing/subscribe", data={"plan": "basic"})
    assert response.status_code == 303
    assert response.headers["Location"].startswith("https://checkout.stripe.com/")
    (request,) = stripe_double.requests_to("post", "/v1/checkout/sessions")
    params = request["params"]
    expected = {"purpose": "credits_subscription", "plan": "basic", "user_id": str(user.id)}
    assert params["mode"] == "subscription"
    assert params["metadata"] == expected == params["subscription_data"]["metadata"]
    (line,) = params["line_items"]
    assert line["price_data"]["recurring"] == {"interval": "month"}
    assert line["price_data"]["unit_amount"] == "900"
    assert params["success_url"] == (
        "https://credits.example.test/credits/success?session_id={CHECKOUT_SESSION_ID}"
    )
    assert params["customer"].startswith("cus_")


def test_subscribing_to_an_unknown_plan_is_refused_without_calling_stripe(logged_in, stripe_double):
    response = logged_in.post("/billing/subscribe", data={"plan": "platinum"})
    assert response.status_code == 400
    assert "platinum" in response.get_data(as_text=True)
    assert stripe_double.requests == []


class TestConfiguredPrice:
    @pytest.fixture
    def config_overrides(self):
        return {"PLANS": "basic:1000:900:expire:price_1PgafmB7WZ01zgkW6dKueIc5"}

    def test_a_plan_with_a_price_id_subscribes_to_that_price(self, logged_in, stripe_double):
        logged_in.post("/billing/subscribe", data={"plan": "basic"})
        (request,) = stripe_double.requests_to("post", "/v1/checkout/sessions")
        assert request["params"]["line_items"] == [
            {"price": "price_1PgafmB7WZ01zgkW6dKueIc5", "quantity": "1"}
        ]


def test_portal_redirects_to_a_portal_session_returning_to_credits(logged_in, user, stripe_double):
    user.stripe_customer_id = "cus_QXg1o8vcGmoR32"
    db.session.commit()
    response = logged_in.post("/billing/portal")
    assert response.status_code == 303
    assert response.headers["Location"].startswith("https://billing.stripe.com/")
    (request,) = stripe_double.requests_to("post", "/v1/billing_portal/sessions")
    assert request["params"] == {
        "customer": "cus_QXg1o8vcGmoR32",
        "return_url": "https://credits.example.test/credits",
    }


def test_portal_without_a_stripe_customer_explains_and_goes_back(logged_in, stripe_double):
    response = logged_in.post("/billing/portal", follow_redirects=True)
    assert response.request.path == "/credits"
    assert "no billing account yet" in response.get_data(as_text=True)
    assert stripe_double.requests == []


def test_billing_needs_login(client):
    response = client.post("/billing/subscribe", data={"plan": "basic"})
    assert response.status_code == 302 and "/auth/login" in response.headers["Location"]


class TestCsrf:
    @pytest.fixture
    def config_overrides(self):
        return {"WTF_CSRF_ENABLED": True}

    @pytest.mark.parametrize("path", ["/billing/subscribe", "/billing/portal"])
    def test_billing_forms_refuse_a_missing_csrf_token(self, client, user, path, stripe_double):
        with client.session_transaction() as session:
            session["_user_id"] = str(user.id)
            session["_fresh"] = True
        assert client.post(path, data={"plan": "basic"}).status_code == 400
        assert stripe_double.requests == []


def test_success_page_for_a_subscription_session_says_it_started(logged_in, user, stripe_double):
    logged_in.post("/billing/subscribe", data={"plan": "basic"})
    session = next(o for o in stripe_double.objects.values() if o["object"] == "checkout.session")
    stripe_double.complete_checkout_session(session["id"])
    response = logged_in.get(f"/credits/success?session_id={session['id']}")
    assert response.status_code == 200
    assert "Subscription started" in response.get_data(as_text=True)
    record = db.session.scalars(sa.select(Subscription)).one()
    assert record.user_id == user.id and record.plan_code == "basic"


def test_success_page_for_someone_elses_or_an_unknown_subscription_session_is_404(
    client, user, stripe_double
):
    login(client, user.email)
    client.post("/billing/subscribe", data={"plan": "basic"})
    session = next(o for o in stripe_double.objects.values() if o["object"] == "checkout.session")
    client.post("/auth/logout")
    users.create_user("other@example.com", "correct-horse")
    login(client, "other@example.com")
    assert client.get(f"/credits/success?session_id={session['id']}").status_code == 404
    assert client.get("/credits/success?session_id=cs_test_nope").status_code == 404


def test_credits_page_shows_plans_then_the_current_plan_and_renewal(logged_in, user, client):
    page = logged_in.get("/credits").get_data(as_text=True)
    assert 'data-plan="basic"' in page and 'data-plan="pro"' in page
    sub_id = new_id("sub")
    deliver(client, event("checkout.session.completed", subscription_session(sub_id, user.id)))
    deliver(client, event("invoice.paid", invoice(sub_id, user.id)))
    page = logged_in.get("/credits").get_data(as_text=True)
    assert 'id="current-plan"' in page and "active" in page
    assert f"Renews on {FEB_1:%d %b %Y}" in page


def test_admin_subscriptions_lists_plan_status_period_and_grants(client, admin, user):
    sub_id = new_id("sub")
    deliver(client, event("invoice.paid", invoice(sub_id, user.id, invoice_id="in_admin_view")))
    login(client, admin.email)
    page = client.get("/admin/subscriptions").get_data(as_text=True)
    assert sub_id in page and "Basic" in page and "in_admin_view" in page
    assert "2030-01-01 – 2030-02-01" in page


def test_admin_subscriptions_is_for_admins_only(client, user):
    assert client.get("/admin/subscriptions").status_code == 302
    login(client, user.email)
    assert client.get("/admin/subscriptions").status_code == 403
