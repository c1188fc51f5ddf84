"""Background work: recorded with its cause, claimed under a lease, retried with back-off.

The jobs table is the truth and the queue (webapp/worker.py) is only a doorbell: a row
is written in the same transaction as whatever caused it, the doorbell rings after that
commit, and a worker claims the row with one conditional UPDATE, so any number of
workers on any hosts run each job once. A lost ring or a killed worker only delays a
job: the sweep rings again for rows left pending (or whose lease ran out).

A new kind of job is one function:

    @jobs.handler("charge_auto_recharge")
    def charge(job: jobs.Claimed) -> None: ...   # raise to retry later

and one call in the cause's transaction: `jobs.record("charge_auto_recharge",
f"charge:purchase:{purchase_id}", {"purchase_id": purchase_id}, user_id=user_id)`.

A job that raises is retried with back-off (30 s doubling, at most RETRY_MAX_SECONDS)
and failed for good after JOB_MAX_ATTEMPTS attempts; PermanentJobError fails it at once.
A kind whose handler ends its own work, because giving up has to change what the job
is for (a charge attempt left `pending` would block the account), registers with
`@jobs.handler(kind, retries_until_done=True)`: it is retried at the capped back-off
past JOB_MAX_ATTEMPTS until the handler returns (having given up itself, e.g. after a
deadline) or raises PermanentJobError. Such a handler must reach that end on its own.
"""

import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import Session

from webapp.domain import clock
from webapp.domain.errors import JobRunningError, NotFoundError
from webapp.domain.sql import ignoring_duplicates_sql, insert_ignoring_duplicates
from webapp.domain.transaction import atomic
from webapp.extensions import db
from webapp.models import AdminAction, Job, JobStatus

log = logging.getLogger(__name__)

RETRY_BASE_SECONDS = 30
RETRY_MAX_SECONDS = 3600


@dataclass(frozen=True)
class Claimed:
    """A job a worker holds the lease on."""

    id: int
    kind: str
    dedupe_key: str
    payload: dict[str, Any]
    attempts: int
    user_id: int | None


class PermanentJobError(Exception):
    """Raised by a handler when retrying cannot help: the job fails at once."""


HANDLERS: dict[str, Callable[[Claimed], None]] = {}
RETRIED_UNTIL_DONE: set[str] = set()


def handler(kind: str, *, retries_until_done: bool = False):
    """Register the function that does jobs of `kind` (see the module docstring).

    `retries_until_done`: JOB_MAX_ATTEMPTS does not apply; the handler ends its own work.
    """

    def register(func: Callable[[Claimed], None]) -> Callable[[Claimed], None]:
        HANDLERS[kind] = func
        if retries_until_done:
            RETRIED_UNTIL_DONE.add(kind)
        else:
            RETRIED_UNTIL_DONE.discard(kind)
        return func

    return register


# --- recording (joins the caller's transaction)


@dataclass(frozen=True)
class NewJob:
    """A job to record: what to do (`kind`, `payload`) and the cause naming it once."""

    kind: str
    dedupe_key: str
    payload: dict[str, Any]
    user_id: int | None = None

    def row(self) -> dict[str, Any]:
        now = clock.now()
        return {
            "kind": self.kind,
            "dedupe_key": self.dedupe_key[:255],
            "payload": self.payload,
            "user_id": self.user_id,
            "status": JobStatus.PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
            "updated_at": now,
        }


def record(
    kind: str, dedupe_key: str, payload: dict[str, Any], *, user_id: int | None = None
) -> bool:
    """Record work for after the caller's commit; False when `dedupe_key` exists already.

    Joins the caller's transaction: the job commits with its cause or not at all. The
    doorbell rings after that commit.
    """
    return record_job(NewJob(kind, dedupe_key, payload, user_id))


def record_job(job: NewJob) -> bool:
    """`record` for a NewJob."""
    job_id = insert_ignoring_duplicates(Job, job.row(), Job.dedupe_key, returning=Job.id)
    recorded(job_id)
    return job_id is not None


# PostgreSQL: the same insert as a step of a bigger statement, done only when the CTE
# `after` returned a row (the ledger's one-statement credit records its receipt this way).
_ROW_NAMES = tuple(NewJob("", "", {}).row())
_PREFIX = "j_"


def insert_after(after: str) -> sa.TextClause:
    """INSERT the job bound by `bound(job)` when CTE `after` has a row, RETURNING its id
    (nothing when the cause's job exists already)."""
    return ignoring_duplicates_sql(
        Job.__table__,
        _ROW_NAMES,
        (Job.dedupe_key,),
        Job.id,
        prefix=_PREFIX,
        only_if_rows_in=after,
    )


def bound(job: NewJob) -> dict[str, Any]:
    """The parameters of insert_after for `job`."""
    return {f"{_PREFIX}{name}": value for name, value in job.row().items()}


def recorded(job_id: int | None) -> None:
    """A job row this transaction inserted: its doorbell rings after the commit."""
    if job_id is not None:
        db.session.info.setdefault("jobs_to_ring", []).append(job_id)


@sa.event.listens_for(Session, "after_commit")
def _ring_committed(session: Session) -> None:
    for job_id in session.info.pop("jobs_to_ring", ()):
        ring(job_id)


@sa.event.listens_for(Session, "after_soft_rollback")
def _forget_rolled_back(session: Session, _previous) -> None:
    session.info.pop("jobs_to_ring", None)


def ring(job_id: int, delay: float | None = None) -> None:
    """Tell a worker to look at the job now (or after `delay` seconds). Never raises:
    a ring that does not get through only waits for the sweep."""
    from webapp import worker

    try:
        worker.ring(job_id, delay)
    except Exception:
        log.warning("could not enqueue job %s; the sweep will pick it up", job_id, exc_info=True)


# --- running (each step its own transaction; the work itself runs outside any)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"[:100]


def claim(job_id: int, worker: str) -> Claimed | None:
    """Take the job's lease if it is pending, due and not leased by a live worker; commits."""
    now = clock.now()
    lease = now + timedelta(seconds=current_app.config["JOB_LEASE_SECONDS"])
    columns = Job.__table__.c
    with atomic():
        row = db.session.execute(
            sa.update(Job.__table__)
            .where(
                columns.id == job_id,
                columns.status == JobStatus.PENDING,
                columns.next_attempt_at <= now,
                sa.or_(columns.locked_until.is_(None), columns.locked_until < now),
            )
            .values(
                locked_until=lease, claimed_by=worker, attempts=columns.attempts + 1, updated_at=now
            )
            .returning(
                columns.id,
                columns.kind,
                columns.dedupe_key,
                columns.payload,
                columns.attempts,
                columns.user_id,
            )
        ).first()
    return Claimed(*row) if row is not None else None


def run(job_id: int, worker: str | None = None) -> str | None:
    """Claim and do one job; returns its status after, or None when it was not claimable."""
    worker = worker or worker_name()
    job = claim(job_id, worker)
    if job is None:
        return None
    try:
        do = HANDLERS.get(job.kind)
        if do is None:
            raise PermanentJobError(f"no handler for job kind {job.kind!r}")
        do(job)
    except Exception as exc:
        db.session.rollback()
        return _record_failure(job, worker, exc)
    _finish(job, worker, status=JobStatus.DONE, error=None, next_at=None)
    return JobStatus.DONE


def _record_failure(job: Claimed, worker: str, exc: Exception) -> str:
    error = f"{type(exc).__name__}: {exc}"[:2000]
    final = isinstance(exc, PermanentJobError) or (
        job.kind not in RETRIED_UNTIL_DONE
        and job.attempts >= current_app.config["JOB_MAX_ATTEMPTS"]
    )
    if final:
        log.error(
            "job %s (%s) failed for good after %s attempts: %s",
            job.id,
            job.kind,
            job.attempts,
            error,
        )
        _finish(job, worker, status=JobStatus.FAILED, error=error, next_at=None)
        return JobStatus.FAILED
    wait = min(RETRY_BASE_SECONDS * 2 ** (job.attempts - 1), RETRY_MAX_SECONDS)
    log.warning(
        "job %s (%s) attempt %s failed, retrying in %ss: %s",
        job.id,
        job.kind,
        job.attempts,
        wait,
        error,
    )
    _finish(
        job,
        worker,
        status=JobStatus.PENDING,
        error=error,
        next_at=clock.now() + timedelta(seconds=wait),
    )
    ring(job.id, delay=wait)
    return JobStatus.PENDING


def _finish(job: Claimed, worker: str, *, status: str, error: str | None, next_at) -> None:
    """Settle a job this worker holds; a lease lost to another worker changes nothing."""
    now = clock.now()
    values: dict[str, Any] = {
        "status": status,
        "locked_until": None,
        "claimed_by": None,
        "updated_at": now,
        "last_error": error,
    }
    if next_at is not None:
        values["next_attempt_at"] = next_at
    if status == JobStatus.DONE:
        values["done_at"] = now
    with atomic():
        db.session.execute(
            sa.update(Job).where(Job.id == job.id, Job.claimed_by == worker).values(values)
        )


def _runnable(now, older_than: timedelta = timedelta(0)) -> sa.Select:
    return (
        sa.select(Job.id)
        .where(
            Job.status == JobStatus.PENDING,
            Job.next_attempt_at <= now - older_than,
            sa.or_(Job.locked_until.is_(None), Job.locked_until < now),
        )
        .order_by(Job.id)
    )


def run_due(limit: int = 500) -> int:
    """Do every job that is due now, here (tests and `flask jobs run`); returns how many ran."""
    ids = db.session.scalars(_runnable(clock.now()).limit(limit)).all()
    db.session.rollback()
    return sum(1 for job_id in ids if run(job_id) is not None)


def sweep(limit: int = 1000) -> int:
    """Ring again for jobs left pending: a lost ring, a restarted queue, a killed worker.

    Only rows due for JOB_SWEEP_AFTER_SECONDS (their first ring had its chance) or whose
    lease ran out; a ring too many is harmless, the claim decides. Returns how many.
    """
    after = timedelta(seconds=current_app.config["JOB_SWEEP_AFTER_SECONDS"])
    ids = db.session.scalars(_runnable(clock.now(), after).limit(limit)).all()
    db.session.rollback()
    for job_id in ids:
        ring(job_id)
    if ids:
        log.info("sweep: rang again for %s pending jobs", len(ids))
    return len(ids)


# --- admin


def retry(admin_id: int, job_id: int) -> Job:
    """Put a failed (or waiting) job back in line now, audited; commits. NotFoundError for
    an unknown job or one that is done; JobRunningError for one a worker is running (its
    lease not run out): clearing that lease would let a second worker run it too."""
    with atomic():
        job = db.session.scalars(
            sa.select(Job)
            .where(Job.id == job_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).first()
        if job is None or job.status == JobStatus.DONE:
            raise NotFoundError("No such job waiting or failed.")
        if job.locked_until is not None and job.locked_until > clock.now():
            raise JobRunningError("A worker is running this job now; it finishes or is retried.")
        before = f"{job.status}, {job.attempts} attempts"
        job.status, job.attempts, job.next_attempt_at = JobStatus.PENDING, 0, clock.now()
        job.locked_until = job.claimed_by = None
        job.updated_at = clock.now()
        db.session.add(
            AdminAction(
                admin_id=admin_id,
                action="retry_job",
                target_type="job",
                target_id=job.id,
                details=f"{job.kind} {job.dedupe_key} (was {before})",
            )
        )
        db.session.info.setdefault("jobs_to_ring", []).append(job.id)
    return job


def counts() -> dict[str, int]:
    rows = db.session.execute(sa.select(Job.status, sa.func.count()).group_by(Job.status))
    return {status: count for status, count in rows}
