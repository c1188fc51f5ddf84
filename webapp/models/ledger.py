"""The append-only ledger, purchases, disputes, grants and usage idempotency records."""

from datetime import date, datetime
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
    # The API key that spent the credits (usage and hold captures), for spend per key.
    api_key_id: Mapped[int | None] = mapped_column(sa.ForeignKey("api_keys.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    purchase: Mapped["Purchase | None"] = relationship()
    api_key: Mapped["ApiKey | None"] = relationship()  # noqa: F821


class Purchase(db.Model):
    """One Checkout Session for credits, recorded before Stripe is asked for it."""

    __tablename__ = "purchases"
    __table_args__ = (
        sa.Index("ix_purchases_user_id_id", "user_id", "id"),
        # Status filters page newest first. Paid purchases (nearly all) are paged by the
        # primary key instead, so crediting a purchase writes no entry here.
        sa.Index(
            "ix_purchases_status_id",
            "status",
            "id",
            sqlite_where=sa.text("status <> 'paid'"),
            postgresql_where=sa.text("status <> 'paid'"),
        ),
        # Set only when a refund or dispute links the charge.
        sa.Index(
            "ix_purchases_stripe_charge_id",
            "stripe_charge_id",
            sqlite_where=sa.text("stripe_charge_id IS NOT NULL"),
            postgresql_where=sa.text("stripe_charge_id IS NOT NULL"),
        ),
        # Admin date-range filters page along (created_at, id).
        sa.Index("ix_purchases_created_at_id", "created_at", "id"),
        sa.Index(
            "uq_purchases_open_auto_recharge",
            "user_id",
            unique=True,
            sqlite_where=OPEN_AUTO_RECHARGE,
            postgresql_where=OPEN_AUTO_RECHARGE,
        ),
        # Admin's source filter and the monthly limit read auto-recharge purchases only.
        sa.Index(
            "ix_purchases_auto_recharge",
            "user_id",
            "created_at",
            sqlite_where=sa.text("source = 'auto_recharge'"),
            postgresql_where=sa.text("source = 'auto_recharge'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    credits: Mapped[int] = mapped_column(sa.BigInteger)
    # What the credits are worth, the fee line, and what the customer is charged.
    value_cents: Mapped[int] = mapped_column(sa.BigInteger)
    fee_cents: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    # active_history: the totals (domain/ledger/totals.py) see the value a change replaces.
    amount_cents: Mapped[int] = mapped_column(sa.BigInteger, active_history=True)
    currency: Mapped[str] = mapped_column(sa.String(3), active_history=True)
    status: Mapped[str] = mapped_column(
        sa.String(20), default=PurchaseStatus.PENDING, active_history=True
    )
    stripe_checkout_session_id: Mapped[str | None] = mapped_column(sa.String(255), unique=True)
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(sa.String(255), index=True)
    stripe_charge_id: Mapped[str | None] = mapped_column(sa.String(255))
    checkout_url: Mapped[str | None] = mapped_column(sa.Text)
    credited_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Cumulative figures: refunds and disputes only ever add the difference.
    amount_refunded_cents: Mapped[int] = mapped_column(
        sa.BigInteger, default=0, server_default="0", active_history=True
    )
    credits_refunded: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    credits_disputed: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    review_reason: Mapped[str | None] = mapped_column(sa.String(500))
    # What Stripe reported for a session that did not match (money held under review).
    review_amount_cents: Mapped[int | None] = mapped_column(sa.BigInteger)
    review_currency: Mapped[str | None] = mapped_column(sa.String(3))
    # The Stripe idempotency key of what pays for this purchase (its Checkout Session, or
    # an auto-recharge's PaymentIntent): random, stored so a retry reuses it and a database
    # restored from backup (ids repeating) never meets an earlier purchase's key at Stripe.
    stripe_idempotency_key: Mapped[str | None] = mapped_column(sa.String(64))
    # The refund asked for last and what it was for ("amount:refunded so far"): the same
    # request again (a double submit, a retry) reuses the key, a new one gets a new key.
    refund_idempotency_key: Mapped[str | None] = mapped_column(sa.String(64))
    refund_request: Mapped[str | None] = mapped_column(sa.String(64))
    source: Mapped[str] = mapped_column(
        sa.String(20), default=PurchaseSource.CHECKOUT, server_default=PurchaseSource.CHECKOUT
    )
    # Auto-recharge: the card charged, recorded before Stripe is asked, so a retry sends the
    # same request; and why it failed.
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
    """A dispute of a purchase's charge, or of the charge that paid a plan grant's invoice."""

    __tablename__ = "disputes"

    id: Mapped[int] = mapped_column(primary_key=True)
    stripe_dispute_id: Mapped[str] = mapped_column(sa.String(255), unique=True)
    purchase_id: Mapped[int | None] = mapped_column(sa.ForeignKey("purchases.id"), index=True)
    grant_id: Mapped[int | None] = mapped_column(sa.ForeignKey("credit_grants.id"), index=True)
    amount_cents: Mapped[int] = mapped_column(sa.BigInteger)
    credits_taken: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    status: Mapped[str] = mapped_column(sa.String(40))
    # Set once the dispute is closed; a won dispute has given its credits back.
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CreditGrant(db.Model):
    """Credits from a subscription invoice; they may expire at the period's end."""

    __tablename__ = "credit_grants"
    __table_args__ = (
        sa.Index("ix_credit_grants_user_id_expires_at", "user_id", "expires_at"),
        # Refunds and disputes of the invoice's payment find the grant by these.
        sa.Index(
            "ix_credit_grants_stripe_charge_id",
            "stripe_charge_id",
            sqlite_where=sa.text("stripe_charge_id IS NOT NULL"),
            postgresql_where=sa.text("stripe_charge_id IS NOT NULL"),
        ),
        sa.Index(
            "ix_credit_grants_stripe_payment_intent_id",
            "stripe_payment_intent_id",
            sqlite_where=sa.text("stripe_payment_intent_id IS NOT NULL"),
            postgresql_where=sa.text("stripe_payment_intent_id IS NOT NULL"),
        ),
        # Invoices that granted nothing and wait for an admin.
        sa.Index(
            "ix_credit_grants_review",
            "id",
            sqlite_where=sa.text("review_reason IS NOT NULL"),
            postgresql_where=sa.text("review_reason IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    subscription_id: Mapped[int | None] = mapped_column(sa.ForeignKey("subscriptions.id"))
    stripe_invoice_id: Mapped[str | None] = mapped_column(sa.String(255), unique=True)
    plan_code: Mapped[str | None] = mapped_column(sa.String(50))
    credits: Mapped[int] = mapped_column(sa.BigInteger)
    remaining: Mapped[int] = mapped_column(sa.BigInteger)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The invoice's payment: refunds and disputes of it take the credits back in
    # proportion, with the same cumulative figures as a purchase (ledger/chargebacks.py).
    stripe_charge_id: Mapped[str | None] = mapped_column(sa.String(255))
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(sa.String(255))
    amount_cents: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    currency: Mapped[str | None] = mapped_column(sa.String(3))
    amount_refunded_cents: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    credits_refunded: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    credits_disputed: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    # Set when the invoice granted nothing (amount, Price or plan did not match): admins see it.
    review_reason: Mapped[str | None] = mapped_column(sa.String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def total_cents(self) -> int:
        """What the invoice's charge was for (tax included), as for a purchase."""
        return self.amount_cents


class DailyTotal(db.Model):
    """How much one figure moved on one UTC day (in one of a few shards); /admin/ sums them.

    Written only by webapp.domain.ledger.totals, in the transaction of the change it
    counts. `metric` names the figure ("credits.usage", "purchases.paid", "charged", ...);
    `currency` is "" for figures that are not money. `shard` is the writing connection's
    server process id (PostgreSQL), so concurrent writers never share a row; past days
    are folded into shard 0.
    """

    __tablename__ = "daily_totals"
    __table_args__ = (
        # Rows not folded yet (today's, and past days' before `compact`): a few per day.
        sa.Index(
            "ix_daily_totals_unfolded",
            "day",
            sqlite_where=sa.text("shard <> 0"),
            postgresql_where=sa.text("shard <> 0"),
        ),
    )

    day: Mapped[date] = mapped_column(sa.Date, primary_key=True)
    metric: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    currency: Mapped[str] = mapped_column(sa.String(3), primary_key=True)
    shard: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    amount: Mapped[int] = mapped_column(sa.BigInteger)


class CreditDay(db.Model):
    """Credits one user bought (purchases and plan grants) and spent (usage) on one UTC day.

    Kept by ledger.post_entry in the statement that posts the entry; the 30-day chart on
    /credits reads 30 of these rows instead of adding up the ledger.
    """

    __tablename__ = "credit_days"

    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), primary_key=True)
    day: Mapped[date] = mapped_column(sa.Date, primary_key=True)
    bought: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    spent: Mapped[int] = mapped_column(sa.BigInteger, default=0)


class HoldStatus(StrEnum):
    HELD = "held"
    CAPTURED = "captured"
    RELEASED = "released"
    EXPIRED = "expired"


class Hold(db.Model):
    """Credits reserved for work whose cost is known at the end; captured, released or expired.

    While `status` is held, `credits` count in the account's `held`; a hold past
    `expires_at` never counts, even before it is marked expired.
    """

    __tablename__ = "holds"
    __table_args__ = (
        sa.Index("ix_holds_user_id_id", "user_id", "id"),
        # Due holds are found by expiry among the open ones only.
        sa.Index(
            "ix_holds_open_expires_at",
            "expires_at",
            sqlite_where=sa.text("status = 'held'"),
            postgresql_where=sa.text("status = 'held'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    public_id: Mapped[str] = mapped_column(sa.String(40), unique=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    api_key_id: Mapped[int | None] = mapped_column(sa.ForeignKey("api_keys.id"))
    credits: Mapped[int] = mapped_column(sa.BigInteger)
    status: Mapped[str] = mapped_column(sa.String(20), default=HoldStatus.HELD)
    captured: Mapped[int | None] = mapped_column(sa.BigInteger)
    description: Mapped[str | None] = mapped_column(sa.String(500))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The first capture's or release's JSON answer, replayed when the same call repeats.
    settle_answer: Mapped[str | None] = mapped_column(sa.Text)
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
