"""API keys: minted once, stored only as a SHA-256 hash, looked up by that hash."""

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from webapp.domain.errors import NotFoundError
from webapp.domain.transaction import atomic
from webapp.extensions import db
from webapp.models import ApiKey
from webapp.models.types import utcnow

log = logging.getLogger(__name__)

KEY_PREFIX = "csk_"
# How much of the key lists show, so people can tell their keys apart.
SHOWN_PREFIX_LENGTH = len(KEY_PREFIX) + 8
# last_used_at is refreshed at most this often, so a busy key does not write per request.
LAST_USED_RESOLUTION = timedelta(seconds=60)


@dataclass(frozen=True)
class MintedKey:
    api_key: ApiKey
    secret: str  # the whole key; shown once, never stored


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def mint(user_id: int, label: str = "") -> MintedKey:
    """A new key for the user; commits. Only its hash and first characters are kept."""
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    with atomic():
        api_key = ApiKey(
            user_id=user_id,
            label=(label or "").strip()[:100],
            prefix=secret[:SHOWN_PREFIX_LENGTH],
            key_hash=hash_key(secret),
        )
        db.session.add(api_key)
    return MintedKey(api_key, secret)


def keys_for(user_id: int) -> list[ApiKey]:
    return list(
        db.session.scalars(
            sa.select(ApiKey).where(ApiKey.user_id == user_id).order_by(ApiKey.id.desc())
        )
    )


def revoke(user_id: int, key_id: int) -> ApiKey:
    """Revoke one of the user's keys (idempotent); commits. NotFoundError if not theirs."""
    with atomic():
        api_key = db.session.scalar(
            sa.select(ApiKey).where(ApiKey.id == key_id, ApiKey.user_id == user_id)
        )
        if api_key is None:
            raise NotFoundError("No such API key.")
        if api_key.revoked_at is None:
            api_key.revoked_at = utcnow()
    return api_key


@dataclass(frozen=True)
class Caller:
    """Whom a presented key speaks for: the user's id and the key's id and shown prefix."""

    user_id: int
    key_id: int
    prefix: str


def authenticate(secret: str) -> Caller | None:
    """The user and key behind a presented secret, or None if unknown or revoked.

    The key's last use is recorded at most once per LAST_USED_RESOLUTION, with whatever
    the request commits next (call record_use_if_pending when the request ends)."""
    if not secret.startswith(KEY_PREFIX) or len(secret) > 200:
        return None
    row = db.session.execute(_BY_HASH, {"key_hash": hash_key(secret)}).first()
    if row is None:
        return None
    key_id, user_id, prefix, last_used_at = row
    now = utcnow()
    if last_used_at is None or now - last_used_at >= LAST_USED_RESOLUTION:
        db.session.info[_USE_TO_RECORD] = {"key_id": key_id, "now": now}
    return Caller(user_id, key_id, prefix)


def record_use_if_pending() -> None:
    """At the end of an API request: a key's use its work did not commit (a read, a
    refusal) is recorded in a transaction of its own."""
    use = forget_pending_use()
    if use is None:
        return
    try:
        with atomic():
            db.session.execute(_TOUCH, use)
    except sa.exc.SQLAlchemyError:  # only bookkeeping: never what the caller gets
        log.warning("could not record an API key's last use", exc_info=True)


def forget_pending_use() -> dict | None:
    """Drop (and return) a key's use not recorded yet: the request is over."""
    return db.session.info.pop(_USE_TO_RECORD, None)


# Built once: its cache key is memoised, so every API call skips building and hashing it.
# Plain columns, no ORM objects: loading a User and an ApiKey cost more than the debit.
_KEYS = ApiKey.__table__.c
_BY_HASH = sa.select(_KEYS.id, _KEYS.user_id, _KEYS.prefix, _KEYS.last_used_at).where(
    _KEYS.key_hash == sa.bindparam("key_hash"), _KEYS.revoked_at.is_(None)
)
_TOUCH = (
    sa.update(ApiKey.__table__)
    .where(_KEYS.id == sa.bindparam("key_id"))
    .values(last_used_at=sa.bindparam("now", type_=_KEYS.last_used_at.type))
)
_USE_TO_RECORD = "api_keys.use_to_record"


@sa.event.listens_for(Session, "before_commit")
def _record_use_at_commit(session: Session) -> None:
    """The key's last use rides on the request's own commit: a transaction of its own
    cost more than the debit it came with (and its row lock is held only this long)."""
    use = session.info.pop(_USE_TO_RECORD, None)
    if use is not None:
        session.execute(_TOUCH, use)
