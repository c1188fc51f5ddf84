"""Several processes at once against the PostgreSQL test database.

Each process is spawned (it shares nothing with the test but the database), builds its
own app with `app_in_process`, and puts what it saw on a queue; `run_processes` starts
them, collects one answer from each and joins them. The tests assert on the answers and
exit codes themselves.
"""

import multiprocessing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tests.conftest import POSTGRES_URL, make_config


def app_in_process(**overrides):
    """A fresh app on the PostgreSQL test database, for code running in a spawned process."""
    from webapp import create_app

    return create_app(make_config(POSTGRES_URL, **overrides))


@dataclass
class Finished:
    answers: list[Any]  # one per process, in the order they arrived
    exitcodes: list[int | None]  # by process, in the order of the argument tuples


def run_processes(
    target: Callable[..., None],
    arg_lists: Sequence[tuple],
    *,
    together: bool = False,
    answer_timeout: float = 120,
    join_timeout: float = 60,
) -> Finished:
    """One spawned process per argument tuple, each running `target(*args, results)` and
    putting one answer on `results`. With `together`, each gets a barrier before `results`
    (`target(*args, barrier, results)`) to wait on, so they all start their work at once."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    barrier = (context.Barrier(len(arg_lists)),) if together else ()
    processes = [
        context.Process(target=target, args=(*args, *barrier, results)) for args in arg_lists
    ]
    for process in processes:
        process.start()
    answers = [results.get(timeout=answer_timeout) for _ in processes]
    for process in processes:
        process.join(timeout=join_timeout)
    return Finished(answers, [process.exitcode for process in processes])
