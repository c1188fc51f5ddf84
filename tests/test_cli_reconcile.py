"""`flask credits reconcile`: every page of recent sessions, exactly-once, honest counts."""

import re
import time

from tests.concurrency import app_in_process, run_processes
from tests.conftest import requires_postgres
from tests.payments import Payment, balance_of, entries, ledger_sum
from tests.stripe_fakes import deliver, new_double
from webapp.domain import checkout, users

SUMMARY = re.compile(
    r"checked (\d+), fulfilled (\d+), already (\d+), mismatched (\d+), "
    r"expired (\d+)"
)


def _build_sessions(client, user, stripe_double):
    """23 of our sessions in every state, plus two foreign ones and one too old."""
    paid = [Payment(stripe_double, user, 100) for _ in range(10)]
    credited = [Payment(stripe_double, user, 100) for _ in range(4)]
    for payment in credited:
        assert deliver(client, payment.completed()).status_code == 200
    mismatched = Payment(stripe_double, user, 100)
    stripe_double.objects[mismatched.session["id"]]["amount_total"] = 1
    for _ in range(3):
        purchase = checkout.start_checkout(user, 100, "https://credits.example.test")
        stripe_double.expire_checkout_session(purchase.stripe_checkout_session_id)
    for _ in range(2):
        checkout.start_checkout(user, 100, "https://credits.example.test")  # still open
    Payment(stripe_double, user, 100, paid=False)  # a delayed payment, not settled yet
    for purpose in ("credits_subscription", "something_else"):
        stripe_double.new_object(
            "checkout.session",
            "cs_test",
            status="complete",
            payment_status="paid",
            mode="payment",
            amount_total=100,
            currency="usd",
            metadata={"purpose": purpose},
        )
    old = Payment(stripe_double, user, 100)
    stripe_double.objects[old.session["id"]]["created"] = int(time.time()) - 100 * 3600
    return paid, credited, mismatched, old


def summary_of(output):
    lines = output.strip().splitlines()
    match = SUMMARY.fullmatch(lines[-1])
    assert match, lines[-1]
    return dict(
        zip(
            ("checked", "fulfilled", "already", "mismatched", "expired"),
            map(int, match.groups()),
            strict=True,
        )
    )


def test_reconcile_follows_every_page_and_fulfils_only_what_is_missing(
    client, runner, user, stripe_double
):
    paid, credited, mismatched, old = _build_sessions(client, user, stripe_double)
    result = runner.invoke(args=["credits", "reconcile", "--page-size", "5"])
    assert result.exit_code == 0, result.output
    assert summary_of(result.output) == {
        "checked": 21,
        "fulfilled": 10,
        "already": 4,
        "mismatched": 1,
        "expired": 3,
    }
    assert len(stripe_double.requests_to("get", "/v1/checkout/sessions")) == 5  # 25 in the window
    assert balance_of(user.id) == 1400 == ledger_sum(user.id)
    assert len(entries(user.id, "purchase")) == 14
    assert mismatched.purchase().status == "needs_review"
    assert old.purchase().credited_at is None  # outside the 72 hour window
    assert paid[0].session["id"] in result.output

    again = runner.invoke(args=["credits", "reconcile", "--page-size", "5"])
    assert summary_of(again.output) == {
        "checked": 21,
        "fulfilled": 0,
        "already": 14,
        "mismatched": 1,
        "expired": 3,
    }
    assert balance_of(user.id) == 1400


def test_reconcile_with_a_longer_window_reaches_older_sessions(client, runner, user, stripe_double):
    _, _, _, old = _build_sessions(client, user, stripe_double)
    result = runner.invoke(args=["credits", "reconcile", "--hours", "200"])
    assert summary_of(result.output)["fulfilled"] == 11
    assert old.purchase().status == "paid"


def test_reconcile_reports_a_stripe_failure_without_changing_anything(runner, user, stripe_double):
    Payment(stripe_double, user, 100)
    for _ in range(3):
        stripe_double.fail_next("/v1/checkout/sessions", 500)
    result = runner.invoke(args=["credits", "reconcile"])
    assert result.exit_code != 0
    assert "Payments are unavailable" in result.output
    assert balance_of(user.id) == 0


def _reconcile_in_process(objects, barrier, results):
    double = new_double()
    double.objects.update(objects)
    app = app_in_process(STRIPE_HTTP_CLIENT=double)
    with app.app_context():
        barrier.wait(timeout=60)
        result = app.test_cli_runner().invoke(args=["credits", "reconcile", "--page-size", "4"])
        results.put(result.output)


@requires_postgres
def test_two_reconciles_at_once_credit_each_session_once_and_count_honestly(
    client, user, stripe_double, database_url
):
    paid, credited, _, _ = _build_sessions(client, user, stripe_double)
    extra_users = [users.create_user(f"other{i}@example.com", "correct-horse") for i in range(3)]
    paid += [Payment(stripe_double, other, 250) for other in extra_users]
    run = run_processes(_reconcile_in_process, [(stripe_double.objects,)] * 2, together=True)
    assert run.exitcodes == [0] * 2
    summaries = [summary_of(output) for output in run.answers]
    assert sum(s["fulfilled"] for s in summaries) == 13
    for summary in summaries:
        assert summary["fulfilled"] + summary["already"] == 17
        assert summary["checked"] == 24 and summary["mismatched"] == 1
    assert balance_of(user.id) == 1400 == ledger_sum(user.id)
    for other in extra_users:
        assert balance_of(other.id) == 250 == ledger_sum(other.id)
    assert all(payment.purchase().status == "paid" for payment in paid + credited)


def test_abandoned_purchase_expired_by_reconcile_moves_the_dashboard_status_counts(
    runner, user, stripe_double
):
    """reconcile's expire_abandoned_purchases is a Core UPDATE (pending → expired) that
    never calls totals.purchase_moved, so /admin/ keeps counting the purchase as pending and
    never as expired."""
    from datetime import timedelta

    from webapp.domain import admin_reports, checkout, clock, pricing, reconcile
    from webapp.models.types import utcnow

    checkout._record_purchase(user.id, pricing.quote(500))  # the app stopped before Stripe
    before = admin_reports.dashboard().by_status
    assert (before["pending"], before["expired"]) == (1, 0)
    clock.fix(utcnow() + reconcile.ABANDONED_AFTER + timedelta(minutes=1))
    try:
        result = runner.invoke(args=["credits", "reconcile"])
    finally:
        clock.fix(None)
    assert result.output.strip().endswith("expired 1"), result.output
    after = admin_reports.dashboard().by_status
    assert (after["pending"], after["expired"]) == (0, 1)
