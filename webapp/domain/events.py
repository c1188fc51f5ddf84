"""Recording Stripe events: each event id is handled once, failures are kept for review."""

import functools
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from webapp.domain.sql import is_postgresql
from webapp.domain.transaction import atomic
from webapp.extensions import db
from webapp.models import EventOutcome, StripeEvent
from webapp.models.types import UTCDateTime, utcnow

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], str]
# Claims the event and handles it in one statement where it can: returns DUPLICATE,
# EventOutcome.PROCESSED, CLAIMED (claimed, the handler still has to run) or None (no
# fast path for this event: nothing was done).
FastPath = Callable[[dict[str, Any]], str | None]
DUPLICATE = "duplicate"
CLAIMED = "claimed"


def process_event(event: dict[str, Any], handle: Handler, fast_path: FastPath | None = None) -> str:
    """Handle a verified event exactly once; returns its outcome.

    The event row is claimed (inserted, or a failed one taken back) in the same
    transaction as the handling, so a concurrent or later delivery of the same id
    waits or finds it done. When handling raises, everything rolls back, the failure
    is recorded in a transaction of its own, and the exception propagates.
    """
    try:
        with atomic():
            done = fast_path(event) if fast_path is not None else None
            if done in (DUPLICATE, EventOutcome.PROCESSED):
                return done
            if done is None and not _claim(event):
                return DUPLICATE
            outcome = handle(event)
            if outcome != EventOutcome.PROCESSED:
                _set_outcome(event["id"], outcome)
            return outcome
    except Exception as exc:
        _record_failure(event, exc)
        raise


def _insert(values: dict[str, Any]):
    insert = postgresql.insert if is_postgresql() else sqlite.insert
    return insert(StripeEvent).values(values)


# Plain SQL that SQLite and PostgreSQL both accept: the dialects' upsert constructs are not
# cacheable, and compiling one on every delivery cost more than the rest of the webhook.
# The webhook's fast path reuses it as the first step of one statement (claim_and_run).
CLAIM_SQL = (
    "INSERT INTO stripe_events (stripe_event_id, type, object_id, outcome, attempts,"
    " stripe_created_at, received_at, processed_at)"
    " VALUES (:stripe_event_id, :type, :object_id, :outcome, 1, :stripe_created_at,"
    " :received_at, :processed_at)"
    " ON CONFLICT (stripe_event_id) DO UPDATE SET outcome = excluded.outcome, error = NULL,"
    " processed_at = excluded.processed_at, attempts = stripe_events.attempts + 1"
    " WHERE stripe_events.outcome = :failed RETURNING id"
)
CLAIM_TYPES = tuple(
    sa.bindparam(name, type_=UTCDateTime)
    for name in ("stripe_created_at", "received_at", "processed_at")
)
_CLAIM = sa.text(CLAIM_SQL).bindparams(*CLAIM_TYPES)


@functools.cache
def _claiming(build: Callable[..., sa.Update | sa.Select]) -> sa.Select:
    """WITH claim AS (CLAIM_SQL), done AS (build(only_if=claim)) SELECT claim, done's row."""
    claim = _CLAIM.columns(sa.column("id", sa.BigInteger)).cte("claim")
    done = build(only_if=claim).cte("done")
    return sa.select(claim.c.id.label("claimed"), *done.c).select_from(
        claim.outerjoin(done, sa.true())
    )


def claim_and_run(
    event: dict[str, Any], build: Callable[..., sa.Update | sa.Select], params: dict[str, Any]
) -> tuple[bool, sa.Row | None]:
    """PostgreSQL: claim the event and run `build(only_if=claim)` in ONE statement.

    `build` returns an UPDATE ... RETURNING (or a SELECT over such steps) that changes
    nothing unless the claim CTE has a row. Returns (claimed, its returned row or None),
    in the caller's transaction. Not claimed: the event was handled before.
    """
    row = db.session.execute(_claiming(build), {**claim_params(event), **params}).first()
    if row is None:
        return False, None
    done = row[1:]
    return True, (row if done[0] is not None else None)


def claim_params(event: dict[str, Any]) -> dict[str, Any]:
    """The values CLAIM_SQL binds for this event."""
    return {**_event_row(event, EventOutcome.PROCESSED, utcnow()), "failed": EventOutcome.FAILED}


def _claim(event: dict[str, Any]) -> bool:
    """Insert the event as processed, or take back a failed one; False when already done."""
    return db.session.execute(_CLAIM, claim_params(event)).first() is not None


def _event_row(event: dict[str, Any], outcome: str, now: datetime) -> dict[str, Any]:
    created = event.get("created")
    return {
        "stripe_event_id": event["id"],
        "type": event["type"][:100],
        "object_id": str(event["data"]["object"].get("id", ""))[:255] or None,
        "outcome": outcome,
        "received_at": now,
        "processed_at": now,
        "stripe_created_at": (
            datetime.fromtimestamp(created, UTC) if isinstance(created, int) else None
        ),
    }


def _set_outcome(event_id: str, outcome: str) -> None:
    db.session.execute(_SET_OUTCOME, {"event_id": event_id, "outcome": outcome})


_EVENTS = StripeEvent.__table__.c
_SET_OUTCOME = (
    sa.update(StripeEvent.__table__)
    .where(_EVENTS.stripe_event_id == sa.bindparam("event_id"))
    .values(outcome=sa.bindparam("outcome"))
)


def _record_failure(event: dict[str, Any], exc: Exception) -> None:
    error = f"{type(exc).__name__}: {exc}"[:2000]
    log.exception("stripe event %s (%s) failed", event["id"], event["type"])
    try:
        with atomic():
            stmt = _insert(
                {
                    **_event_row(event, EventOutcome.FAILED, utcnow()),
                    "error": error,
                    "processed_at": None,
                }
            )
            db.session.execute(
                stmt.on_conflict_do_update(
                    index_elements=[StripeEvent.stripe_event_id],
                    set_={"error": error, "attempts": StripeEvent.attempts + 1},
                    where=StripeEvent.outcome == EventOutcome.FAILED,
                )
            )
    except Exception:  # the database itself may be what failed
        log.exception("could not record the failure of stripe event %s", event["id"])
