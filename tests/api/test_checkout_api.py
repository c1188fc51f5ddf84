import pytest
import sqlalchemy as sa

from webapp.domain import api_keys
from webapp.extensions import db
from webapp.models import Purchase


@pytest.fixture
def key(user):
    return api_keys.mint(user.id).secret


def post_checkout(client, key, body, **headers):
    return client.post(
        "/api/v1/checkout", json=body, headers={"Authorization": f"Bearer {key}", **headers}
    )


def test_api_checkout_opens_a_session_with_the_apps_own_urls(client, user, key, stripe_double):
    response = post_checkout(
        client,
        key,
        {"credits": 750},
        Origin="https://evil.example",
        Referer="https://evil.example/x",
    )
    assert response.status_code == 201
    body = response.get_json()
    assert body["id"].startswith("cs_") and body["url"].startswith("https://")
    purchase = db.session.scalar(sa.select(Purchase))
    assert purchase.user_id == user.id and purchase.credits == 750
    assert purchase.stripe_checkout_session_id == body["id"] and purchase.status == "pending"
    sent = stripe_double.requests_to("post", "/v1/checkout/sessions")[-1]["params"]
    assert sent["success_url"].startswith("https://credits.example.test/credits/success")
    assert sent["cancel_url"] == (
        f"https://credits.example.test/credits/cancel?purchase={purchase.id}"
    )
    assert sent["metadata"]["credits"] == "750"
    assert int(sent["line_items"][0]["price_data"]["unit_amount"]) == 750


def test_api_checkout_rejects_bad_credits_without_calling_stripe(client, key, stripe_double):
    for body in (
        {"credits": 10},
        {"credits": 2_000_000},
        {"credits": "500"},
        {"credits": 500.0},
        {"credits": True},
        {},
        ["x"],
    ):
        response = post_checkout(client, key, body)
        assert response.status_code == 400, body
        expected = "invalid_body" if isinstance(body, list) else "invalid_credits"
        assert response.get_json()["error"] == expected
    assert stripe_double.requests_to("post", "/v1/checkout/sessions") == []
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Purchase)) == 0


def test_api_checkout_reports_a_stripe_failure_as_502_json(client, key, stripe_double):
    stripe_double.fail_next("/v1/checkout/sessions", 400, "invalid_request_error")
    response = post_checkout(client, key, {"credits": 500})
    assert response.status_code == 502
    assert response.get_json()["error"] == "payment_provider_error"
    assert db.session.scalar(sa.select(Purchase.status)) == "failed"


def test_api_checkout_needs_auth(client):
    response = client.post("/api/v1/checkout", json={"credits": 500})
    assert response.status_code == 401 and response.is_json


def test_api_checkout_works_for_a_logged_in_session(logged_in):
    response = logged_in.post("/api/v1/checkout", json={"credits": 500})
    assert response.status_code == 201


def test_balance_needs_auth(client):
    response = client.get("/api/v1/balance")
    assert response.status_code == 401 and response.is_json


def test_balance_answers_a_logged_in_session(logged_in):
    assert logged_in.get("/api/v1/balance").get_json() == {
        "balance": 0,
        "purchased": 0,
        "used": 0,
        "held": 0,
        "available": 0,
        "expiring": [],
        "auto_recharge": {"enabled": False, "threshold": 0, "amount": 0},
    }
