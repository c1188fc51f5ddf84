"""Two events for a session whose id was never stored (the app stopped after Stripe created
it), handled at once on PostgreSQL: both find the purchase through its metadata."""

import threading
import time

import pytest
import sqlalchemy as sa

from tests.conftest import POSTGRES_URL, make_config, requires_postgres
from tests.stripe_fakes import checkout_session
from webapp.domain import ledger
from webapp.domain.ledger import Fulfilment, purchases
from webapp.domain.transaction import atomic
from webapp.extensions import db
from webapp.models import Purchase


@requires_postgres
@pytest.mark.parametrize("second", ["async_failed", "async_succeeded"])
def test_concurrent_events_for_a_session_found_by_metadata(app, user, second, monkeypatch):
    from webapp import create_app

    user_id = user.id
    with atomic():
        purchase = Purchase(
            user_id=user_id,
            credits=1000,
            value_cents=1000,
            fee_cents=0,
            amount_cents=1000,
            currency="usd",
            status="pending",
        )
        db.session.add(purchase)
    purchase_id = purchase.id
    db.session.close()
    unpaid = checkout_session(
        purchase_id, user_id, amount=1000, session_id="cs_test_lost_id", payment_status="unpaid"
    )
    later = dict(unpaid, payment_status="paid") if second == "async_succeeded" else dict(unpaid)
    second_call = (
        ledger.fulfil_checkout_session
        if second == "async_succeeded"
        else ledger.mark_session_failed
    )

    results = {}
    original = purchases.set_status

    def slow_set_status(p, status, **fields):
        original(p, status, **fields)
        if threading.current_thread().name == "A":
            time.sleep(1.5)  # holding the row lock, session id set, not committed yet

    monkeypatch.setattr(purchases, "set_status", slow_set_status)

    # Both apps are built here, one after the other: Python 3.11's compiler (werkzeug
    # compiles URL rules) is not safe to run from two threads at once.
    apps = {name: create_app(make_config(POSTGRES_URL)) for name in ("A", "B")}

    def run(name, func, session, delay):
        with apps[name].app_context():
            time.sleep(delay)
            results[name] = func(session).outcome
            db.session.remove()
            db.engine.dispose()

    threads = [
        threading.Thread(
            name="A", target=run, args=("A", ledger.fulfil_checkout_session, unpaid, 0)
        ),
        threading.Thread(name="B", target=run, args=("B", second_call, later, 0.5)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    db.session.expire_all()
    status = db.session.scalar(sa.select(Purchase.status).where(Purchase.id == purchase_id))
    assert results["A"] == Fulfilment.PROCESSING
    assert results["B"] != Fulfilment.UNKNOWN, results
    assert status == ("paid" if second == "async_succeeded" else "failed")
