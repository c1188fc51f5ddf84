"""Users: creating them with their credit accounts, passwords, logging in, sessions, links mailed."""

import hashlib
import time
from dataclasses import dataclass
from functools import cache

import sqlalchemy as sa
from flask import current_app
from itsdangerous import BadData, URLSafeTimedSerializer
from werkzeug.security import check_password_hash, generate_password_hash

from webapp.domain import ledger, notices
from webapp.domain.errors import DomainError
from webapp.domain.transaction import atomic
from webapp.extensions import db
from webapp.models import User, normalize_email
from webapp.models.types import utcnow

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 200
PASSWORD_RULE = (
    f"At least {MIN_PASSWORD_LENGTH} characters; not your email address "
    "and not a commonly used password."
)
RESET_LINK_SECONDS = 3600
VERIFY_LINK_SECONDS = 7 * 24 * 3600
_RESET_SALT = "password-reset"
_VERIFY_SALT = "verify-email"


class EmailTakenError(DomainError):
    pass


class InvalidLinkError(DomainError):
    """A reset or verification link that is forged, expired or already used."""


class WrongPasswordError(DomainError):
    pass


def get(user_id: int) -> User | None:
    return db.session.get(User, user_id)


def find_by_email(email: str) -> User | None:
    return db.session.scalar(sa.select(User).where(User.email == normalize_email(email)))


def authenticate(email: str, password: str) -> User | None:
    """The user with this email and password, else None.

    An unknown email still checks the password against a hash of the same kind, so the
    answer takes as long either way and does not tell which addresses have accounts.
    """
    user = find_by_email(email)
    if user is None:
        check_password_hash(_dummy_hash(_hash_method()), password)
        return None
    return user if user.check_password(password) else None


def _hash_method() -> str:
    return current_app.config.get("PASSWORD_HASH_METHOD", "scrypt")


@cache
def _dummy_hash(method: str) -> str:
    return generate_password_hash("no account has this password", method=method)


@cache
def _common_passwords() -> frozenset[str]:
    # zxcvbn ships the 30,000 most common passwords from public breach lists.
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def password_problem(password: str, email: str = "") -> str | None:
    """Why this password may not be used (a sentence for the form), or None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"Use at least {MIN_PASSWORD_LENGTH} characters."
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"Use at most {MAX_PASSWORD_LENGTH} characters."
    lowered = password.strip().lower()
    email = normalize_email(email or "")
    if email and lowered in {email, email.split("@")[0]}:
        return "Your password must not be your email address."
    if lowered in _common_passwords():
        return "That password is too common: it is among the first guesses attackers try."
    return None


def create_user(
    email: str, password: str, *, is_admin: bool = False, verified: bool = False
) -> User:
    """A new user with an empty credit account; commits. EmailTakenError if taken.

    Unless `verified` (users an operator creates), a verification mail is recorded in
    the same transaction.
    """
    email = normalize_email(email)
    user = User(email=email, is_admin=is_admin, email_verified_at=utcnow() if verified else None)
    user.set_password(password)  # first, so a taken address answers no faster
    if find_by_email(email) is not None:
        raise EmailTakenError("An account with that email already exists.")
    try:
        with atomic():
            db.session.add(user)
            db.session.flush()
            ledger.open_account(user.id)
            if not verified:
                notices.verify_email(user.id, "signup")
    except sa.exc.IntegrityError as exc:  # a concurrent signup won the race
        raise EmailTakenError("An account with that email already exists.") from exc
    return user


def make_admin(email: str, password: str | None) -> tuple[User, bool]:
    """Grant the admin role, creating the user when needed; returns (user, created)."""
    user = find_by_email(email)
    if user is None:
        if not password:
            raise DomainError("No such user: give --password to create one.")
        return create_user(email, password, is_admin=True, verified=True), True
    with atomic():
        user.is_admin = True
        if password:
            _set_password(user, password)
    return user, False


# --- sessions: each carries "<user id>.<session version>" (User.get_id)


def user_for_session(session_id: str) -> User | None:
    """The user a session belongs to, or None when that session has been ended."""
    user_id, dot, version = session_id.partition(".")
    if not dot:
        version = "0"  # a session signed before versions existed: valid until sessions end
    if not (user_id.isdigit() and version.isdigit()) or len(user_id) > 18 or len(version) > 9:
        return None
    user = db.session.get(User, int(user_id))
    if user is None or user.session_version != int(version):
        return None
    return user


def end_sessions(user: User) -> None:
    """End every session of this user, on every device; commits (or joins the caller's).

    Logout calls it; so does a password change, which then calls `login_user(user)` to
    keep only the session that made the change.
    """
    with atomic():
        db.session.execute(
            sa.update(User)
            .where(User.id == user.id)
            .values(session_version=User.session_version + 1)
        )
        db.session.refresh(user, ["session_version"])


def _set_password(user: User, password: str) -> None:
    user.set_password(password)
    db.session.flush()
    end_sessions(user)


def change_password(user: User, current_password: str, new_password: str) -> None:
    """Set a new password when the current one is right; ends all sessions; commits.

    WrongPasswordError changes nothing. The caller logs this session in again.
    """
    if not user.check_password(current_password):
        raise WrongPasswordError("Your current password is not right.")
    with atomic():
        _set_password(user, new_password)
        notices.password_changed(user.id)


# --- links mailed to the user


def _serializer(salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=salt)


def _password_fingerprint(user: User) -> str:
    # The link names the password it may replace: any change of password ends it.
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:20]


def reset_token(user: User) -> str:
    return _serializer(_RESET_SALT).dumps([user.id, _password_fingerprint(user)])


def verification_token(user: User) -> str:
    return _serializer(_VERIFY_SALT).dumps([user.id, user.email])


def _load(token: str, salt: str, max_age: int) -> list:
    try:
        data = _serializer(salt).loads(token, max_age=max_age)
    except BadData as exc:
        raise InvalidLinkError("This link has expired or was already used.") from exc
    if not (isinstance(data, list) and len(data) == 2 and isinstance(data[0], int)):
        raise InvalidLinkError("This link has expired or was already used.")
    return data


def _locked_user(user_id: int) -> User | None:
    return db.session.scalars(
        sa.select(User)
        .where(User.id == user_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()


def user_for_reset_token(token: str) -> User:
    """The user a reset link is for; InvalidLinkError when expired, used or forged."""
    user_id, fingerprint = _load(token, _RESET_SALT, RESET_LINK_SECONDS)
    user = db.session.get(User, user_id)
    if user is None or _password_fingerprint(user) != fingerprint:
        raise InvalidLinkError("This link has expired or was already used.")
    return user


def reset_password(token: str, password: str) -> User:
    """Set the password from a reset link, once; ends all sessions; commits.

    The user row is locked and the link checked again, so two uses at once set the
    password once and the other gets InvalidLinkError.
    """
    user_id, fingerprint = _load(token, _RESET_SALT, RESET_LINK_SECONDS)
    with atomic():
        user = _locked_user(user_id)
        if user is None or _password_fingerprint(user) != fingerprint:
            raise InvalidLinkError("This link has expired or was already used.")
        _set_password(user, password)
        notices.password_changed(user.id)
    return user


def verify_email(token: str) -> User:
    """Mark the address in a verification link verified; commits. InvalidLinkError."""
    user_id, email = _load(token, _VERIFY_SALT, VERIFY_LINK_SECONDS)
    with atomic():
        user = _locked_user(user_id)
        if user is None or user.email != email:
            raise InvalidLinkError("This link has expired or is not for this account.")
        if user.email_verified_at is None:
            user.email_verified_at = utcnow()
    return user


def request_password_reset(email: str) -> None:
    """Record a reset mail for whoever owns `email`, if anyone; commits.

    The same work whether or not the address has an account (the worker looks the
    address up), so neither the answer nor its timing tells them apart. At most one
    mail per address a minute.
    """
    digest = hashlib.sha256(normalize_email(email).encode()).hexdigest()[:32]
    with atomic():
        notices.password_reset(normalize_email(email), f"{digest}:{int(time.time()) // 60}")


def resend_verification(user: User) -> bool:
    """Record another verification mail (at most one a minute); commits. False if verified."""
    if user.email_verified_at is not None:
        return False
    with atomic():
        notices.verify_email(user.id, f"resend:{int(time.time()) // 60}")
    return True


# --- notification preferences


@dataclass(frozen=True)
class Preferences:
    low_balance: bool
    auto_recharge: bool
    renewals: bool
    low_balance_threshold: int


def preferences(user: User) -> Preferences:
    threshold = user.low_balance_threshold
    if threshold is None:
        threshold = current_app.config["LOW_BALANCE_THRESHOLD"]
    return Preferences(
        user.notify_low_balance, user.notify_auto_recharge, user.notify_renewals, threshold
    )


def save_preferences(user: User, prefs: Preferences) -> None:
    """Store which optional mail the user wants; commits. Threshold in credits, 0 = off."""
    if prefs.low_balance_threshold < 0:
        raise DomainError("The threshold is a number of credits, 0 or more.")
    with atomic():
        user.notify_low_balance = prefs.low_balance
        user.notify_auto_recharge = prefs.auto_recharge
        user.notify_renewals = prefs.renewals
        user.low_balance_threshold = prefs.low_balance_threshold
