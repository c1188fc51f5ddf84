import pytest
import sqlalchemy as sa

from webapp.extensions import db
from webapp.models import Purchase, User


def session_requests(stripe_double):
    return stripe_double.requests_to("post", "/v1/checkout/sessions")


def test_checkout_records_the_purchase_and_redirects_to_stripe(logged_in, stripe_double, user):
    response = logged_in.post("/credits/checkout", data={"credits": "1000"})
    assert response.status_code == 303
    purchase = db.session.scalar(sa.select(Purchase))
    assert response.headers["Location"] == purchase.checkout_url
    assert response.headers["Location"].startswith("https://checkout.stripe.com/")
    assert (purchase.credits, purchase.amount_cents, purchase.fee_cents) == (1000, 1000, 0)
    assert purchase.status == "pending" and purchase.user_id == user.id
    assert purchase.stripe_checkout_session_id.startswith("cs_test_")


def test_checkout_session_request_as_it_leaves_the_stripe_library(logged_in, stripe_double, user):
    logged_in.post("/credits/checkout", data={"credits": "2500"})
    purchase = db.session.scalar(sa.select(Purchase))
    [request] = session_requests(stripe_double)
    params = request["params"]
    assert params["mode"] == "payment"
    assert params["line_items"] == [
        {
            "quantity": "1",
            "price_data": {
                "currency": "usd",
                "unit_amount": "2500",
                "product_data": {"name": "2,500 credits"},
            },
        }
    ]
    assert params["success_url"] == (
        "https://credits.example.test/credits/success?session_id={CHECKOUT_SESSION_ID}"
    )
    assert params["cancel_url"] == (
        f"https://credits.example.test/credits/cancel?purchase={purchase.id}"
    )
    assert params["client_reference_id"] == str(user.id)
    assert params["metadata"] == {
        "purpose": "credits_topup",
        "user_id": str(user.id),
        "purchase_id": str(purchase.id),
        "credits": "2500",
    }
    assert params["payment_intent_data"]["metadata"] == params["metadata"]
    assert params["customer"].startswith("cus_")
    assert request["idempotency_key"] == purchase.stripe_idempotency_key
    assert request["headers"]["Authorization"] == "Bearer sk_test_123"


@pytest.mark.parametrize("config_overrides", [{"CUSTOMER_PAYS_FEES": True}])
def test_customer_pays_fees_adds_a_processing_fee_line(logged_in, stripe_double):
    logged_in.post("/credits/checkout", data={"credits": "250"})
    items = session_requests(stripe_double)[0]["params"]["line_items"]
    assert [i["price_data"]["unit_amount"] for i in items] == ["250", "39"]
    assert items[1]["price_data"]["product_data"]["name"] == "Processing fee"
    purchase = db.session.scalar(sa.select(Purchase))
    assert (purchase.value_cents, purchase.fee_cents, purchase.amount_cents) == (250, 39, 289)


def test_the_stripe_customer_is_created_once_and_reused(logged_in, stripe_double, user):
    logged_in.post("/credits/checkout", data={"credits": "500"})
    logged_in.post("/credits/checkout", data={"credits": "600"})
    assert len(stripe_double.requests_to("post", "/v1/customers")) == 1
    customers = [r["params"]["customer"] for r in session_requests(stripe_double)]
    assert customers[0] == customers[1] == db.session.get(User, user.id).stripe_customer_id


@pytest.mark.parametrize("credits", ["49", "1000001", "abc", "1.5", "", "-100", "1e3"])
def test_bad_amounts_show_the_page_again_and_call_nobody(logged_in, stripe_double, credits):
    response = logged_in.post("/credits/checkout", data={"credits": credits})
    assert response.status_code == 400
    assert b'class="error"' in response.data
    assert stripe_double.requests == []
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Purchase)) == 0


@pytest.mark.parametrize("config_overrides", [{"MIN_PURCHASE_CREDITS": 1}])
def test_stripe_minimum_charge_is_enforced_before_any_call(logged_in, stripe_double):
    response = logged_in.post("/credits/checkout", data={"credits": "49"})
    assert response.status_code == 400
    assert b"smallest payment is 0.50 USD" in response.data
    assert stripe_double.requests == []


@pytest.mark.parametrize("config_overrides", [{"CREDIT_UNIT_AMOUNT": 100}])
def test_stripe_maximum_charge_is_enforced_before_any_call(logged_in, stripe_double):
    response = logged_in.post("/credits/checkout", data={"credits": "1000000"})
    assert response.status_code == 400
    assert stripe_double.requests == []


def test_a_stripe_error_shows_a_message_and_credits_nothing(logged_in, stripe_double, user):
    stripe_double.fail_next("/v1/checkout/sessions", status=500)
    stripe_double.fail_next("/v1/checkout/sessions", status=500)
    stripe_double.fail_next("/v1/checkout/sessions", status=500)
    response = logged_in.post("/credits/checkout", data={"credits": "1000"})
    assert response.status_code == 502
    assert b"Payments are unavailable right now" in response.data
    purchase = db.session.scalar(sa.select(Purchase))
    assert purchase.status == "failed" and purchase.stripe_checkout_session_id is None
    assert logged_in.get("/api/v1/balance").get_json()["balance"] == 0


def test_a_card_error_from_stripe_is_not_retried_and_shown(logged_in, stripe_double):
    stripe_double.fail_next("/v1/customers", status=400, error_type="invalid_request_error")
    response = logged_in.post("/credits/checkout", data={"credits": "1000"})
    assert response.status_code == 502
    assert len(stripe_double.requests_to("post", "/v1/customers")) == 1
    assert session_requests(stripe_double) == []


def test_checkout_requires_login(client, stripe_double):
    response = client.post("/credits/checkout", data={"credits": "1000"})
    assert response.status_code == 302 and "/auth/login" in response.headers["Location"]
    assert stripe_double.requests == []
