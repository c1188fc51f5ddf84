"""Stripe Prices named in CREDIT_PACKS, as last read from Stripe and checked."""

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from webapp.extensions import db
from webapp.models.types import UTCDateTime, utcnow


class CatalogPrice(db.Model):
    """One Price pack as last read: what it sells, or why it is not offered.

    Kept in the database so `credits packs` refreshes what every process serves.
    """

    __tablename__ = "catalog_prices"

    stripe_price_id: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    # None: not offered (`reason` says why).
    credits: Mapped[int | None] = mapped_column(sa.BigInteger)
    unit_amount: Mapped[int | None] = mapped_column(sa.BigInteger)
    currency: Mapped[str | None] = mapped_column(sa.String(3))
    name: Mapped[str | None] = mapped_column(sa.String(250))
    tax_behavior: Mapped[str | None] = mapped_column(sa.String(20))
    reason: Mapped[str | None] = mapped_column(sa.String(500))
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def offered(self) -> bool:
        return self.reason is None
