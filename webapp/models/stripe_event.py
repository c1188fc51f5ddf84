"""Every Stripe event received, with what came of it."""

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from webapp.extensions import db
from webapp.models.types import BigIntId, UTCDateTime, utcnow


class EventOutcome(StrEnum):
    PROCESSED = "processed"
    IGNORED = "ignored"
    UNMATCHED = "unmatched"  # a credits event for a session this app never created
    FAILED = "failed"


class StripeEvent(db.Model):
    __tablename__ = "stripe_events"
    __table_args__ = (
        # /admin/events?outcome=... pages newest first by id. Processed events are nearly
        # all of them and are paged by the primary key; leaving them out of this index
        # spares every successful delivery an index write.
        sa.Index(
            "ix_stripe_events_outcome_id",
            "outcome",
            "id",
            sqlite_where=sa.text("outcome <> 'processed'"),
            postgresql_where=sa.text("outcome <> 'processed'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    stripe_event_id: Mapped[str] = mapped_column(sa.String(255), unique=True)
    type: Mapped[str] = mapped_column(sa.String(100))
    object_id: Mapped[str | None] = mapped_column(sa.String(255))
    outcome: Mapped[str] = mapped_column(sa.String(20))
    error: Mapped[str | None] = mapped_column(sa.Text)
    attempts: Mapped[int] = mapped_column(default=1, server_default="1")
    stripe_created_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
