"""Many deliveries of many sessions, from several processes at once, credit exactly once."""

import random

import sqlalchemy as sa

from tests.concurrency import app_in_process, run_processes
from tests.conftest import requires_postgres
from tests.stripe_fakes import checkout_session, deliver, event
from webapp.domain import checkout, users
from webapp.extensions import db
from webapp.models import CreditAccount, LedgerEntry, Purchase

PROCESSES = 4
USERS = 5
PURCHASES_PER_USER = 6


def _deliver_all(events, seed, barrier, results):
    client = app_in_process().test_client()
    random.Random(seed).shuffle(events)
    barrier.wait(timeout=60)
    results.put([deliver(client, evt).status_code for evt in events])


def _events_for(purchase: Purchase) -> list[dict]:
    """What Stripe may send for one paid session: completed (twice), and a redelivery."""
    session = checkout_session(
        purchase.id,
        purchase.user_id,
        amount=purchase.amount_cents,
        session_id=purchase.stripe_checkout_session_id,
    )
    first = event("checkout.session.completed", session)
    return [
        first,
        first,
        event("checkout.session.completed", session),
        event("checkout.session.async_payment_succeeded", session),
    ]


@requires_postgres
def test_parallel_deliveries_from_several_processes_credit_every_session_once(app):
    expected = {}
    events = []
    for n in range(USERS):
        user = users.create_user(f"buyer{n}@example.com", "correct-horse")
        for k in range(PURCHASES_PER_USER):
            purchase = checkout.start_checkout(user, 100 + 10 * n + k, "https://x.test")
            expected[user.id] = expected.get(user.id, 0) + purchase.credits
            events += _events_for(purchase)
    db.session.close()

    run = run_processes(
        _deliver_all,
        [(list(events), seed) for seed in range(PROCESSES)],
        together=True,
        answer_timeout=180,
    )
    assert run.exitcodes == [0] * PROCESSES
    statuses = [status for answer in run.answers for status in answer]

    assert statuses == [200] * (len(events) * PROCESSES)
    balances = dict(
        db.session.execute(sa.select(CreditAccount.user_id, CreditAccount.balance)).all()
    )
    assert balances == expected
    sums = dict(
        db.session.execute(
            sa.select(LedgerEntry.user_id, sa.func.sum(LedgerEntry.credits)).group_by(
                LedgerEntry.user_id
            )
        ).all()
    )
    assert sums == expected
    assert (
        db.session.scalar(sa.select(sa.func.count()).select_from(LedgerEntry))
        == USERS * PURCHASES_PER_USER
    )
    statuses_by_purchase = set(db.session.scalars(sa.select(Purchase.status)))
    assert statuses_by_purchase == {"paid"}
