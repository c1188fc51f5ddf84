"""The development sandbox runs a subscription's whole life through signed events."""

import re

import pytest
import sqlalchemy as sa

from webapp.extensions import db
from webapp.models import CreditAccount, LedgerEntry, Subscription


@pytest.fixture
def config_overrides():
    return {
        "SANDBOX_ENABLED": True,
        "STRIPE_SECRET_KEY": "",
        "STRIPE_HTTP_CLIENT": None,
        "PUBLIC_BASE_URL": "",
    }


def state(user_id):
    db.session.expire_all()
    record = db.session.scalars(sa.select(Subscription)).one()
    balance = db.session.get(CreditAccount, user_id).balance
    total = db.session.scalar(sa.select(sa.func.sum(LedgerEntry.credits)))
    assert balance == total
    return record, balance


def test_sandbox_subscribes_renews_fails_a_renewal_and_cancels(logged_in, user):
    response = logged_in.post("/billing/subscribe", data={"plan": "basic"})
    checkout_url = response.headers["Location"]
    assert response.status_code == 303 and checkout_url.startswith("/sandbox/checkout/cs_")
    assert "basic (monthly)" in logged_in.get(checkout_url).get_data(as_text=True)
    paid = logged_in.post(f"{checkout_url}/pay", follow_redirects=True)
    assert "Subscription started" in paid.get_data(as_text=True)
    record, balance = state(user.id)
    assert (record.status, balance) == ("active", 1000)

    portal_url = logged_in.post("/billing/portal").headers["Location"]
    assert portal_url.startswith("/sandbox/portal/bps_")
    portal = logged_in.get(portal_url).get_data(as_text=True)
    assert record.stripe_subscription_id in portal

    def act(action):
        url = f"/sandbox/subscriptions/{record.stripe_subscription_id}/{action}"
        assert logged_in.post(url).status_code == 302

    act("renew")
    record, balance = state(user.id)
    assert (record.status, balance) == ("active", 2000)
    act("fail-renewal")
    record, balance = state(user.id)
    assert (record.status, balance) == ("past_due", 2000)
    act("cancel")
    page = logged_in.get("/credits").get_data(as_text=True)
    assert re.search(r"cancels on \d\d \w\w\w \d{4}", page)
    act("cancel-now")
    record, balance = state(user.id)
    assert (record.status, balance) == ("canceled", 2000)
    assert "ended" in logged_in.get("/credits").get_data(as_text=True)


def test_sandbox_subscription_actions_are_only_for_the_owner(client, logged_in):
    assert logged_in.post("/sandbox/subscriptions/sub_nobody/renew").status_code == 404
