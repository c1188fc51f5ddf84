"""The worker's side: the charge job recorded with the debit, retried after a crash; the mails."""

from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask import current_app

from tests.autorecharge.test_charges import WorkerKilled, kill_after
from tests.stripe_fakes import deliver, event
from webapp.extensions import db
from webapp.models import Job


def charge_jobs() -> list[Job]:
    db.session.expire_all()
    return list(db.session.scalars(sa.select(Job).where(Job.kind == "auto_recharge_charge")))


def test_the_debit_records_the_charge_job_and_the_worker_charges(recharge):
    recharge.setup(balance=1000, threshold=200, amount=500)
    recharge.spend(850)
    [job] = charge_jobs()
    assert job.payload == {"purchase_id": recharge.attempt().id}
    assert job.dedupe_key == f"auto_recharge_charge:{recharge.attempt().stripe_idempotency_key}"

    recharge.run_worker()

    assert charge_jobs()[0].status == "done"
    assert recharge.balance() == 650
    assert len(recharge.intents()) == 1


def test_a_worker_killed_mid_charge_is_replaced_after_its_lease_and_charges_once(
    recharge, stripe_double, fixed_clock
):
    recharge.setup(balance=1000, threshold=200, amount=500)
    recharge.spend(850)
    kill_after(stripe_double, "/v1/payment_intents")
    with pytest.raises(WorkerKilled):
        recharge.run_worker()
    assert recharge.run_worker() == 0  # the dead worker's lease still holds the job

    fixed_clock.set(fixed_clock.now + timedelta(minutes=10))
    recharge.run_worker()

    assert len(recharge.intents()) == 1
    assert len(recharge.intent_requests()) == 2  # the same request, answered from its key
    assert recharge.balance() == 650
    assert len(recharge.purchase_credits()) == 1
    recharge.assert_ledger_consistent()


def test_success_mails_a_receipt_once(recharge):
    recharge.setup(balance=1000, threshold=200, amount=500)
    recharge.spend(850)
    recharge.run_worker()
    deliver(recharge.client, event("payment_intent.succeeded", recharge.intents()[0]))
    recharge.run_worker()

    [mail] = [m for m in recharge.mails() if "auto-recharge" in m.subject]
    assert mail.subject.endswith("auto-recharge added 500 credits (receipt)")
    assert "auto-recharge bought more credits" in mail.body
    assert mail.to == ["buyer@example.com"]
    assert "5.00 USD" in mail.body and f"purchase {recharge.attempt().id}" in mail.body


def test_a_decline_mails_the_user_once(recharge):
    recharge.setup(balance=1000, threshold=200, amount=500, last4="0002")
    recharge.spend(850)
    recharge.run_worker()
    deliver(recharge.client, event("payment_intent.payment_failed", recharge.intents()[0]))
    recharge.run_worker()

    [mail] = [m for m in recharge.mails() if "auto-recharge" in m.subject]
    assert mail.subject.endswith("auto-recharge payment failed")
    assert "Your card was declined." in mail.body


def test_needs_action_mails_the_confirm_link_and_the_worker_cancels_the_intent(recharge):
    recharge.setup(balance=1000, threshold=200, amount=500, last4="3184")
    recharge.spend(850)

    recharge.run_worker()

    attempt = recharge.attempt()
    assert attempt.status == "needs_action"
    assert recharge.intents()[0]["status"] == "canceled"
    [mail] = [m for m in recharge.mails() if "auto-recharge" in m.subject]
    assert mail.subject.endswith("please confirm your auto-recharge")
    assert f"/credits/auto-recharge/confirm/{attempt.id}" in mail.body
    assert "sk_" not in mail.body and "whsec" not in mail.body


def test_an_attempt_left_uncharged_for_20_hours_is_given_up_not_sent(recharge, fixed_clock):
    recharge.setup(balance=1000, threshold=200, amount=500)
    recharge.spend(850)
    fixed_clock.set(fixed_clock.now + timedelta(hours=21))

    recharge.run_worker()

    assert recharge.attempt().status == "failed"
    assert recharge.intent_requests() == []
    assert recharge.balance() == 150


def test_the_charge_job_keeps_retrying_past_the_job_attempt_limit_until_stripe_answers(
    recharge, stripe_double, fixed_clock
):
    """Stripe unreachable for 4 hours: the charge job outlives JOB_MAX_ATTEMPTS (it ends
    its own work) and charges once Stripe answers again, well inside CHARGE_WINDOW."""
    recharge.setup(balance=1000, threshold=200, amount=500)
    recharge.spend(850)
    stripe_double.unreachable.add("/v1/payment_intents")
    for _ in range(12):  # retries back off 30 s, 60 s, ... 1 hour
        recharge.run_worker()
        fixed_clock.set(fixed_clock.now + timedelta(minutes=20))
    [job] = charge_jobs()
    assert job.status == "pending" and job.attempts > current_app.config["JOB_MAX_ATTEMPTS"]
    assert recharge.attempt().status == "pending"

    stripe_double.unreachable.clear()
    fixed_clock.set(fixed_clock.now + timedelta(hours=1))
    recharge.run_worker()

    assert charge_jobs()[0].status == "done"
    assert recharge.attempt().status == "paid" and recharge.balance() == 650
    assert len(recharge.intents()) == 1
    recharge.assert_ledger_consistent()


def test_an_attempt_whose_charge_job_gave_up_does_not_block_auto_recharge_for_good(
    recharge, stripe_double, fixed_clock
):
    """Stripe unreachable for a day: the charge job retries (hourly at most) until
    charge_attempt gives the attempt up at CHARGE_WINDOW, which ends the job; the
    account is not left with a `pending` attempt blocking every later one."""
    recharge.setup(balance=1000, threshold=200, amount=500)
    recharge.spend(850)
    stripe_double.unreachable.add("/v1/payment_intents")
    for _ in range(24):
        recharge.run_worker()
        fixed_clock.set(fixed_clock.now + timedelta(hours=1))
    stripe_double.unreachable.clear()

    assert recharge.attempt().status == "failed"
    assert recharge.attempt().failure_reason == "It could not be charged in time."
    assert charge_jobs()[0].status == "done"

    fixed_clock.set(fixed_clock.now + timedelta(hours=2))  # past the hour after a failure
    recharge.spend(50)
    recharge.run_worker()

    assert [p.status for p in recharge.attempts()] == ["failed", "paid"]
    assert recharge.balance() == 100 + 500
    assert len(recharge.intents()) == 1
