"""PostgreSQL, several processes: refunds of a purchase and usage racing each other take
exactly what the rules say, bought credits before plan credits, whatever the order."""

import sqlalchemy as sa

from tests.concurrency import bought_and_planned, deliver_then_spend, run_processes
from tests.conftest import requires_postgres
from tests.payments import Payment, balance_of, entries, ledger_sum
from tests.stripe_fakes import deliver, event
from tests.subscription_fakes import running_invoice
from webapp.domain import api_keys
from webapp.extensions import db
from webapp.models import CreditAccount, CreditGrant, Purchase

PROCESSES = 4
USAGE = 100


@requires_postgres
def test_purchase_refunds_and_usage_at_once_take_exactly_once(
    app, client, user, stripe_double, database_url
):
    paid, _ = bought_and_planned(client, stripe_double, user)
    assert balance_of(user.id) == 2000  # 1000 bought, 1000 from the plan (expiring)

    # Each process delivers the partial and the full refund under event ids of its own,
    # in its own order, and spends once: cumulative refunds take the purchase's 1000
    # credits once in all, whichever arrives first.
    lists = []
    for number in range(PROCESSES):
        events = [paid.refunded(paid.amount // 2), paid.refunded(paid.amount)]
        lists.append(events if number % 2 else events[::-1])
    secret = api_keys.mint(user.id, "race").secret
    run = run_processes(
        deliver_then_spend, [(events, secret, USAGE) for events in lists], together=True
    )
    assert run.exitcodes == [0] * PROCESSES
    assert all(status == 200 for statuses in run.answers for status in statuses)

    spent = PROCESSES * USAGE
    assert balance_of(user.id) == 2000 - 1000 - spent == ledger_sum(user.id)
    assert -sum(entry.credits for entry in entries(user.id, "refund")) == 1000
    db.session.expire_all()
    purchase = db.session.scalars(sa.select(Purchase)).one()
    assert (purchase.status, purchase.amount_refunded_cents) == ("refunded", paid.amount)
    # What is left is all plan credits: the refund took bought credits first and usage
    # took expiring ones first, in whatever order they ran.
    account = db.session.get(CreditAccount, user.id)
    grant = db.session.scalars(sa.select(CreditGrant)).one()
    assert account.expiring == 1000 - spent == grant.remaining == account.balance


@requires_postgres
def test_a_won_dispute_racing_usage_takes_and_gives_back_once(
    app, client, user, stripe_double, database_url
):
    paid = Payment(stripe_double, user, 1000)
    assert deliver(client, paid.completed()).status_code == 200
    secret = api_keys.mint(user.id, "race").secret
    spend = client.post(
        "/api/v1/usage", json={"credits": 800}, headers={"Authorization": f"Bearer {secret}"}
    )
    assert spend.status_code == 200
    plan = running_invoice(user.id)
    assert deliver(client, event("invoice.paid", plan)).status_code == 200
    assert balance_of(user.id) == 1200  # 200 bought, 1000 from the plan (expiring)

    # The dispute takes the purchase's 1000 credits: the 200 bought and 800 of the plan's.
    # Each process delivers its opening and its win (ids of its own, some won first) and
    # spends once; however they interleave, the dispute takes once and gives back once.
    lists = []
    for number in range(PROCESSES):
        events = [
            paid.dispute("charge.dispute.created", dispute_id="dp_race"),
            paid.dispute("charge.dispute.closed", status="won", dispute_id="dp_race"),
        ]
        lists.append(events if number % 2 else events[::-1])
    run = run_processes(
        deliver_then_spend, [(events, secret, USAGE) for events in lists], together=True
    )
    assert run.exitcodes == [0] * PROCESSES
    assert all(statuses[:2] == [200, 200] for statuses in run.answers)
    assert all(statuses[2] in (200, 402) for statuses in run.answers)

    spent = USAGE * sum(statuses[2] == 200 for statuses in run.answers)
    assert balance_of(user.id) == 1200 - spent == ledger_sum(user.id)
    db.session.expire_all()
    account = db.session.get(CreditAccount, user.id)
    grant = db.session.scalars(sa.select(CreditGrant)).one()
    assert account.expiring == grant.remaining and 0 <= account.expiring <= account.balance
    # Without the dispute the 200 bought credits would be all that lasts; the win's credits
    # come back lasting (the README's known limits), never fewer.
    assert account.balance - account.expiring >= 200
    assert -sum(entry.credits for entry in entries(user.id, "dispute")) == sum(
        entry.credits for entry in entries(user.id, "dispute_reversal")
    )
