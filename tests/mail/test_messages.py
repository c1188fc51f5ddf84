"""Receipts and notices: one mail per cause however often Stripe delivers, retried, visible."""

from datetime import timedelta

import pytest
import sqlalchemy as sa

from tests.conftest import login
from tests.mail.conftest import body, run_jobs
from tests.payments import Payment, balance_of, ledger_sum
from tests.stripe_fakes import deliver, event
from tests.subscription_fakes import FEB_1, MAR_1, invoice, new_id, subscription_session
from webapp.domain import clock, jobs, ledger, mailer, users
from webapp.domain.transaction import atomic
from webapp.extensions import db
from webapp.models import AdminAction, Job, JobStatus


def mail_jobs(message: str | None = None) -> list[Job]:
    db.session.expire_all()
    jobs = db.session.scalars(sa.select(Job).order_by(Job.id)).all()
    return [j for j in jobs if message is None or j.payload.get("message") == message]


def run_jobs_later(minutes: int) -> None:
    """Run what is due once the clock has moved on (retries wait with back-off)."""
    clock.fix(clock.now() + timedelta(minutes=minutes))
    try:
        run_jobs()
    finally:
        clock.fix(None)


@pytest.fixture
def paid(app, user, stripe_double, client):
    payment = Payment(stripe_double, user, 1000)
    for _ in range(3):
        assert deliver(client, payment.completed()).status_code == 200
    return payment


def test_a_webhook_delivered_three_times_sends_one_receipt(paid, user, smtp_server, stripe_double):
    assert len(mail_jobs("receipt")) == 1
    run_jobs()
    run_jobs()
    [receipt] = smtp_server.to(user.email)
    assert receipt["Subject"] == "Credits Store: receipt for 1,000 credits"
    text = body(receipt)
    assert "Credits:   1,000" in text and "Paid:      10.00 USD" in text
    receipt_url = stripe_double.objects[paid.charge["id"]].get("receipt_url")
    assert receipt_url and f"Stripe's receipt: {receipt_url}" in text
    assert receipt["Message-ID"] == mailer.message_id(f"mail:receipt:purchase:{paid.purchase_id}")


def test_the_success_page_and_the_webhook_together_send_one_receipt(
    app, logged_in, user, stripe_double, smtp_server
):
    payment = Payment(stripe_double, user, 500)
    session_id = payment.session["id"]
    assert logged_in.get(f"/credits/success?session_id={session_id}").status_code == 200
    deliver(logged_in, payment.completed())
    run_jobs()
    assert smtp_server.subjects() == ["Credits Store: receipt for 500 credits"]


def test_a_send_refused_before_acceptance_is_retried_and_arrives_once(paid, user, smtp_server):
    smtp_server.refuse_next = 1
    run_jobs()
    [job] = mail_jobs("receipt")
    assert job.status == JobStatus.PENDING and job.attempts == 1
    assert "451" in job.last_error and smtp_server.messages == []
    run_jobs()  # not due yet: back-off
    assert smtp_server.messages == []
    run_jobs_later(5)
    run_jobs_later(60)
    assert len(smtp_server.to(user.email)) == 1
    [job] = mail_jobs("receipt")
    assert job.status == JobStatus.DONE and job.attempts == 2


@pytest.fixture
def config_overrides(config_overrides):
    return {**config_overrides, "JOB_MAX_ATTEMPTS": 3}


def test_a_failing_smtp_server_leaves_the_job_failed_and_visible_and_money_unaffected(
    app, user, stripe_double, client, smtp_server, admin
):
    smtp_server.refuse_all = True
    payment = Payment(stripe_double, user, 1000)
    assert deliver(client, payment.completed()).status_code == 200
    assert balance_of(user.id) == 1000 == ledger_sum(user.id)
    for minutes in (0, 5, 60, 300):
        run_jobs_later(minutes)
    [job] = mail_jobs("receipt")
    assert job.status == JobStatus.FAILED and job.attempts == 3 and "554" in job.last_error
    assert balance_of(user.id) == 1000 and payment.purchase().status == "paid"

    login(client, admin.email)
    dashboard = client.get("/admin/").get_data(as_text=True)
    assert 'id="failed-jobs"><a href="/admin/jobs?status=failed">1</a>' in dashboard
    page = client.get("/admin/jobs?status=failed").get_data(as_text=True)
    assert f'id="job-{job.id}"' in page and "Mail system broken for the test" in page
    assert client.post(f"/admin/jobs/{job.id}/retry").status_code == 303
    [job] = mail_jobs("receipt")
    assert job.status == JobStatus.PENDING and job.attempts == 0
    [action] = db.session.scalars(sa.select(AdminAction).where(AdminAction.action == "retry_job"))
    assert action.admin_id == admin.id and action.target_id == job.id

    smtp_server.refuse_all = False
    run_jobs()
    assert len(smtp_server.to(user.email)) == 1
    assert client.post(f"/admin/jobs/{job.id}/retry").status_code == 404  # done: nothing to retry


@pytest.fixture
def until_done_job(app):
    """A job kind that ends its own work: its handler raises what the test lines up."""
    raises: list[Exception] = []

    @jobs.handler("test_until_done", retries_until_done=True)
    def _work(job: jobs.Claimed) -> None:
        if raises:
            raise raises.pop(0)

    yield raises
    jobs.HANDLERS.pop("test_until_done")
    jobs.RETRIED_UNTIL_DONE.discard("test_until_done")


def until_done_jobs() -> list[Job]:
    db.session.expire_all()
    return list(db.session.scalars(sa.select(Job).where(Job.kind == "test_until_done")))


def test_a_kind_that_ends_its_own_work_is_retried_past_the_attempt_limit(until_done_job):
    until_done_job.extend([RuntimeError("not yet")] * 5)  # JOB_MAX_ATTEMPTS is 3 here
    with atomic():
        jobs.record("test_until_done", "test_until_done:1", {})

    for minutes in (0, 1, 3, 6, 11, 20):  # each retry once due (30 s, 60 s, 2 min, ...)
        run_jobs_later(minutes)

    [job] = until_done_jobs()
    assert job.status == JobStatus.DONE and job.attempts == 6


def test_a_kind_that_ends_its_own_work_still_fails_at_once_on_a_permanent_error(until_done_job):
    until_done_job.append(jobs.PermanentJobError("retrying cannot help"))
    with atomic():
        jobs.record("test_until_done", "test_until_done:1", {})

    run_jobs()

    [job] = until_done_jobs()
    assert job.status == JobStatus.FAILED and job.attempts == 1
    assert "retrying cannot help" in job.last_error


def test_admin_jobs_lists_pending_and_counts(app, client, admin, user):
    users.resend_verification(users.create_user("fresh@example.com", "long-enough-pw"))
    login(client, admin.email)
    page = client.get("/admin/jobs").get_data(as_text=True)

    assert "Pending (2)" in page and "verify_email" in page
    assert client.post("/admin/jobs/999999/retry").status_code == 404


# --- refunds and disputes


def test_refund_notices_once_per_refund_step(paid, user, client, smtp_server):
    for _ in range(2):
        deliver(client, paid.refunded(300))
    deliver(client, paid.refunded(1000))
    run_jobs()
    refunds = [m for m in smtp_server.to(user.email) if "refund" in m["Subject"]]
    assert len(refunds) == 2
    assert "300 credits were taken back" in body(refunds[0])
    assert "700 credits were taken back" in body(refunds[1])


def test_dispute_notices_when_opened_and_when_won(paid, user, client, smtp_server):
    opened = paid.dispute("charge.dispute.created", dispute_id="dp_mail_1")
    won = paid.dispute("charge.dispute.closed", status="won", dispute_id="dp_mail_1")
    for evt in (opened, opened, won, won):
        assert deliver(client, evt).status_code == 200
    run_jobs()
    subjects = [m["Subject"] for m in smtp_server.to(user.email)]
    assert subjects.count("Credits Store: a payment was disputed") == 1
    assert subjects.count("Credits Store: credits returned after a dispute") == 1


# --- low balance


def test_low_balance_alert_once_per_crossing_of_the_threshold(user, smtp_server):
    ledger.adjust(user.id, 500, "start")
    ledger.debit_usage(user.id, 450, "big job")  # 500 -> 50: crosses 100
    ledger.debit_usage(user.id, 10, "small job")  # 50 -> 40: already below
    ledger.adjust(user.id, 200, "top up")  # 240: above again
    ledger.debit_usage(user.id, 140, "job")  # 240 -> 100: not below
    ledger.debit_usage(user.id, 1, "job")  # 100 -> 99: crosses again
    run_jobs()
    alerts = [m for m in smtp_server.to(user.email) if "balance is down" in m["Subject"]]
    assert [m["Subject"] for m in alerts] == [
        "Credits Store: your balance is down to 50 credits",
        "Credits Store: your balance is down to 99 credits",
    ]


def test_low_balance_alert_follows_the_users_settings(user, smtp_server):
    ledger.adjust(user.id, 1000, "start")
    users.save_preferences(user, users.Preferences(True, True, True, 600))
    ledger.debit_usage(user.id, 500, "job")  # 1000 -> 500: below 600
    users.save_preferences(user, users.Preferences(False, True, True, 600))
    ledger.adjust(user.id, 500, "top up")
    ledger.debit_usage(user.id, 500, "job")  # opted out
    users.save_preferences(user, users.Preferences(True, True, True, 0))
    ledger.adjust(user.id, 500, "top up")
    ledger.debit_usage(user.id, 1000, "job")  # threshold 0: never
    run_jobs()
    assert smtp_server.subjects() == ["Credits Store: your balance is down to 500 credits"]


# --- subscriptions


def test_renewal_and_payment_failure_notices_once_each(app, user, client, smtp_server):
    sub_id = new_id("sub")
    deliver(client, event("checkout.session.completed", subscription_session(sub_id, user.id)))
    first = invoice(sub_id, user.id)
    renewal = invoice(sub_id, user.id, start=FEB_1, end=MAR_1, reason="subscription_cycle")
    failed = invoice(
        sub_id,
        user.id,
        start=FEB_1,
        end=MAR_1,
        reason="subscription_cycle",
        status="open",
        attempt_count=1,
    )
    for evt in (
        event("invoice.paid", first),
        event("invoice.paid", renewal),
        event("invoice.paid", renewal),
    ):
        assert deliver(client, evt).status_code == 200
    for _ in range(2):
        assert deliver(client, event("invoice.payment_failed", failed)).status_code == 200
    run_jobs()
    assert sorted(smtp_server.subjects()) == [
        "Credits Store: your basic plan renewed",
        "Credits Store: your plan's payment failed",
    ]


def test_renewal_notices_follow_the_users_settings(app, user, client, smtp_server):
    users.save_preferences(user, users.Preferences(True, True, False, 100))
    sub_id = new_id("sub")
    deliver(client, event("checkout.session.completed", subscription_session(sub_id, user.id)))
    renewal = invoice(sub_id, user.id, start=FEB_1, end=MAR_1, reason="subscription_cycle")
    deliver(client, event("invoice.paid", renewal))
    run_jobs()
    assert smtp_server.messages == []
