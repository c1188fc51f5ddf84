"""Refunds and disputes of a subscription invoice mail the user as a purchase's do, once per cause."""

import sqlalchemy as sa

from tests.mail.conftest import body, run_jobs
from tests.money.plan_payments import PlanPayment
from tests.payments import Payment, balance_of
from tests.stripe_fakes import deliver
from webapp.domain import mailer
from webapp.extensions import db
from webapp.models import CreditGrant, Job


def mail_jobs(message: str) -> list[Job]:
    db.session.expire_all()
    jobs = db.session.scalars(sa.select(Job).order_by(Job.id)).all()
    return [j for j in jobs if j.payload.get("message") == message]


def the_grant() -> CreditGrant:
    db.session.expire_all()
    return db.session.scalars(sa.select(CreditGrant)).one()


def mails(inbox, to: str, subject: str) -> list[str]:
    """The bodies of the mails to `to` with this subject (after the product name), their
    lines ending as in the template rather than in SMTP's CRLF."""
    chosen = [m for m in inbox.to(to) if m["Subject"] == f"Credits Store: {subject}"]
    return [body(m).replace("\r\n", "\n") for m in chosen]


def test_a_plan_refund_mails_once_per_refund_step_naming_the_plan_invoice(
    logged_in, user, stripe_double, smtp_server
):
    plan = PlanPayment(logged_in, stripe_double, "basic")  # 1,000 credits for 9.00 USD
    plan.pay()
    grant = the_grant()
    partial, full = plan.refunded(300), plan.refunded(plan.amount)
    for evt in (partial, partial, plan.refunded(300), full, full, plan.refunded(300)):
        plan.send(evt)  # redelivered, repeated and stale events too
    assert balance_of(user.id) == 0

    jobs = mail_jobs("refund")
    assert [j.dedupe_key for j in jobs] == [
        f"mail:refund:grant:{grant.id}:300",
        f"mail:refund:grant:{grant.id}:900",
    ]
    assert [(j.payload["grant_id"], j.payload["credits"], j.user_id) for j in jobs] == [
        (grant.id, 333, user.id),
        (grant.id, 667, user.id),
    ]
    run_jobs()
    first, second = mails(smtp_server, user.email, "your refund")
    invoice = f"your basic plan (invoice {grant.stripe_invoice_id})"
    assert f"A refund of the payment for {invoice} was made: 3.00 USD of\n" in first
    assert "your 9.00 USD payment is on its way back to you." in first
    assert "333 credits were taken back from your balance for it." in first
    assert "9.00 USD of\nyour 9.00 USD payment" in second
    assert "667 credits were taken back" in second
    assert "purchase" not in first + second
    message_ids = [m["Message-ID"] for m in smtp_server.to(user.email) if "refund" in m["Subject"]]
    assert message_ids[0] == mailer.message_id(f"mail:refund:grant:{grant.id}:300")


def test_a_won_plan_dispute_mails_when_opened_and_credits_returned_when_closed(
    logged_in, user, stripe_double, smtp_server
):
    plan = PlanPayment(logged_in, stripe_double, "basic")
    plan.pay()
    opened = plan.dispute("charge.dispute.created", plan.amount, dispute_id="dp_plan_mail")
    won = plan.dispute("charge.dispute.closed", plan.amount, "won", dispute_id="dp_plan_mail")
    plan.send(opened)
    assert balance_of(user.id) == 0
    [job] = mail_jobs("dispute_opened")  # recorded with the clawback
    assert job.payload["grant_id"] == the_grant().id and job.dedupe_key.endswith("dp_plan_mail")
    for evt in (opened, won, won):
        plan.send(evt)
    assert balance_of(user.id) == 1000
    run_jobs()

    invoice = f"your basic plan (invoice {the_grant().stripe_invoice_id})"
    [held] = mails(smtp_server, user.email, "a payment was disputed")
    assert f"Your bank told us that the payment for {invoice} is disputed." in held
    assert "1,000 credits from that payment are held until the dispute is settled." in held
    [returned] = mails(smtp_server, user.email, "credits returned after a dispute")
    assert f"The dispute about the payment for {invoice} is settled." in returned
    assert "The 1,000 credits it held are yours again." in returned
    assert mails(smtp_server, user.email, "a dispute was settled") == []


def test_a_lost_plan_dispute_closed_before_created_mails_each_notice_once(
    logged_in, user, stripe_double, smtp_server
):
    plan = PlanPayment(logged_in, stripe_double, "basic")
    plan.pay()
    lost = plan.dispute("charge.dispute.closed", plan.amount, "lost", dispute_id="dp_plan_lost")
    opened = plan.dispute("charge.dispute.created", plan.amount, dispute_id="dp_plan_lost")
    for evt in (lost, opened, lost, opened):
        plan.send(evt)
    assert balance_of(user.id) == 0
    run_jobs()

    assert len(mails(smtp_server, user.email, "a payment was disputed")) == 1
    [settled] = mails(smtp_server, user.email, "a dispute was settled")
    assert "The credits it held stay taken back." in settled
    assert mails(smtp_server, user.email, "credits returned after a dispute") == []


def test_a_plan_dispute_first_seen_already_won_says_nothing_was_taken(
    logged_in, user, stripe_double, smtp_server
):
    plan = PlanPayment(logged_in, stripe_double, "basic")
    plan.pay()
    won = plan.dispute("charge.dispute.closed", plan.amount, "won", dispute_id="dp_plan_early")
    for evt in (won, won):
        plan.send(evt)
    assert balance_of(user.id) == 1000  # nothing was taken, nothing given back
    run_jobs()

    assert mails(smtp_server, user.email, "credits returned after a dispute") == []
    [settled] = mails(smtp_server, user.email, "a dispute was settled")
    assert "It was settled in your favour, and no credits had been taken for it." in settled
    assert "stay taken back" not in settled


def test_a_purchase_refund_mail_reads_as_before(app, user, stripe_double, client, smtp_server):
    payment = Payment(stripe_double, user, 1000)
    assert deliver(client, payment.completed()).status_code == 200
    assert deliver(client, payment.refunded(300)).status_code == 200
    [job] = mail_jobs("refund")
    assert job.dedupe_key == f"mail:refund:purchase:{payment.purchase_id}:300"
    run_jobs()
    [text] = mails(smtp_server, user.email, "your refund")
    site = app.config["PUBLIC_BASE_URL"]
    assert text == (
        "Hello,\n\n"
        f"A refund of your payment for purchase {payment.purchase_id} was made: 3.00 USD of\n"
        "your 10.00 USD payment is on its way back to you.\n\n"
        "300 credits were taken back from your balance for it.\n\n"
        f"Your history: {site}/credits/history\n\n"
        f"-- \nCredits Store\n{site}\n"
    )
