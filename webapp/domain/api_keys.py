"""API keys: minted once, stored only as a SHA-256 hash, looked up by that hash."""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa

from webapp.domain.errors import NotFoundError
from webapp.domain.transaction import atomic
from webapp.extensions import db
from webapp.models import ApiKey, User
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


def authenticate(secret: str) -> tuple[User, ApiKey] | None:
    """The user and key behind a presented secret, or None if unknown or revoked."""
    if not secret.startswith(KEY_PREFIX) or len(secret) > 200:
        return None
    row = db.session.execute(_BY_HASH, {"key_hash": hash_key(secret)}).first()
    if row is None:
        return None
    user, api_key = row
    _touch(api_key)
    return user, api_key


# Built once: its cache key is memoised, so every API call skips building and hashing it.
_BY_HASH = (
    sa.select(User, ApiKey)
    .join(ApiKey, ApiKey.user_id == User.id)
    .where(ApiKey.key_hash == sa.bindparam("key_hash"), ApiKey.revoked_at.is_(None))
)

_KEYS = ApiKey.__table__.c
_TOUCH = (
    sa.update(ApiKey.__table__)
    .where(_KEYS.id == sa.bindparam("key_id"))
    .values(last_used_at=sa.bindparam("now", type_=_KEYS.last_used_at.type))
)


def _touch(api_key: ApiKey) -> None:
    """Record the use (at most once per LAST_USED_RESOLUTION); commits on its own.

    The user and key just loaded stay loaded across that commit: expiring them would cost
    the request another round trip to read back what this UPDATE did not change.
    """
    now = utcnow()
    if api_key.last_used_at is not None and now - api_key.last_used_at < LAST_USED_RESOLUTION:
        return
    session = db.session()
    expire_on_commit, session.expire_on_commit = session.expire_on_commit, False
    try:
        with atomic():
            db.session.execute(_TOUCH, {"key_id": api_key.id, "now": now})
    finally:
        session.expire_on_commit = expire_on_commit
    sa.orm.attributes.set_committed_value(api_key, "last_used_at", now)
