"""Saving a card (setup mode, or while buying) and the auto-recharge settings form."""

from datetime import timedelta

import pytest

from tests.autorecharge.test_charges import WorkerKilled, kill_after
from tests.stripe_fakes import deliver, event
from webapp.extensions import db
from webapp.models import AutoRecharge


def test_a_setup_session_saves_the_card_as_the_customers_default(recharge, stripe_double):
    recharge.save_card("4444")

    created = stripe_double.requests_to("post", "/v1/checkout/sessions")[-1]["params"]
    assert created["mode"] == "setup"
    assert created["metadata"]["purpose"] == "credits_autorecharge_card"
    assert created["setup_intent_data"]["metadata"]["purpose"] == "credits_autorecharge_card"
    assert created["success_url"].startswith("https://credits.example.test/credits")
    settings = recharge.settings()
    customer = stripe_double.objects[created["customer"]]
    assert customer["invoice_settings"]["default_payment_method"] == settings.payment_method_id
    assert (settings.card_brand, settings.card_last4) == ("mastercard", "4444")
    page = recharge.client.get("/credits").get_data(as_text=True)
    assert "Mastercard •••• 4444" in page


def test_back_on_credits_the_setup_session_is_saved_before_any_webhook(recharge, stripe_double):
    response = recharge.client.post("/credits/auto-recharge/card")
    session_id = response.location.rsplit("/", 1)[-1]
    stripe_double.complete_checkout_session(session_id, card="4242")

    page = recharge.client.get(f"/credits?card_session={session_id}")

    assert page.status_code == 200
    assert "Visa •••• 4242" in page.get_data(as_text=True)
    assert recharge.settings().card_session_id is None


def test_a_session_id_the_user_never_started_is_not_looked_up(recharge, stripe_double):
    before = len(stripe_double.requests)
    page = recharge.client.get("/credits?card_session=cs_test_someone_elses")
    assert page.status_code == 200
    assert len(stripe_double.requests) == before
    assert recharge.settings() is None


def test_a_purchase_with_save_card_saves_the_paying_card(recharge, stripe_double):
    response = recharge.client.post("/credits/checkout", data={"credits": "500", "save_card": "1"})
    assert response.status_code == 303
    created = stripe_double.requests_to("post", "/v1/checkout/sessions")[-1]["params"]
    assert created["payment_intent_data"]["setup_future_usage"] == "off_session"
    session = stripe_double.complete_checkout_session(
        created_session_id(stripe_double), card="4242"
    )

    assert deliver(recharge.client, event("checkout.session.completed", session)).status_code == 200

    assert recharge.balance() == 500
    settings = recharge.settings()
    intent = stripe_double.objects[session["payment_intent"]]
    assert settings.payment_method_id == intent["payment_method"]
    customer = stripe_double.objects[session["customer"]]
    assert customer["invoice_settings"]["default_payment_method"] == intent["payment_method"]


def created_session_id(stripe_double) -> str:
    sessions = [o for o in stripe_double.objects.values() if o["object"] == "checkout.session"]
    return sessions[-1]["id"]


def test_a_purchase_without_save_card_saves_nothing(recharge, stripe_double):
    recharge.client.post("/credits/checkout", data={"credits": "500"})
    created = stripe_double.requests_to("post", "/v1/checkout/sessions")[-1]["params"]
    assert "setup_future_usage" not in created["payment_intent_data"]
    session = stripe_double.complete_checkout_session(created_session_id(stripe_double))
    deliver(recharge.client, event("checkout.session.completed", session))
    assert recharge.balance() == 500
    assert recharge.settings() is None


def test_enabling_without_a_card_is_refused_and_changes_nothing(recharge):
    response = recharge.client.post(
        "/credits/auto-recharge",
        data={"enabled": "y", "threshold": "100", "amount": "500", "monthly_limit": ""},
    )
    assert response.status_code == 400
    assert "Save a card first" in response.get_data(as_text=True)
    settings = recharge.settings()
    assert settings is None or not settings.enabled


def test_bad_settings_get_clear_errors_and_change_nothing(recharge):
    recharge.save_card()
    cases = [
        ({"threshold": "-5"}, "Threshold must be a whole number"),
        ({"threshold": "ten"}, "Threshold must be a whole number"),
        ({"amount": "10"}, "Buy between 50 and 1,000,000 credits."),
        ({"amount": "2.5"}, "Amount must be a whole number"),
        ({"monthly_limit": "abc"}, "Monthly limit must be an amount in USD"),
        ({"monthly_limit": "1.234"}, "Monthly limit must be an amount in USD"),
        ({"monthly_limit": "4"}, "more than the monthly limit of 4.00 USD"),
    ]
    for change, message in cases:
        data = {"enabled": "y", "threshold": "100", "amount": "500", "monthly_limit": "", **change}
        response = recharge.client.post("/credits/auto-recharge", data=data)
        assert response.status_code == 400, change
        assert message in response.get_data(as_text=True), change
        settings = recharge.settings()
        assert not settings.enabled and settings.amount == 0, change


def test_settings_are_saved_and_shown_in_the_balance_api(recharge):
    recharge.save_card()
    recharge.enable(threshold=150, amount=700, limit="120.50")

    settings = recharge.settings()
    assert (settings.enabled, settings.threshold, settings.amount) == (True, 150, 700)
    assert settings.monthly_limit_cents == 12050
    body = recharge.client.get("/api/v1/balance").get_json()
    assert body["auto_recharge"] == {"enabled": True, "threshold": 150, "amount": 700}
    page = recharge.client.get("/credits").get_data(as_text=True)
    assert 'value="120.50"' in page


def test_turning_it_off_keeps_the_card(recharge):
    recharge.save_card()
    recharge.enable()
    response = recharge.client.post(
        "/credits/auto-recharge", data={"threshold": "200", "amount": "500", "monthly_limit": ""}
    )
    assert response.status_code == 303
    settings = db.session.get(AutoRecharge, recharge.user_id)
    db.session.refresh(settings)
    assert not settings.enabled and settings.card_last4 == "4242"


def turn_off(recharge) -> None:
    response = recharge.client.post(
        "/credits/auto-recharge", data={"threshold": "200", "amount": "500", "monthly_limit": ""}
    )
    assert response.status_code == 303


def test_turning_auto_recharge_off_stops_the_attempt_not_yet_charged(recharge):
    """The user turns auto-recharge off while an attempt waits for the worker: the worker
    must not charge the card afterwards (the user withdrew the off-session mandate)."""
    recharge.setup(balance=1000, threshold=200, amount=500)
    recharge.spend(850)  # 150 < 200: an attempt is recorded, the charge job queued
    assert [p.status for p in recharge.attempts()] == ["pending"]

    turn_off(recharge)
    assert recharge.settings().enabled is False
    assert [p.status for p in recharge.attempts()] == ["expired"]  # at once, on the page too

    recharge.run_worker()  # the worker gets to the queued charge job

    assert recharge.intent_requests() == [], "the card was charged after auto-recharge was off"
    assert recharge.balance() == 150
    assert recharge.attempt().status == "expired"
    # Not a card failure: no mail, no failure streak, nothing counted against the limit.
    assert not [s for s in recharge.subjects() if "auto-recharge" in s]
    settings = recharge.settings()
    assert settings.consecutive_failures == 0 and settings.last_failure_at is None
    recharge.enable(threshold=200, amount=500)
    recharge.spend(10)
    assert [p.status for p in recharge.attempts()] == ["expired", "pending"]


def test_turning_it_off_while_the_worker_looks_up_the_card_charges_nothing(recharge, stripe_double):
    """The worker saw auto-recharge on and asks Stripe for the card; the user turns it off
    before the worker records the card: the card recording loses, nothing is charged."""
    recharge.setup(balance=1000, threshold=200, amount=500)
    recharge.spend(850)

    def hook(method, path, status, answer):
        if method == "get" and path.startswith("/v1/customers/"):
            stripe_double.after_answer = None
            turn_off(recharge)

    stripe_double.after_answer = hook
    recharge.run_worker()

    assert recharge.intent_requests() == []
    attempt = recharge.attempt()
    assert attempt.status == "expired" and attempt.stripe_payment_method_id is None
    assert recharge.balance() == 150


def test_turning_it_off_after_the_charge_was_sent_still_settles_it_once(
    recharge, stripe_double, fixed_clock
):
    """The card was recorded and Stripe charged it, but the worker died before hearing
    back: turning auto-recharge off must not drop that attempt. The job's retry sends
    the same idempotency key, gets the first answer, and credits what was charged."""
    recharge.setup(balance=1000, threshold=200, amount=500)
    recharge.spend(850)
    kill_after(stripe_double, "/v1/payment_intents")
    with pytest.raises(WorkerKilled):
        recharge.run_worker()

    turn_off(recharge)
    assert recharge.attempt().status == "pending"
    fixed_clock.set(fixed_clock.now + timedelta(minutes=10))  # the dead worker's lease ends
    recharge.run_worker()

    [first, retry] = recharge.intent_requests()
    assert first["idempotency_key"] == retry["idempotency_key"]
    assert len(recharge.intents()) == 1
    assert recharge.attempt().status == "paid"
    assert recharge.balance() == 650
    assert len(recharge.purchase_credits()) == 1
    recharge.assert_ledger_consistent()


@pytest.mark.parametrize("config_overrides", [{"WTF_CSRF_ENABLED": True}])
@pytest.mark.parametrize(
    ("url", "data"),
    [
        ("/credits/auto-recharge/card", {}),
        ("/credits/auto-recharge", {"enabled": "y", "threshold": "100", "amount": "500"}),
    ],
)
def test_the_auto_recharge_forms_refuse_a_missing_csrf_token(
    client, user, stripe_double, url, data
):
    login_page = client.get("/auth/login").get_data(as_text=True)
    token = login_page.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
    client.post(
        "/auth/login", data={"email": user.email, "password": "correct-horse", "csrf_token": token}
    )
    assert client.get("/credits").status_code == 200

    response = client.post(url, data=data)

    assert response.status_code == 400
    assert stripe_double.requests == []
    assert db.session.get(AutoRecharge, user.id) is None
