"""Users, their credit accounts and their API keys."""

from datetime import datetime

import sqlalchemy as sa
from flask import current_app
from flask_login import UserMixin
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from webapp.extensions import db
from webapp.models.types import UTCDateTime, utcnow


def normalize_email(email: str) -> str:
    return email.strip().lower()


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Stored lower-cased, so the unique index is case-insensitive on every database.
    email: Mapped[str] = mapped_column(sa.String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    is_admin: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    stripe_customer_id: Mapped[str | None] = mapped_column(sa.String(255), unique=True)
    # Random idempotency key for creating the Stripe customer, reused on retries.
    stripe_customer_key: Mapped[str | None] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    email_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Part of every login session's id: bumping it ends all sessions (users.end_sessions).
    session_version: Mapped[int] = mapped_column(default=0, server_default="0")
    # Optional messages (receipts and security mail always go).
    notify_low_balance: Mapped[bool] = mapped_column(default=True, server_default=sa.true())
    notify_auto_recharge: Mapped[bool] = mapped_column(default=True, server_default=sa.true())
    notify_renewals: Mapped[bool] = mapped_column(default=True, server_default=sa.true())
    # Credits; None = the LOW_BALANCE_THRESHOLD setting, 0 = no alert.
    low_balance_threshold: Mapped[int | None] = mapped_column(sa.BigInteger)
    # How many low-balance alerts were recorded: names each crossing's mail.
    low_balance_alerts: Mapped[int] = mapped_column(default=0, server_default="0")

    account: Mapped["CreditAccount"] = relationship(back_populates="user", uselist=False)

    def set_password(self, password: str) -> None:
        method = current_app.config.get("PASSWORD_HASH_METHOD", "scrypt")
        self.password_hash = generate_password_hash(password, method=method)

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    def get_id(self) -> str:
        """Flask-Login keeps this in the session: "<id>.<session_version>"."""
        return f"{self.id}.{self.session_version or 0}"

    def __repr__(self) -> str:
        return f"<User {self.id} {self.email}>"


class CreditAccount(db.Model):
    """One per user. Running totals let pages show the meter without a scan.

    Only `domain/ledger.py` writes these columns, with atomic SQL updates.
    """

    __tablename__ = "credit_accounts"

    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), primary_key=True)
    balance: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    purchased: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    granted: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    used: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    # Credits in unexpired, expiring grants; purchased credits never expire.
    expiring: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    next_expiry_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Credits reserved by open holds (ledger/holds.py keeps it with the hold rows); what
    # usage and new holds may take is balance - held. No open hold expires before
    # next_hold_expiry_at, so while it lies ahead no hold needs releasing.
    held: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    next_hold_expiry_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The auto-recharge threshold while auto-recharge is on (else None): a debit leaving the
    # balance below it records an attempt (ledger/autorecharge.py).
    auto_recharge_below: Mapped[int | None] = mapped_column(sa.BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    user: Mapped[User] = relationship(back_populates="account")


class ApiKey(db.Model):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    label: Mapped[str] = mapped_column(sa.String(100), default="")
    # The first characters of the key, shown in lists so people recognise it.
    prefix: Mapped[str] = mapped_column(sa.String(20))
    key_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()
