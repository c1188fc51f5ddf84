import re
import threading

import pytest
import sqlalchemy as sa

from tests.conftest import login
from tests.stripe_fakes import deliver, event
from webapp.domain import users
from webapp.extensions import db
from webapp.models import LedgerEntry, Purchase


@pytest.fixture
def started(logged_in, stripe_double):
    """A purchase of 1,000 credits whose Checkout Session is open at Stripe."""
    logged_in.post("/credits/checkout", data={"credits": "1000"})
    return db.session.scalar(sa.select(Purchase))


def success_page(client, purchase):
    return client.get(f"/credits/success?session_id={purchase.stripe_checkout_session_id}")


def test_success_page_fulfils_a_paid_session_when_the_webhook_is_late(
    logged_in, started, stripe_double
):
    stripe_double.complete_checkout_session(started.stripe_checkout_session_id)
    response = success_page(logged_in, started)
    assert response.status_code == 200
    assert b"1,000 credits added" in response.data
    assert logged_in.get("/api/v1/balance").get_json() == {
        "balance": 1000,
        "purchased": 1000,
        "used": 0,
        "held": 0,
        "available": 1000,
        "expiring": [],
        "auto_recharge": {"enabled": False, "threshold": 0, "amount": 0},
    }


def test_success_page_then_webhook_credits_once(client, logged_in, started, stripe_double):
    session = stripe_double.complete_checkout_session(started.stripe_checkout_session_id)
    success_page(logged_in, started)
    assert deliver(client, event("checkout.session.completed", session)).status_code == 200
    assert logged_in.get("/api/v1/balance").get_json()["balance"] == 1000


def test_success_page_says_processing_for_a_delayed_payment(logged_in, started, stripe_double):
    stripe_double.complete_checkout_session(started.stripe_checkout_session_id, paid=False)
    response = success_page(logged_in, started)
    assert b"Payment processing" in response.data
    assert db.session.get(Purchase, started.id).status == "processing"
    assert logged_in.get("/api/v1/balance").get_json()["balance"] == 0


def test_success_page_before_payment_says_waiting(logged_in, started):
    response = success_page(logged_in, started)
    assert response.status_code == 200
    assert b"Waiting for your payment" in response.data


def test_success_page_when_stripe_is_down_credits_nothing_and_explains(
    logged_in, started, stripe_double
):
    for _ in range(3):
        stripe_double.fail_next("/v1/checkout/sessions/", status=503)
    response = success_page(logged_in, started)
    assert response.status_code == 200
    assert b"could not check this payment" in response.data


def test_success_page_for_someone_elses_session_is_404(client, started, stripe_double):
    client.post("/auth/logout")
    users.create_user("other@example.com", "correct-horse")
    login(client, "other@example.com")
    stripe_double.complete_checkout_session(started.stripe_checkout_session_id)
    assert success_page(client, started).status_code == 404
    assert db.session.get(Purchase, started.id).credited_at is None


def test_success_page_for_an_unknown_session_is_404(logged_in):
    assert logged_in.get("/credits/success?session_id=cs_test_nope").status_code == 404
    assert logged_in.get("/credits/success").status_code == 404


def test_webhook_and_success_page_racing_credit_once(app, started, stripe_double, user):
    session = stripe_double.complete_checkout_session(started.stripe_checkout_session_id)
    evt = event("checkout.session.completed", session)
    barrier = threading.Barrier(6, timeout=30)
    statuses = []
    email = user.email

    def webhook():
        c = app.test_client()
        barrier.wait()
        statuses.append(deliver(c, evt).status_code)

    def success():
        c = app.test_client()
        login(c, email)
        barrier.wait()
        statuses.append(success_page(c, started).status_code)

    threads = [threading.Thread(target=f) for f in (webhook, success) * 3]
    db.session.close()  # SQLite: the test's own open transaction would hold the write lock
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 6
    entries = db.session.scalars(sa.select(LedgerEntry)).all()
    assert [(e.kind, e.credits, e.balance_after) for e in entries] == [("purchase", 1000, 1000)]


def test_credits_page_shows_meter_packs_and_recent_activity(logged_in, started, stripe_double):
    stripe_double.complete_checkout_session(started.stripe_checkout_session_id)
    success_page(logged_in, started)
    page = logged_in.get("/credits").data.decode()
    assert 'id="balance">1,000' in page
    for pack in ("500", "1,000", "2,500", "10,000"):
        assert f"<strong>{pack}</strong>" in page
    assert "10.00 USD" in page
    assert "Bought 1,000 credits" in page


def test_history_is_paginated_newest_first(app, logged_in, user):
    from webapp.domain import ledger

    for n in range(1, 31):
        ledger.adjust(user.id, n, f"gift {n}")

    def gifts(page: str) -> list[int]:
        return [int(n) for n in re.findall(r"gift (\d+)", page)]

    first = logged_in.get("/credits/history").data.decode()
    assert gifts(first) == list(range(30, 5, -1))
    sixth = db.session.scalars(sa.select(LedgerEntry.id).order_by(LedgerEntry.id)).all()[5]
    assert f"before={sixth}" in first
    second = logged_in.get(f"/credits/history?before={sixth}").data.decode()
    assert gifts(second) == [5, 4, 3, 2, 1]
    assert "Older" not in second


def test_history_payments_tab_lists_purchases_with_status(logged_in, started):
    page = logged_in.get("/credits/history?tab=payments").data.decode()
    assert "Waiting for payment" in page and "10.00 USD" in page


def test_cancel_page(logged_in):
    assert b"Payment cancelled" in logged_in.get("/credits/cancel").data


@pytest.mark.parametrize(
    "url", ["/credits", "/credits/history", "/credits/cancel", "/credits/success?session_id=cs_x"]
)
def test_credit_pages_require_login(client, url):
    response = client.get(url)
    assert response.status_code == 302 and "/auth/login?next=" in response.headers["Location"]


def test_balance_api_requires_authentication_with_json(client):
    response = client.get("/api/v1/balance")
    assert response.status_code == 401
    assert response.get_json()["error"] == "authentication_required"


def test_unknown_api_route_answers_json(client):
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404 and response.get_json()["error"] == "not_found"
