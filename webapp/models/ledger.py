"""The append-only ledger, purchases, disputes, grants and usage idempotency records."""

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp.extensions import db
from webapp.models.types import BigIntId, UTCDateTime, utcnow


class EntryKind(StrEnum):
    PURCHASE = "purchase"
    USAGE = "usage"
    REFUND = "refund"
    DISPUTE = "dispute"
    DISPUTE_WON = "dispute_reversal"
    ADJUSTMENT = "adjustment"
    GRANT = "grant"
    EXPIRY = "expiry"


class PurchaseStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    PAID = "paid"
    FAILED = "failed"
    EXPIRED = "expired"
    REFUNDED = "refunded"
    PARTIALLY_REFUNDED = "partially_refunded"
    DISPUTED = "disputed"
    NEEDS_REVIEW = "needs_review"
    NEEDS_ACTION = "needs_action"  # an auto-recharge the bank wants the card holder for


class PurchaseSource(StrEnum):
    CHECKOUT = "checkout"
    AUTO_RECHARGE = "auto_recharge"


# Auto-recharge attempts still in flight: at most one per account (a unique index).
OPEN_AUTO_RECHARGE = sa.text(
    "source = 'auto_recharge' AND status IN ('pending', 'processing', 'needs_action')"
)


class LedgerEntry(db.Model):
    """One balance change. Never updated, never deleted."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        sa.Index("ix_ledger_entries_user_id_id", "user_id", "id"),
        # The 30-day chart on /credits aggregates one user's recent rows by day.
        sa.Index("ix_ledger_entries_user_id_created_at", "user_id", "created_at"),
        # A purchase is credited at most once, whatever reaches it.
        sa.Index(
            "uq_ledger_entries_purchase_credit",
            "purchase_id",
            unique=True,
            sqlite_where=sa.text("kind = 'purchase'"),
            postgresql_where=sa.text("kind = 'purchase'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(sa.String(20))
    credits: Mapped[int] = mapped_column(sa.BigInteger)
    balance_after: Mapped[int] = mapped_column(sa.BigInteger)
    purchase_id: Mapped[int | None] = mapped_column(sa.ForeignKey("purchases.id"))
    grant_id: Mapped[int | None] = mapped_column(sa.ForeignKey("credit_grants.id"))
    actor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    # Stripe object (event, refund, dispute, invoice) or API key behind the change.
    reference: Mapped[str | None] = mapped_column(sa.String(255))
    description: Mapped[str | None] = mapped_column(sa.String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    purchase: Mapped["Purchase | None"] = relationship()


class Purchase(db.Model):
    """One Checkout Session for credits, recorded before Stripe is asked for it."""

    __tablename__ = "purchases"
    __table_args__ = (
        sa.Index("ix_purchases_user_id_id", "user_id", "id"),
        # Status filters page newest first. Paid purchases (nearly all) are paged by the
        # primary key instead, so crediting a purchase writes no entry here.
        sa.Index("ix_purchases_status_id", "status", "id",
                 sqlite_where=sa.text("status <> 'paid'"),
                 postgresql_where=sa.text("status <> 'paid'")),
        # Set only when a refund or dispute links the charge.
        sa.Index("ix_purchases_stripe_charge_id", "stripe_charge_id",
                 sqlite_where=sa.text("stripe_charge_id IS NOT NULL"),
                 postgresql_where=sa.text("stripe_charge_id IS NOT NULL")),
        # Admin date-range filters page along (created_at, id).
        sa.Index("ix_purchases_created_at_id", "created_at", "id"),
        sa.Index("uq_purchases_open_auto_recharge", "user_id", unique=True,
                 sqlite_where=OPEN_AUTO_RECHARGE, postgresql_where=OPEN_AUTO_RECHARGE),
        # Admin's source filter and the monthly limit read auto-recharge purchases only.
        sa.Index("ix_purchases_auto_recharge", "user_id", "created_at",
                 sqlite_where=sa.text("source = 'auto_recharge'"),
                 postgresql_where=sa.text("source = 'auto_recharge'")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    credits: Mapped[int] = mapped_column(sa.BigInteger)
    # What the credits are worth, the fee line, and what the customer is charged.
    value_cents: Mapped[int] = mapped_column(sa.BigInteger)
    fee_cents: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    amount_cents: Mapped[int] = mapped_column(sa.BigInteger)
    currency: Mapped[str] = mapped_column(sa.String(3))
    status: Mapped[str] = mapped_column(sa.String(20), default=PurchaseStatus.PENDING)
    stripe_checkout_session_id: Mapped[str | None] = mapped_column(sa.String(255), unique=True)
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(sa.String(255), index=True)
    stripe_charge_id: Mapped[str | None] = mapped_column(sa.String(255))
    checkout_url: Mapped[str | None] = mapped_column(sa.Text)
    credited_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Cumulative figures: refunds and disputes only ever add the difference.
    amount_refunded_cents: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    credits_refunded: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    credits_disputed: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    review_reason: Mapped[str | None] = mapped_column(sa.String(500))
    source: Mapped[str] = mapped_column(
        sa.String(20), default=PurchaseSource.CHECKOUT, server_default=PurchaseSource.CHECKOUT
    )
    # Auto-recharge: the Stripe idempotency key of its PaymentIntent, made at random when
    # the purchase is recorded (a database id repeats after a restore), and why it failed.
    idempotency_key: Mapped[str | None] = mapped_column(sa.String(64))
    # The card charged, recorded before Stripe is asked, so a retry sends the same request.
    stripe_payment_method_id: Mapped[str | None] = mapped_column(sa.String(255))
    failure_reason: Mapped[str | None] = mapped_column(sa.String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The Stripe Price sold (a CREDIT_PACKS Price pack); None for credits priced here.
    stripe_price_id: Mapped[str | None] = mapped_column(sa.String(255))
    # Tax Stripe added on top of amount_cents (total_details.amount_tax), set when paid.
    tax_cents: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    # Stripe's documents for a paid purchase: the charge's receipt and the invoice
    # (CHECKOUT_INVOICES). receipt_url "" means Stripe had none to give.
    receipt_url: Mapped[str | None] = mapped_column(sa.Text)
    stripe_invoice_id: Mapped[str | None] = mapped_column(sa.String(255))
    invoice_url: Mapped[str | None] = mapped_column(sa.Text)
    invoice_pdf_url: Mapped[str | None] = mapped_column(sa.Text)

    user: Mapped["User"] = relationship()  # noqa: F821

    @property
    def total_cents(self) -> int:
        """What the customer paid in all: the recorded amount plus Stripe's tax."""
        return self.amount_cents + (self.tax_cents or 0)


class Dispute(db.Model):
    __tablename__ = "disputes"

    id: Mapped[int] = mapped_column(primary_key=True)
    stripe_dispute_id: Mapped[str] = mapped_column(sa.String(255), unique=True)
    purchase_id: Mapped[int] = mapped_column(sa.ForeignKey("purchases.id"), index=True)
    amount_cents: Mapped[int] = mapped_column(sa.BigInteger)
    credits_taken: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    status: Mapped[str] = mapped_column(sa.String(40))
    # Set once the dispute is closed; a won dispute has given its credits back.
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CreditGrant(db.Model):
    """Credits from a subscription invoice; they may expire at the period's end."""

    __tablename__ = "credit_grants"
    __table_args__ = (sa.Index("ix_credit_grants_user_id_expires_at", "user_id", "expires_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    subscription_id: Mapped[int | None] = mapped_column(sa.ForeignKey("subscriptions.id"))
    stripe_invoice_id: Mapped[str | None] = mapped_column(sa.String(255), unique=True)
    plan_code: Mapped[str | None] = mapped_column(sa.String(50))
    credits: Mapped[int] = mapped_column(sa.BigInteger)
    remaining: Mapped[int] = mapped_column(sa.BigInteger)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UsageRequest(db.Model):
    """The first answer to a usage call with an Idempotency-Key, replayed on retries."""

    __tablename__ = "usage_requests"
    __table_args__ = (sa.UniqueConstraint("user_id", "idempotency_key"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    idempotency_key: Mapped[str] = mapped_column(sa.String(255))
    request_hash: Mapped[str] = mapped_column(sa.String(64))
    response_status: Mapped[int] = mapped_column()
    response_body: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
