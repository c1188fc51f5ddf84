"""API keys: minted once, stored only as a SHA-256 hash, looked up by that hash."""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa

from webapp.domain.errors import NotFoundError
from webapp.domain.transaction import atomic
from webapp.extensions import db
from webapp.models import ApiKey
from webapp.models.types import utcnow

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
    """The user and key behind a presented secret, or None if unknown or revoked."""
    if not secret.startswith(KEY_PREFIX) or len(secret) > 200:
        return None
    row = db.session.execute(_BY_HASH, {"key_hash": hash_key(secret)}).first()
    if row is None:
        return None
    key_id, user_id, prefix, last_used_at = row
    _touch(key_id, last_used_at)
    return Caller(user_id, key_id, prefix)


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


def _touch(key_id: int, last_used_at) -> None:
    """Record the use (at most once per LAST_USED_RESOLUTION); commits on its own."""
    now = utcnow()
    if last_used_at is not None and now - last_used_at < LAST_USED_RESOLUTION:
        return
    with atomic():
        db.session.execute(_TOUCH, {"key_id": key_id, "now": now})
