"""Admin actions refuse what would go wrong: an amount past the arithmetic, a second run
of a job a worker holds."""

import pytest
import sqlalchemy as sa
from flask import current_app

from tests.conftest import login
from webapp.domain import checkout, jobs, ledger
from webapp.extensions import db
from webapp.models import Job, Purchase


@pytest.fixture
def as_admin(client, admin):
    login(client, admin.email)
    return client


def paid_purchase(stripe_double, user, credits=1000):
    purchase = checkout.start_checkout(user, credits, "https://credits.example.test")
    session = stripe_double.complete_checkout_session(purchase.stripe_checkout_session_id)
    ledger.fulfil_checkout_session(session)
    return db.session.get(Purchase, purchase.id)


def outbox() -> list:
    return list(getattr(current_app.extensions["mailman"], "outbox", []))


def test_admin_retry_of_a_job_a_worker_is_running_does_not_run_it_twice(as_admin):
    """/admin/jobs offers "Retry now" on every job not done, including one a worker holds
    the lease on right now (status pending, attempts 1). The retry clears the lease, so a
    second worker claims the same job while the first is still sending: the customer gets
    the same mail twice ("each message is sent once per cause even when a job is retried")."""
    job_id = db.session.scalar(sa.select(Job.id).where(Job.kind == "mail").limit(1))
    db.session.rollback()
    running = jobs.claim(job_id, "worker-a")  # worker A is sending the receipt right now
    assert running is not None

    assert as_admin.post(f"/admin/jobs/{job_id}/retry").status_code == 303

    second = jobs.run(job_id, "worker-b")  # the doorbell the retry rang: worker B
    jobs.HANDLERS[running.kind](running)  # worker A finishes its send
    sent = [(m.to, m.subject) for m in outbox()]
    assert second is None, f"a second worker ran a job whose lease worker A held: {sent}"
    assert len(sent) == 1, sent


def test_a_refund_amount_in_exponent_notation_is_refused_not_a_500(as_admin, user, stripe_double):
    """The refund form takes any Decimal: "1e30" parses, and `cents % step` then traps
    decimal.InvalidOperation (the quotient has more digits than the context's precision),
    which parse_money does not turn into ValueError: 500 instead of the form's error."""
    purchase = paid_purchase(stripe_double, user)
    response = as_admin.post(f"/admin/purchases/{purchase.id}/refund", data={"amount": "1e30"})
    assert response.status_code == 400
    assert stripe_double.requests_to("post", "/v1/refunds") == []
