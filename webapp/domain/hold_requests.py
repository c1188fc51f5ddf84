"""Holds through the API: each call's answer (status and JSON body), Idempotency-Key replays."""

from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

from webapp.domain import ledger
from webapp.domain.errors import (
    CaptureExceedsHoldError,
    HoldNotOpenError,
    InsufficientCreditsError,
    NotFoundError,
)
from webapp.domain.usage import UsageAnswer, idempotent, request_hash
from webapp.extensions import db


def place(
    user_id: int,
    credits: int,
    expires_in: int,
    description: str,
    *,
    idempotency_key: str | None = None,
    api_key_id: int | None = None,
) -> UsageAnswer:
    """POST /holds: 201 with the hold and the account's figures, or 402; commits."""
    fingerprint = request_hash(
        {"op": "hold", "credits": credits, "expires_in": expires_in, "description": description}
    )

    def work() -> Any:
        return ledger.place_hold(
            user_id,
            credits,
            expires_in=expires_in,
            description=description,
            api_key_id=api_key_id,
        )

    return idempotent(user_id, idempotency_key, fingerprint, lambda: _answer(201, work))


def capture(
    user_id: int,
    hold_id: str,
    credits: int | None,
    *,
    idempotency_key: str | None = None,
    api_key_id: int | None = None,
) -> UsageAnswer:
    """POST /holds/<id>/capture: 200, or 400/402/404/409 with the contract's error; commits."""
    fingerprint = request_hash({"op": "capture", "hold": hold_id, "credits": credits})

    def work() -> Any:
        return ledger.capture_hold(user_id, hold_id, credits, api_key_id=api_key_id)

    return idempotent(user_id, idempotency_key, fingerprint, lambda: _answer(200, work))


def release(user_id: int, hold_id: str) -> UsageAnswer:
    """POST /holds/<id>/release: 200, or 404/409; commits."""
    return _answer(200, lambda: ledger.release_hold(user_id, hold_id))


def show(user_id: int, hold_id: str) -> UsageAnswer:
    try:
        return UsageAnswer(200, ledger.hold_json(ledger.find_hold(user_id, hold_id)))
    except NotFoundError:
        return _not_found()


def _answer(status: int, work: Callable[[], dict[str, Any]]) -> UsageAnswer:
    """The call's answer; a refusal rolls back whatever the call wrote (a savepoint, as
    the call may run inside an Idempotency-Key transaction that still commits)."""
    try:
        with _savepoint_when_nested():
            return UsageAnswer(status, work())
    except InsufficientCreditsError as exc:
        return UsageAnswer(402, {"error": "insufficient_credits", "available": exc.available})
    except CaptureExceedsHoldError as exc:
        return UsageAnswer(400, {"error": "capture_exceeds_hold", "message": str(exc)})
    except HoldNotOpenError as exc:
        return UsageAnswer(409, {"error": exc.error, "message": str(exc)})
    except NotFoundError:
        return _not_found()


@contextmanager
def _savepoint_when_nested():
    """Alone, the ledger call is its own transaction and rolls back by itself."""
    if db.session.info.get("atomic_depth", 0) == 0:
        yield
        return
    with db.session.begin_nested():
        yield


def _not_found() -> UsageAnswer:
    return UsageAnswer(404, {"error": "not_found", "message": "No such hold."})
