"""The trigger and the charge: one attempt per crossing, one charge, one credit, every order."""

from datetime import UTC, datetime, timedelta

import pytest

from tests.stripe_fakes import deliver, event
from webapp.domain import autorecharge, ledger
from webapp.domain.ledger.recharge_outcomes import Outcome


class WorkerKilled(BaseException):
    """The worker process dying: nothing after this point of the job runs."""


def kill_after(double, path: str):
    def hook(method, request_path, status, answer):
        if method == "post" and request_path == path:
            double.after_answer = None
            raise WorkerKilled()

    double.after_answer = hook


def deliver_during(double, client, path: str, events_for):
    """Deliver webhooks after Stripe acted on `path` but before the app reads its answer."""

    def hook(method, request_path, status, answer):
        if method == "post" and request_path == path:
            double.after_answer = None
            intent = answer.get("error", {}).get("payment_intent") or answer
            for evt in events_for(intent):
                assert deliver(client, evt).status_code == 200

    double.after_answer = hook


def test_a_debit_below_the_threshold_records_one_attempt(recharge):
    recharge.setup(balance=1000, threshold=200, amount=500)
    recharge.spend(700)
    assert recharge.attempts() == []  # 300 left: not below 200
    recharge.spend(150)
    recharge.spend(50)
    recharge.spend(10)

    [attempt] = recharge.attempts()
    assert (attempt.status, attempt.credits, attempt.amount_cents) == ("pending", 500, 500)
    assert attempt.stripe_idempotency_key.startswith("autorecharge-")
    assert len(attempt.stripe_idempotency_key) > 30  # random, not derived from the id


def test_the_charge_is_off_session_with_the_contract_metadata_and_credits_once(recharge):
    recharge.setup(balance=1000, threshold=200, amount=500)
    recharge.spend(850)

    assert recharge.charge() == [Outcome.CREDITED]

    attempt = recharge.attempt()
    [request] = recharge.intent_requests()
    params = request["params"]
    assert params["off_session"] == "true" and params["confirm"] == "true"
    assert (params["amount"], params["currency"]) == ("500", "usd")
    assert params["payment_method"] == recharge.settings().payment_method_id
    assert params["metadata"] == {
        "purpose": "credits_autorecharge",
        "user_id": str(recharge.user_id),
        "purchase_id": str(attempt.id),
        "credits": "500",
    }
    assert request["idempotency_key"] == attempt.stripe_idempotency_key
    assert attempt.status == "paid" and attempt.credited_at is not None
    assert recharge.balance() == 150 + 500
    recharge.assert_ledger_consistent()
    # The webhook that follows changes nothing.
    intent = recharge.intents()[0]
    assert deliver(recharge.client, event("payment_intent.succeeded", intent)).status_code == 200
    assert recharge.balance() == 650
    assert len(recharge.purchase_credits()) == 1


def test_succeeded_webhook_before_the_api_answer_credits_once(recharge, stripe_double):
    recharge.setup(balance=1000, threshold=200, amount=500)
    recharge.spend(850)
    deliver_during(
        stripe_double,
        recharge.client,
        "/v1/payment_intents",
        lambda intent: [event("payment_intent.succeeded", intent)] * 2,
    )

    assert recharge.charge() == [Outcome.ALREADY_CREDITED]

    assert recharge.balance() == 650
    assert len(recharge.purchase_credits()) == 1
    recharge.assert_ledger_consistent()


def test_a_worker_killed_after_stripe_charged_makes_one_charge_when_rerun(recharge, stripe_double):
    recharge.setup(balance=1000, threshold=200, amount=500)
    recharge.spend(850)
    kill_after(stripe_double, "/v1/payment_intents")
    with pytest.raises(WorkerKilled):
        recharge.run_worker()
    assert recharge.attempt().status == "pending" and recharge.balance() == 150

    assert recharge.charge() == [Outcome.CREDITED]

    assert len(recharge.intents()) == 1  # the retry was answered from the idempotency key
    assert len(recharge.intent_requests()) == 2
    assert recharge.balance() == 650
    assert len(recharge.purchase_credits()) == 1


def test_a_killed_worker_whose_charge_the_webhook_settled_does_not_charge_again(
    recharge, stripe_double
):
    recharge.setup(balance=1000, threshold=200, amount=500)
    recharge.spend(850)
    kill_after(stripe_double, "/v1/payment_intents")
    with pytest.raises(WorkerKilled):
        recharge.run_worker()
    deliver(recharge.client, event("payment_intent.succeeded", recharge.intents()[0]))

    assert autorecharge.charge_attempt(recharge.attempt().id) == Outcome.UNCHANGED

    assert len(recharge.intent_requests()) == 1
    assert recharge.balance() == 650


@pytest.mark.parametrize("webhook_first", [False, True])
def test_a_decline_fails_the_attempt_once_whatever_comes_first(
    recharge, stripe_double, webhook_first
):
    recharge.setup(balance=1000, threshold=200, amount=500, last4="0002")
    recharge.spend(850)
    if webhook_first:
        deliver_during(
            stripe_double,
            recharge.client,
            "/v1/payment_intents",
            lambda intent: [event("payment_intent.payment_failed", intent)],
        )

    outcome = recharge.charge()

    assert outcome == [Outcome.UNCHANGED if webhook_first else Outcome.FAILED]
    attempt = recharge.attempt()
    assert attempt.status == "failed" and attempt.failure_reason == "Your card was declined."
    intent = recharge.intents()[0]
    deliver(recharge.client, event("payment_intent.payment_failed", intent))
    deliver(recharge.client, event("payment_intent.canceled", {**intent, "status": "canceled"}))
    settings = recharge.settings()
    assert settings.consecutive_failures == 1 and settings.enabled
    assert recharge.balance() == 150
    recharge.assert_ledger_consistent()


def test_no_new_attempt_within_an_hour_of_a_failure(recharge, fixed_clock):
    recharge.setup(balance=1000, threshold=200, amount=500, last4="0002")
    recharge.spend(850)
    recharge.run_worker()
    fixed_clock.set(fixed_clock.now + timedelta(minutes=59))
    recharge.spend(10)
    assert len(recharge.attempts()) == 1

    fixed_clock.set(fixed_clock.now + timedelta(minutes=2))
    recharge.spend(10)

    assert [p.status for p in recharge.attempts()] == ["failed", "pending"]


def test_three_failures_in_a_row_turn_auto_recharge_off_with_a_notice(recharge, fixed_clock):
    recharge.setup(balance=150, threshold=200, amount=500, last4="9995")
    for _ in range(3):
        recharge.spend(10)
        assert recharge.charge() == [Outcome.FAILED]
        fixed_clock.set(fixed_clock.now + timedelta(hours=2))
    recharge.spend(10)

    assert len(recharge.attempts()) == 3
    settings = recharge.settings()
    assert not settings.enabled and settings.consecutive_failures == 3
    page = recharge.client.get("/credits").get_data(as_text=True)
    assert "turned off after 3 failed charges in a row" in page
    assert recharge.client.get("/api/v1/balance").get_json()["auto_recharge"]["enabled"] is False


def test_a_success_resets_the_failure_count(recharge, stripe_double, fixed_clock):
    recharge.setup(balance=1000, threshold=200, amount=500, last4="0002")
    recharge.spend(850)
    recharge.run_worker()
    assert recharge.settings().consecutive_failures == 1
    customer = recharge.user_customer()
    stripe_double.change_default_card(customer, "4242")
    fixed_clock.set(fixed_clock.now + timedelta(hours=2))
    recharge.spend(10)

    assert recharge.charge() == [Outcome.CREDITED]
    assert recharge.settings().consecutive_failures == 0


def test_a_card_changed_in_the_portal_is_the_one_charged(recharge, stripe_double):
    recharge.setup(balance=1000, threshold=200, amount=500, last4="4242")
    new_card = stripe_double.change_default_card(recharge.user_customer(), "4444")
    recharge.spend(850)

    recharge.run_worker()

    assert recharge.intent_requests()[0]["params"]["payment_method"] == new_card["id"]
    assert recharge.balance() == 650


def test_a_card_removed_in_the_portal_fails_the_attempt_at_once(
    recharge, stripe_double, fixed_clock
):
    """The attempt recorded its card, then the card was removed in the portal: Stripe
    answers 400 resource_missing every time, so the attempt fails now (and says why)
    instead of being retried for 20 hours."""
    recharge.setup(balance=1000, threshold=200, amount=500)
    recharge.spend(850)
    stripe_double.unreachable.add("/v1/payment_intents")
    recharge.run_worker()  # the card is recorded; Stripe cannot be reached
    stripe_double.unreachable.clear()
    stripe_double.detach_card(recharge.attempt().stripe_payment_method_id)

    fixed_clock.set(fixed_clock.now + timedelta(minutes=1))
    recharge.run_worker()

    attempt = recharge.attempt()
    assert attempt.status == "failed" and attempt.failure_reason == "Your saved card was removed."
    assert recharge.intents() == [] and recharge.balance() == 150
    assert "auto-recharge payment failed" in " ".join(recharge.subjects())
    assert recharge.settings().consecutive_failures == 1


def test_the_monthly_limit_stops_attempts(recharge, fixed_clock):
    recharge.setup(balance=1000, threshold=200, amount=500, limit="10")
    for _ in range(3):
        recharge.spend(recharge.balance() - 100)
        recharge.run_worker()

    assert [p.status for p in recharge.attempts()] == ["paid", "paid"]
    fixed_clock.set(fixed_clock.now.replace(month=fixed_clock.now.month + 1))
    recharge.spend(10)
    assert [p.status for p in recharge.attempts()] == ["paid", "paid", "pending"]


def test_an_attempt_charged_after_the_month_turned_counts_against_that_months_limit(
    recharge, fixed_clock
):
    """The monthly limit counts an attempt in the month it is charged, not the month it
    was recorded: one recorded on 31 January and charged on 1 February is February's,
    so February allows only one more recharge under a limit of two."""
    fixed_clock.set(datetime(2030, 1, 31, 23, 59, 30, tzinfo=UTC))
    recharge.setup(balance=1000, threshold=200, amount=500, limit="10")  # 10.00 USD a month
    recharge.spend(850)  # 31 Jan 23:59:30: an attempt for 5.00 is recorded
    assert [p.status for p in recharge.attempts()] == ["pending"]

    fixed_clock.set(datetime(2030, 2, 1, 0, 0, 30, tzinfo=UTC))  # the worker gets to it in Feb
    recharge.run_worker()
    for _ in range(2):  # 650 -> 100: one more recharge (600); 600 -> 100: limit reached
        fixed_clock.set(fixed_clock.now + timedelta(minutes=5))
        recharge.spend(recharge.balance() - 100)
        recharge.run_worker()

    charged_in_february = sum(int(r["params"]["amount"]) for r in recharge.intent_requests())
    assert [p.status for p in recharge.attempts()] == ["paid", "paid"]
    assert charged_in_february == 1000


def test_expiry_below_the_threshold_starts_an_attempt(recharge, fixed_clock):
    recharge.setup(balance=100, threshold=700, amount=500)
    recharge.spend(1)  # 99: below, one attempt, paid: 599
    recharge.run_worker()
    ledger.grant_plan_credits(
        recharge.user_id,
        1000,
        invoice_id="in_1",
        plan_code="basic",
        subscription_id=None,
        expires_at=fixed_clock.now + timedelta(days=1),
    )
    fixed_clock.set(fixed_clock.now + timedelta(days=2))

    assert ledger.expire_account_grants(recharge.user_id) == 1000

    assert [p.status for p in recharge.attempts()] == ["paid", "pending"]
    recharge.assert_ledger_consistent()


def test_a_refund_of_an_auto_recharge_takes_its_credits_back(recharge, stripe_double, admin):
    recharge.setup(balance=1000, threshold=200, amount=500)
    recharge.spend(850)
    recharge.run_worker()
    intent = recharge.intents()[0]
    charge = stripe_double.objects[intent["latest_charge"]]
    refunded = {**charge, "amount_refunded": 250, "refunded": False}

    assert deliver(recharge.client, event("charge.refunded", refunded)).status_code == 200

    assert recharge.balance() == 650 - 250
    assert recharge.attempt().status == "partially_refunded"
    recharge.assert_ledger_consistent()
