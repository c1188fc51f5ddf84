"""Auto-recharge: a user's settings and saved card; each attempt is a Purchase (source auto_recharge)."""

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from webapp.extensions import db
from webapp.models.types import UTCDateTime, utcnow


class AutoRecharge(db.Model):
    """One per user who saved a card or touched the settings."""

    __tablename__ = "auto_recharges"

    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), primary_key=True)
    enabled: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    threshold: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    amount: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    # Money in minor units; None = AUTO_RECHARGE_MONTHLY_LIMIT.
    monthly_limit_cents: Mapped[int | None] = mapped_column(sa.BigInteger)
    # The card last saved, for display. The charge uses the customer's default payment
    # method as Stripe has it then, so a card changed in the portal is the one charged.
    payment_method_id: Mapped[str | None] = mapped_column(sa.String(255))
    card_brand: Mapped[str | None] = mapped_column(sa.String(30))
    card_last4: Mapped[str | None] = mapped_column(sa.String(4))
    card_exp_month: Mapped[int | None] = mapped_column()
    card_exp_year: Mapped[int | None] = mapped_column()
    # The Checkout Session expected to give us a card (setup mode, or a save_card purchase).
    card_session_id: Mapped[str | None] = mapped_column(sa.String(255))
    consecutive_failures: Mapped[int] = mapped_column(default=0, server_default="0")
    last_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Why it turned itself off (shown on /credits until the user turns it on again).
    disabled_reason: Mapped[str | None] = mapped_column(sa.String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def has_card(self) -> bool:
        return bool(self.payment_method_id)
