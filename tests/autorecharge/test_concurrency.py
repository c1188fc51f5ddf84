"""Auto-recharge under concurrency on PostgreSQL: several processes share one Stripe double."""

import multiprocessing
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from tests.autorecharge.conftest import Recharge
from tests.concurrency import Finished, app_in_process, balance_and_ledger_sum, start_processes
from tests.conftest import requires_postgres
from tests.stripe_fakes import new_double
from tests.stripe_server import DoubleServer
from webapp.domain import clock
from webapp.extensions import db
from webapp.models import Job, Purchase
from webapp.models.types import utcnow

pytestmark = requires_postgres


@pytest.fixture
def stripe_server():
    with DoubleServer(new_double()) as server:
        yield server


@pytest.fixture
def config_overrides(stripe_server):
    return {"STRIPE_HTTP_CLIENT": None, "STRIPE_API_BASE": stripe_server.base_url}


@pytest.fixture
def recharge(logged_in, stripe_server, user):
    return Recharge(logged_in, stripe_server.double, user)


def _app(base_url: str):
    return app_in_process(STRIPE_HTTP_CLIENT=None, STRIPE_API_BASE=base_url)


def _debit(base_url: str, user_id: int, count: int, results) -> None:
    from webapp.domain import ledger
    from webapp.domain.errors import InsufficientCreditsError

    spent = 0
    with _app(base_url).app_context():
        for _ in range(count):
            try:
                ledger.debit_usage(user_id, 10, "race")
                spent += 1
            except InsufficientCreditsError:
                time.sleep(0.005)
        db.engine.dispose()
    results.put(spent)


def _work(base_url: str, stop, rounds: int, results) -> None:
    from webapp.domain import jobs

    with _app(base_url).app_context():
        for _ in range(rounds):
            jobs.run_due()
            if stop is not None and stop.is_set():
                break
            time.sleep(0.01)
        jobs.run_due()
        db.engine.dispose()
    results.put(None)  # the harness waits for one answer from each process


def _run_watching(jobs, user_id: int) -> Finished:
    """Run `jobs`, checking the balance against the ledger until they end; all exit 0."""

    def check() -> None:
        balance, total = balance_and_ledger_sum(user_id)
        assert balance == total and balance >= 0

    running = start_processes(jobs)
    running.watch(check, every=0.02)
    finished = running.finish(answer_timeout=5, join_timeout=120)
    assert finished.exitcodes == [0] * len(jobs)
    return finished


def test_100_concurrent_debits_crossing_the_threshold_charge_once(recharge, stripe_server):
    recharge.setup(balance=1000, threshold=500, amount=500)

    debits = _run_watching(
        [(_debit, (stripe_server.base_url, recharge.user_id, 25))] * 4, recharge.user_id
    )

    assert sum(debits.answers) == 100
    [attempt] = recharge.attempts()
    assert attempt.status == "pending"
    assert (
        db.session.scalar(
            sa.select(sa.func.count()).select_from(Job).where(Job.kind == "auto_recharge_charge")
        )
        == 1
    )
    _run_watching([(_work, (stripe_server.base_url, None, 3))] * 2, recharge.user_id)

    assert len(recharge.intents()) == 1
    assert len(recharge.purchase_credits()) == 1
    assert recharge.balance() == 500
    recharge.assert_ledger_consistent()


def test_the_monthly_limit_holds_while_debits_and_workers_race(recharge, stripe_server):
    recharge.setup(balance=600, threshold=500, amount=500, limit="15")  # three recharges
    stop = multiprocessing.get_context("spawn").Event()
    workers = start_processes([(_work, (stripe_server.base_url, stop, 6000))] * 2)

    debits = _run_watching(
        [(_debit, (stripe_server.base_url, recharge.user_id, 150))] * 3, recharge.user_id
    )
    stop.set()
    assert workers.finish(answer_timeout=120).exitcodes == [0] * 2
    recharge.run_worker()

    charged = [p for p in recharge.attempts() if p.status == "paid"]
    assert sum(p.amount_cents for p in charged) <= 1500
    assert len(charged) == 3 and len(recharge.intents()) == 3
    assert [p.status for p in recharge.attempts()] == ["paid"] * 3
    spent = sum(debits.answers)
    assert recharge.balance() == 600 + 1500 - 10 * spent
    recharge.assert_ledger_consistent()


def test_a_worker_killed_between_the_charge_and_recording_it_charges_once(recharge, stripe_server):
    recharge.setup(balance=1000, threshold=500, amount=500)
    recharge.spend(600)
    running = start_processes([(_work, (stripe_server.base_url, None, 1))])
    [worker] = running.processes
    stripe_server.kill = ("post", "/v1/payment_intents", worker.pid)
    worker.join(120)

    assert worker.exitcode == -9
    assert len(recharge.intents()) == 1 and recharge.intents()[0]["status"] == "succeeded"
    assert recharge.attempt().status == "pending" and recharge.balance() == 400
    # After the dead worker's lease runs out, another worker takes the job.
    clock.fix(utcnow() + timedelta(minutes=10))
    try:
        recharge.run_worker()
    finally:
        clock.fix(None)

    assert len(recharge.intents()) == 1
    assert len(recharge.intent_requests()) == 2
    assert recharge.attempt().status == "paid"
    assert len(recharge.purchase_credits()) == 1
    assert recharge.balance() == 900
    recharge.assert_ledger_consistent()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Purchase)) == 1
