"""Defect 8: checkout, subscribe and the usage API are rate-limited per user and per key."""

import flask
import pytest

from tests.conftest import login, make_config
from webapp import create_app
from webapp.domain import api_keys, ledger, users
from webapp.extensions import ViewLimiter, limiter


@pytest.fixture
def config_overrides():
    # Each app gets a fresh in-memory store (Flask-Limiter's init_app), so tests never meet.
    return {
        "RATELIMIT_ENABLED": True,
        "CHECKOUT_RATE_LIMIT": "3 per minute",
        "USAGE_RATE_LIMIT": "5 per minute",
    }


def bearer(secret):
    return {"Authorization": f"Bearer {secret}"}


def test_the_usage_api_is_limited_per_key_with_a_json_429(client, user):
    ledger.adjust(user.id, 1000, "start")
    first, second = api_keys.mint(user.id, "a").secret, api_keys.mint(user.id, "b").secret
    statuses = [
        client.post("/api/v1/usage", json={"credits": 1}, headers=bearer(first)).status_code
        for _ in range(6)
    ]
    assert statuses == [200] * 5 + [429]
    limited = client.post("/api/v1/usage", json={"credits": 1}, headers=bearer(first))
    assert limited.status_code == 429 and limited.mimetype == "application/json"
    assert limited.get_json()["error"] == "too_many_requests"
    assert ledger.current_balance(user.id) == 995  # the refused calls debited nothing
    other = client.post("/api/v1/usage", json={"credits": 1}, headers=bearer(second))
    assert other.status_code == 200


def test_checkout_and_subscribe_are_limited_per_user(client, user, stripe_double):
    login(client, user.email)
    statuses = [
        client.post("/credits/checkout", data={"credits": "500"}).status_code for _ in range(4)
    ]
    assert statuses == [303, 303, 303, 429]
    api = client.post("/api/v1/checkout", json={"credits": 500})
    assert api.status_code == 429 and api.get_json()["error"] == "too_many_requests"
    assert len(stripe_double.requests_to("post", "/v1/checkout/sessions")) == 3
    # Someone else, from the same address, is not held back.
    users.create_user("other@example.com", "correct-horse")
    client.post("/auth/logout")
    login(client, "other@example.com")
    assert client.post("/credits/checkout", data={"credits": "500"}).status_code == 303
    subscribe = [
        client.post("/billing/subscribe", data={"plan": "nope"}).status_code for _ in range(4)
    ]
    assert subscribe == [400, 400, 400, 429]


@pytest.mark.parametrize("setting", ViewLimiter.APP_WIDE_SETTINGS)
def test_app_wide_limits_are_refused_rather_than_ignored(database_url, setting):
    # Limits apply per view; an app-wide one would never be checked, so it stops the start.
    with pytest.raises(RuntimeError, match=setting):
        create_app(make_config(database_url, RATELIMIT_ENABLED=True, **{setting: "1 per day"}))


def test_a_limit_on_a_whole_blueprint_is_refused_rather_than_ignored():
    blueprint = flask.Blueprint("limited", __name__)
    with pytest.raises(RuntimeError, match="blueprint 'limited'"):
        limiter.limit("1 per day")(blueprint)
