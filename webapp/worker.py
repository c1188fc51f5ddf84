"""The background worker: a Huey queue that only rings the doorbell, and the periodic upkeep.

Huey keeps the queue in Redis (REDIS_URL; production) or in a SQLite file under
instance/ (development: `make run` needs no service). What to do is always read from
the jobs table (domain/jobs.py), so a lost message or a restarted Redis delays work and
never loses or doubles it. The Flask app is bound by init_app, never created here.
"""

import logging

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
    """Enqueue a look at job `job_id` (after `delay` seconds)."""
    if delay:
        run_job.schedule(args=(job_id,), delay=delay)
    else:
        run_job(job_id)


def _in_app(func, *args):
    if _app is None:
        raise RuntimeError("webapp.worker.init_app was not called")
    with _app.app_context():
        return func(*args)


@huey.task(retries=0)
def run_job(job_id: int) -> None:
    from webapp.domain import jobs

    _in_app(jobs.run, job_id)


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
