"""Every model module is imported here so Alembic autogenerate sees them all."""

from webapp.models.autorecharge import AutoRecharge
from webapp.models.billing import AdminAction, Subscription
from webapp.models.catalog import CatalogPrice
from webapp.models.job import Job, JobStatus
from webapp.models.ledger import (
    CreditDay,
    CreditGrant,
    DailyTotal,
    Dispute,
    EntryKind,
    Hold,
    HoldStatus,
    LedgerEntry,
    Purchase,
    PurchaseSource,
    PurchaseStatus,
    UsageRequest,
)
from webapp.models.stripe_event import EventOutcome, StripeEvent
from webapp.models.user import ApiKey, CreditAccount, User, normalize_email

__all__ = [
    "AdminAction",
    "ApiKey",
    "AutoRecharge",
    "CatalogPrice",
    "CreditAccount",
    "CreditDay",
    "CreditGrant",
    "DailyTotal",
    "Dispute",
    "EntryKind",
    "EventOutcome",
    "Hold",
    "HoldStatus",
    "Job",
    "JobStatus",
    "LedgerEntry",
    "Purchase",
    "PurchaseSource",
    "PurchaseStatus",
    "StripeEvent",
    "Subscription",
    "UsageRequest",
    "User",
    "normalize_email",
]
