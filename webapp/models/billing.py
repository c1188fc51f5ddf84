"""Subscriptions to monthly credit plans, and the audit trail of admin actions."""

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp.extensions import db
from webapp.models.types import UTCDateTime, utcnow


class Subscription(db.Model):
    __tablename__ = "subscriptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    stripe_subscription_id: Mapped[str] = mapped_column(sa.String(255), unique=True)
    plan_code: Mapped[str] = mapped_column(sa.String(50))
    status: Mapped[str] = mapped_column(sa.String(30))
    cancel_at_period_end: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    # When a scheduled cancellation takes effect (Stripe's cancel_at, or the period end).
    cancel_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    current_period_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    current_period_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # `created` of the last subscription event applied; older events change nothing.
    last_event_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    user: Mapped["User"] = relationship()  # noqa: F821


class AdminAction(db.Model):
    __tablename__ = "admin_actions"
    __table_args__ = (sa.Index("ix_admin_actions_target", "target_type", "target_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    admin_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    action: Mapped[str] = mapped_column(sa.String(50))
    target_type: Mapped[str] = mapped_column(sa.String(30))
    target_id: Mapped[int] = mapped_column()
    details: Mapped[str] = mapped_column(sa.Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    admin: Mapped["User"] = relationship()  # noqa: F821
