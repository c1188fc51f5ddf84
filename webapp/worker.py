"""The background worker: a Huey queue that only rings the doorbell, and the periodic upkeep.

Huey keeps the queue in Redis (REDIS_URL; production) or in a SQLite file under
instance/ (development: `make run` needs no service). What to do is always read from
the jobs table (domain/jobs.py), so a lost message or a restarted Redis delays work and
never loses or doubles it. The Flask app is bound by init_app, never created here.
"""

import atexit
import logging
import os
import threading
import time

from flask import Flask
from huey import Huey, crontab
from huey.storage import MemoryStorage, RedisStorage, SqliteStorage
from redis import ConnectionPool

log = logging.getLogger(__name__)

huey = Huey("credits", results=False, utc=True, storage_class=MemoryStorage)
_app: Flask | None = None


def init_app(app: Flask) -> None:
    """Point the queue at the app's storage; tasks run inside this app's context."""
    global _app
    config = app.config
    name = config["QUEUE_NAME"]
    backend = config["QUEUE_BACKEND"]
    if backend == "redis":
        # Timeouts: a Redis that does not answer must not hold up the request that rang.
        pool = ConnectionPool.from_url(
            config["REDIS_URL"], socket_connect_timeout=2, socket_timeout=10
        )
        storage = RedisStorage(name, connection_pool=pool)
    elif backend == "sqlite":
        storage = SqliteStorage(name, filename=config["QUEUE_SQLITE_PATH"])
    else:
        storage = MemoryStorage(name)
    huey.name, huey.storage = name, storage
    _app = app


def ring(job_id: int, delay: float | None = None) -> None:
    """Enqueue a look at job `job_id` (after `delay` seconds; at once: gathered with the
    other rings of this moment, see Doorbell)."""
    if delay:
        run_jobs.schedule(args=([job_id],), delay=delay)
    else:
        doorbell.ring(job_id)


class Doorbell:
    """Rings gathered per process: the caller only notes the job id, and a thread of this
    process enqueues what gathered over the next GATHER_SECONDS as one task per BATCH
    ids. A request that commits a receipt so never waits on Redis, and a busy process
    sends one message for many jobs. A ring lost with the process (or Redis) only waits
    for the sweep, like any lost ring."""

    GATHER_SECONDS = 0.05
    BATCH = 20

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)  # the parent's thread is not ours

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._waiting: list[int] = []
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def ring(self, job_id: int) -> None:
        with self._lock:
            self._waiting.append(job_id)
            if self._thread is None or not self._thread.is_alive():
                thread = threading.Thread(target=self._run, name="doorbell", daemon=True)
                thread.start()  # raises (no thread to be had): the ring waits for the sweep
                self._thread = thread
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            time.sleep(self.GATHER_SECONDS)
            self.flush()

    def flush(self) -> None:
        """Enqueue whatever is waiting (also at exit)."""
        with self._lock:
            self._wake.clear()
            waiting, self._waiting = self._waiting, []
        for start in range(0, len(waiting), self.BATCH):
            try:
                run_jobs(waiting[start : start + self.BATCH])
            except Exception:
                log.warning("could not enqueue jobs; the sweep will pick them up", exc_info=True)


doorbell = Doorbell()
atexit.register(doorbell.flush)


def _in_app(func, *args):
    if _app is None:
        raise RuntimeError("webapp.worker.init_app was not called")
    with _app.app_context():
        return func(*args)


@huey.task(retries=0)
def run_jobs(job_ids: list[int]) -> None:
    from webapp.domain import jobs

    for job_id in job_ids:
        try:
            _in_app(jobs.run, job_id)
        except Exception:  # the rest still run; this one waits for the sweep
            log.exception("job %s could not be run", job_id)


@huey.periodic_task(crontab(minute="*"))
def sweep_jobs() -> None:
    from webapp.domain import jobs

    _in_app(jobs.sweep)


@huey.periodic_task(crontab(minute="*/10"))
def expire_credits() -> None:
    from webapp.domain import ledger

    expired = _in_app(ledger.expire_due_grants)
    log.info(
        "expiry: %s accounts looked at, %s credits expired",
        len(expired),
        sum(credits for _, credits in expired),
    )


@huey.periodic_task(crontab(minute="*"))
def release_stale_holds() -> None:
    """Tidying only: a hold past its expiry already counts for nothing."""
    from webapp.domain import ledger

    released = _in_app(ledger.release_stale_holds)
    if released:
        log.info(
            "holds: %s accounts, %s credits released",
            len(released),
            sum(credits for _, credits in released),
        )


@huey.periodic_task(crontab(minute="17"))
def reconcile_hourly() -> None:
    from webapp.domain import reconcile

    report = _in_app(reconcile.reconcile)
    log.info("reconcile: %s", report.summary())


@huey.periodic_task(crontab(minute="41", hour="3"))
def compact_totals_daily() -> None:
    from webapp.domain import ledger

    log.info("totals: folded %s rows", _in_app(ledger.totals_upkeep.compact))


def run_consumer(threads: int) -> None:
    """Run the queue consumer in the foreground until stopped.

    SIGTERM (and SIGINT) stop gracefully: the job at hand finishes, nothing new starts;
    a job cut off harder (SIGKILL) keeps its lease until it runs out, then the sweep
    hands it to another worker.
    """
    consumer = huey.create_consumer(
        workers=threads,
        worker_type="thread",
        periodic=True,
        graceful_signal="TERM",
        initial_delay=0.1,
        backoff=1.15,
        max_delay=2.0,
        check_worker_health=True,
    )
    consumer.run()
