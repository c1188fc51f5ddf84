"""Several processes at once against the PostgreSQL test database.

Each process is spawned (it shares nothing with the test but the database), builds its
own app with `app_in_process`, and puts what it saw on a queue; `run_processes` starts
them, collects one answer from each and joins them. `start_processes` does the same in
steps, for tests that read the database while the processes run (`Running.watch`, with
`balance_and_ledger_sum`) or start processes of different kinds. The tests assert on the
answers and exit codes themselves.
"""

import multiprocessing
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from tests.conftest import POSTGRES_URL, make_config
from webapp.extensions import db

# A process to start: its target and the arguments it gets before the queue (and barrier).
Job = tuple[Callable[..., None], tuple]


def app_in_process(**overrides):
    """A fresh app on the PostgreSQL test database, for code running in a spawned process."""
    from webapp import create_app

    return create_app(make_config(POSTGRES_URL, **overrides))


@dataclass
class Finished:
    answers: list[Any]  # one per process, in the order they arrived
    exitcodes: list[int | None]  # by process, in the order of the jobs


@dataclass
class Running:
    """Started processes. Keep it while they run: a child unpickles the queue and barrier
    after `start()` returns, and dropping them first removes their semaphores."""

    processes: list[multiprocessing.Process]
    results: Any  # the queue every process puts its one answer on
    barrier: Any = None  # with `together`, the barrier they all wait on

    def alive(self) -> bool:
        return any(process.is_alive() for process in self.processes)

    def watch(self, check: Callable[[], None], every: float) -> int:
        """Call `check` every `every` seconds while any process runs; how often it ran."""
        checks = 0
        while self.alive():
            check()
            checks += 1
            time.sleep(every)
        return checks

    def finish(self, *, answer_timeout: float = 120, join_timeout: float = 60) -> Finished:
        """One answer from each process, then each joined."""
        answers = [self.results.get(timeout=answer_timeout) for _ in self.processes]
        for process in self.processes:
            process.join(timeout=join_timeout)
        return Finished(answers, [process.exitcode for process in self.processes])


def start_processes(jobs: Sequence[Job], *, together: bool = False) -> Running:
    """One spawned process per (target, args) job, running `target(*args, results)`.
    With `together`, each gets a barrier before `results` (`target(*args, barrier,
    results)`) to wait on, so they all start their work at once."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    barrier = context.Barrier(len(jobs)) if together else None
    before_results = (barrier,) if together else ()
    processes = [
        context.Process(target=target, args=(*args, *before_results, results))
        for target, args in jobs
    ]
    for process in processes:
        process.start()
    return Running(processes, results, barrier)


def run_processes(
    target: Callable[..., None],
    arg_lists: Sequence[tuple],
    *,
    together: bool = False,
    answer_timeout: float = 120,
    join_timeout: float = 60,
) -> Finished:
    """`target` in one process per argument tuple (see `start_processes`), each putting
    one answer on its queue: the answers and exit codes once all are joined."""
    running = start_processes([(target, args) for args in arg_lists], together=together)
    return running.finish(answer_timeout=answer_timeout, join_timeout=join_timeout)


def balance_and_ledger_sum(user_id: int) -> tuple[int, int]:
    """The account's balance and the sum of its ledger, read in one statement, hence from
    one snapshot even while other processes write."""
    row = db.session.execute(
        sa.text(
            "SELECT a.balance, (SELECT COALESCE(SUM(credits), 0) FROM ledger_entries "
            "WHERE user_id = a.user_id) FROM credit_accounts a WHERE a.user_id = :u"
        ),
        {"u": user_id},
    ).one()
    db.session.rollback()
    return int(row[0]), int(row[1])


def deliver_then_spend(events: list, secret: str, credits: int, barrier, results) -> None:
    """A spawned process's work in the clawback races: deliver `events` to the webhook,
    then spend `credits` with the API key `secret`; answers every status."""
    from tests.stripe_fakes import deliver

    client = app_in_process().test_client()
    barrier.wait(timeout=60)
    statuses = [deliver(client, evt).status_code for evt in events]
    spent = client.post(
        "/api/v1/usage", json={"credits": credits}, headers={"Authorization": f"Bearer {secret}"}
    )
    results.put([*statuses, spent.status_code])


def bought_and_planned(client, stripe_double, user) -> tuple:
    """The clawback races' start: 1000 credits bought and a running plan's 1000 (expiring),
    both delivered; returns (the Payment, the plan's invoice)."""
    from tests.payments import Payment
    from tests.stripe_fakes import deliver, event
    from tests.subscription_fakes import running_invoice

    paid = Payment(stripe_double, user, 1000)
    assert deliver(client, paid.completed()).status_code == 200
    plan = running_invoice(user.id)
    assert deliver(client, event("invoice.paid", plan)).status_code == 200
    return paid, plan
