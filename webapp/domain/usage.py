"""Spending credits through the API, with Idempotency-Key replays of the first answer."""

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from webapp.domain import ledger
from webapp.domain.errors import IdempotencyKeyReusedError, InsufficientCreditsError
from webapp.domain.transaction import atomic
from webapp.extensions import db
from webapp.models import UsageRequest

MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class UsageAnswer:
    status: int  # 200, or 402 when the balance was short
    body: dict[str, Any]
    replayed: bool = False


def spend(
    user_id: int,
    credits: int,
    description: str,
    *,
    idempotency_key: str | None = None,
    reference: str | None = None,
    api_key_id: int | None = None,
) -> UsageAnswer:
    """Debit `credits` (>= 1) for usage; commits. A short available balance is a 402 answer.

    `api_key_id` is the key that spent them (recorded on the ledger row). With an
    idempotency key the first answer is replayed (see `idempotent`).
    """
    request_hash = _request_hash(credits, description)
    return idempotent(
        user_id,
        idempotency_key,
        request_hash,
        lambda: _debit(user_id, credits, description, reference, api_key_id),
    )


def idempotent(
    user_id: int, key: str | None, request_hash: str, work: Callable[[], UsageAnswer]
) -> UsageAnswer:
    """Run `work` once per (user, Idempotency-Key); commits.

    The answer and the work commit together in one transaction; the same key again
    replays that answer and does nothing, and the same key with a different request
    (`request_hash`) raises IdempotencyKeyReusedError. Two requests racing with one key
    meet at the unique (user_id, key): the loser's work rolls back and it replays the
    winner's answer. Without a key, `work` just runs.
    """
    if key is None:
        return work()
    stored = _stored(user_id, key)
    if stored is not None:
        return _replay(stored, request_hash)
    try:
        with atomic():
            answer = work()
            db.session.add(
                UsageRequest(
                    user_id=user_id,
                    idempotency_key=key,
                    request_hash=request_hash,
                    response_status=answer.status,
                    response_body=json.dumps(answer.body),
                )
            )
            db.session.flush()
    except sa.exc.IntegrityError:
        stored = _stored(user_id, key)
        if stored is None:
            raise
        return _replay(stored, request_hash)
    return answer


def _debit(
    user_id: int, credits: int, description: str, reference: str | None, api_key_id: int | None
) -> UsageAnswer:
    try:
        balance = ledger.debit_usage(
            user_id, credits, description, reference=reference, api_key_id=api_key_id
        )
    except InsufficientCreditsError as exc:
        return UsageAnswer(
            402,
            {
                "error": "insufficient_credits",
                "balance": exc.balance,
                "available": ledger.available_credits(user_id),
            },
        )
    return UsageAnswer(200, {"balance": balance})


def _stored(user_id: int, key: str) -> UsageRequest | None:
    return db.session.scalar(
        sa.select(UsageRequest).where(
            UsageRequest.user_id == user_id, UsageRequest.idempotency_key == key
        )
    )


def _replay(stored: UsageRequest, request_hash: str) -> UsageAnswer:
    if stored.request_hash != request_hash:
        raise IdempotencyKeyReusedError("This Idempotency-Key was used with a different body.")
    return UsageAnswer(stored.response_status, json.loads(stored.response_body), replayed=True)


def _request_hash(credits: int, description: str) -> str:
    return request_hash({"credits": credits, "description": description})


def request_hash(request: dict[str, Any]) -> str:
    """A fingerprint of a request's meaning, to tell a retry from a reused key."""
    canonical = json.dumps(request, sort_keys=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
