"""Users: creating them with their credit accounts, passwords, logging in, sessions."""

from functools import cache

import sqlalchemy as sa
from flask import current_app
from werkzeug.security import check_password_hash, generate_password_hash

from webapp.domain import ledger
from webapp.domain.errors import DomainError
from webapp.domain.transaction import atomic
from webapp.extensions import db
from webapp.models import User, normalize_email

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 200
PASSWORD_RULE = (
    f"At least {MIN_PASSWORD_LENGTH} characters; not your email address "
    "and not a commonly used password."
)


class EmailTakenError(DomainError):
    pass


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


# --- sessions: each carries "<user id>.<session version>" (User.get_id)


def user_for_session(session_id: str) -> User | None:
    """The user a session belongs to, or None when that session has been ended."""
    user_id, _, version = session_id.partition(".")
    if not (user_id.isdigit() and version.isdigit()) or len(user_id) > 18:
        return None
    user = db.session.get(User, int(user_id))
    if user is None or user.session_version != int(version):
        return None
    return user


def end_sessions(user: User) -> None:
    """End every session of this user, on every device (copied cookies too); commits.

    Logout calls it; so does a password change, which then calls `login_user(user)` to
    keep only the session that made the change.
    """
    with atomic():
        db.session.execute(
            sa.update(User)
            .where(User.id == user.id)
            .values(session_version=User.session_version + 1)
        )
    db.session.refresh(user)


def create_user(email: str, password: str, *, is_admin: bool = False) -> User:
    """A new user with an empty credit account; commits. EmailTakenError if taken."""
    email = normalize_email(email)
    user = User(email=email, is_admin=is_admin)
    user.set_password(password)  # first, so a taken address answers no faster
    if find_by_email(email) is not None:
        raise EmailTakenError("An account with that email already exists.")
    try:
        with atomic():
            db.session.add(user)
            db.session.flush()
            ledger.open_account(user.id)
    except sa.exc.IntegrityError as exc:  # a concurrent signup won the race
        raise EmailTakenError("An account with that email already exists.") from exc
    return user


def make_admin(email: str, password: str | None) -> tuple[User, bool]:
    """Grant the admin role, creating the user when needed; returns (user, created)."""
    user = find_by_email(email)
    if user is None:
        if not password:
            raise DomainError("No such user: give --password to create one.")
        return create_user(email, password, is_admin=True), True
    with atomic():
        user.is_admin = True
        if password:
            user.set_password(password)
    return user, False
