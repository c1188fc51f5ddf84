"""PostgreSQL, several processes: plan-grant refunds, disputes and usage racing each other
take exactly what the rules say, and expiring credits stay within the balance."""

from datetime import timedelta

import sqlalchemy as sa

from tests.concurrency import (
    app_in_process,
    bought_and_planned,
    deliver_then_spend,
    run_processes,
)
from tests.conftest import requires_postgres
from tests.payments import balance_of, checked_books, entries, ledger_sum
from tests.stripe_fakes import deliver, event, fixture
from tests.subscription_fakes import new_id
from webapp.domain import api_keys, clock, ledger
from webapp.extensions import db
from webapp.models import CreditAccount, CreditGrant, LedgerEntry
from webapp.models.types import utcnow

PROCESSES = 3


def _plan_charge(plan: dict, **fields) -> dict:
    """The charge that paid the plan's 900-cent invoice (bought_and_planned), with `fields`."""
    intent = plan["payments"]["data"][0]["payment"]["payment_intent"]
    return {
        **fixture("charge"),
        "id": new_id("ch"),
        "amount": 900,
        "currency": "usd",
        "payment_intent": intent,
        **fields,
    }


@requires_postgres
def test_grant_clawbacks_and_usage_at_once_take_exactly_once(
    app, client, user, stripe_double, database_url
):
    paid, plan = bought_and_planned(client, stripe_double, user)
    charge = _plan_charge(plan, refunded=False)

    def refunded(amount):
        return event("charge.refunded", {**charge, "amount_refunded": amount})

    def dispute(event_type, status):
        return event(
            event_type,
            fixture(
                "dispute",
                id="dp_plan_race",
                charge=charge["id"],
                amount=900,
                currency="usd",
                status=status,
                payment_intent=charge["payment_intent"],
            ),
        )

    shared = [
        refunded(450),
        dispute("charge.dispute.created", "needs_response"),
        dispute("charge.dispute.closed", "lost"),
    ]
    lists = []
    for number in range(PROCESSES):
        events = [refunded(450), *shared]  # a refund under its own event id in each
        turn = number % len(events)
        lists.append(events[turn:] + events[:turn])
    secret = api_keys.mint(user.id, "race").secret
    run = run_processes(
        deliver_then_spend, [(events, secret, 100) for events in lists], together=True
    )
    assert run.exitcodes == [0] * PROCESSES
    assert all(status == 200 for statuses in run.answers for status in statuses)

    # 1000 bought + 1000 granted; the grant's refund and lost dispute take its 1000 in
    # whatever order; three usages take 300. Every debit took expiring credits first.
    assert balance_of(user.id) == 700 == ledger_sum(user.id)
    assert -sum(e.credits for e in entries(user.id, "refund") + entries(user.id, "dispute")) == 1000
    db.session.expire_all()
    assert db.session.get(CreditAccount, user.id).expiring == 0
    assert db.session.scalars(sa.select(CreditGrant)).one().remaining == 0
    clock.fix(utcnow() + timedelta(days=31))
    try:
        ledger.expire_due_grants()
    finally:
        clock.fix(None)
    assert balance_of(user.id) == 700 == ledger_sum(user.id)  # bought credits never expire


def _refund_or_expire(refund, expire_at, barrier, results) -> None:
    """A spawned process's work: deliver `refund`, or (without one) run the expiry with
    the clock at `expire_at`; answers the status or the credits expired."""
    app = app_in_process()
    with app.app_context():
        client = app.test_client()
        clock.fix(expire_at)
        barrier.wait(timeout=60)
        if refund is not None:
            results.put(deliver(client, refund).status_code)
        else:
            results.put(sum(credits for _, credits in ledger.expire_due_grants()))


@requires_postgres
def test_a_plan_refund_racing_the_expiry_of_its_credits_takes_them_once(
    app, client, user, stripe_double, database_url
):
    """1000 bought and a month's 1000 expiring; past the month's end, its full refund
    (under several event ids) and the expiry command run at once from four processes.
    Whichever locks the account first, the grant's 1000 leave once: the bought stay."""
    _, plan = bought_and_planned(client, stripe_double, user)
    charge = _plan_charge(plan, amount_refunded=900, refunded=True)
    later = utcnow() + timedelta(days=31)
    jobs = [(event("charge.refunded", charge), later), (None, later)] * 2
    run = run_processes(_refund_or_expire, jobs, together=True)
    assert run.exitcodes == [0] * len(jobs)
    assert run.answers.count(200) == 2, run.answers
    assert checked_books(user.id) == (1000, 0)
    grant_id = db.session.scalars(sa.select(CreditGrant.id)).one()
    grant_rows = sa.select(sa.func.sum(LedgerEntry.credits)).where(LedgerEntry.grant_id == grant_id)
    assert db.session.scalar(grant_rows) == 0  # granted 1000, removed 1000 once
