"""PostgreSQL, several processes: plan-grant refunds, disputes and usage racing each other
take exactly what the rules say, and expiring credits stay within the balance."""

from datetime import timedelta

import sqlalchemy as sa

from tests.concurrency import bought_and_planned, deliver_then_spend, run_processes
from tests.conftest import requires_postgres
from tests.payments import balance_of, entries, ledger_sum
from tests.stripe_fakes import event, fixture
from tests.subscription_fakes import new_id
from webapp.domain import api_keys, clock, ledger
from webapp.extensions import db
from webapp.models import CreditAccount, CreditGrant
from webapp.models.types import utcnow

PROCESSES = 3


@requires_postgres
def test_grant_clawbacks_and_usage_at_once_take_exactly_once(
    app, client, user, stripe_double, database_url
):
    paid, plan = bought_and_planned(client, stripe_double, user)
    intent = plan["payments"]["data"][0]["payment"]["payment_intent"]
    charge = {
        **fixture("charge"),
        "id": new_id("ch"),
        "amount": 900,
        "currency": "usd",
        "payment_intent": intent,
        "refunded": False,
    }

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
                payment_intent=intent,
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
