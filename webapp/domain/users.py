"""Creating users with their credit accounts."""

import sqlalchemy as sa

from webapp.domain import ledger
from webapp.domain.errors import DomainError
from webapp.domain.transaction import atomic
from webapp.extensions import db
from webapp.models import User, normalize_email

MIN_PASSWORD_LENGTH = 8


class EmailTakenError(DomainError):
    pass


def find_by_email(email: str) -> User | None:
    return db.session.scalar(sa.select(User).where(User.email == normalize_email(email)))


def create_user(email: str, password: str, *, is_admin: bool = False) -> User:
    """A new user with an empty credit account; commits. EmailTakenError if taken."""
    email = normalize_email(email)
    if find_by_email(email) is not None:
        raise EmailTakenError("An account with that email already exists.")
    try:
        with atomic():
            user = User(email=email, is_admin=is_admin)
            user.set_password(password)
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
