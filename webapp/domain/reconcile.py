"""Repairing what lost webhooks left undone: walk recent Checkout Sessions and settle them."""

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from webapp.domain import clock, ledger, stripe_gateway
from webapp.domain.ledger import Fulfilment, totals
from webapp.domain.stripe_objects import TOPUP_PURPOSE, purpose_of
from webapp.domain.transaction import atomic
from webapp.extensions import db
from webapp.models import Purchase, PurchaseStatus

# A Checkout Session lives 24 hours (Stripe's default, which this app keeps); a purchase
# still pending without one an hour after that can never be paid.
ABANDONED_AFTER = timedelta(hours=25)

SUMMARY_KEYS = ("checked", "fulfilled", "already", "mismatched", "expired")

_ACTION_FOR_OUTCOME = {
    Fulfilment.CREDITED: "fulfilled",
    Fulfilment.ALREADY_CREDITED: "already",
    Fulfilment.MISMATCH: "mismatched",
    Fulfilment.PROCESSING: "processing",
    Fulfilment.NOT_PAID: "not paid",
    Fulfilment.UNKNOWN: "unknown",
}


@dataclass(frozen=True)
class Row:
    session_id: str
    purchase_id: int | None
    stripe_state: str
    action: str


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)

    def summary(self) -> str:
        return ", ".join(f"{key} {self.counts[key]}" for key in SUMMARY_KEYS)


def reconcile(hours: int = 72, page_size: int = 100) -> Report:
    """Settle every credits Checkout Session Stripe created in the last `hours`.

    Paid ones go through ledger.fulfil_checkout_session (exactly once, so several hosts
    may run this at once: only the run whose call credited a purchase counts it as
    fulfilled), expired ones mark their open purchase expired. Raises
    PaymentProviderError when Stripe cannot list the sessions.
    """
    report = Report()
    for purchase_id in expire_abandoned_purchases():
        report.rows.append(Row("-", purchase_id, "never reached Stripe", "expired"))
        report.counts["expired"] += 1
    since = int(time.time()) - hours * 3600
    for session in stripe_gateway.list_checkout_sessions(since, page_size):
        if purpose_of(session) != TOPUP_PURPOSE:
            continue
        row = _settle(session)
        report.rows.append(row)
        report.counts["checked"] += 1
        report.counts[row.action] += 1
    return report


def _settle(session: dict[str, Any]) -> Row:
    status = session.get("status")
    state = f"{status}/{session.get('payment_status')}"
    if status == "complete":
        result = ledger.fulfil_checkout_session(session)
        action = _ACTION_FOR_OUTCOME[result.outcome]
    elif status == "expired":
        result = ledger.mark_session_expired(session)
        if result.purchase is None:
            action = "unknown"
        elif result.purchase.status == PurchaseStatus.EXPIRED:
            action = "expired"
        else:
            action = result.purchase.status
    else:
        return Row(session["id"], None, state, "open")
    purchase_id = result.purchase_id
    return Row(session["id"], purchase_id, state, action)


def expire_abandoned_purchases() -> list[int]:
    """Expire purchases left pending by a crash before Stripe was asked for a session;
    returns their ids; commits. For the worker's schedule and `credits reconcile`.

    Only purchases with no Checkout Session, created more than a session's lifetime ago:
    one conditional UPDATE, so several hosts may run it at once and each purchase is
    expired by one of them.
    """
    cutoff = clock.now() - ABANDONED_AFTER
    with atomic():
        expired = db.session.execute(
            sa.update(Purchase)
            .where(
                Purchase.status == PurchaseStatus.PENDING,
                Purchase.stripe_checkout_session_id.is_(None),
                Purchase.created_at < cutoff,
            )
            .values(
                status=PurchaseStatus.EXPIRED,
                updated_at=clock.now(),
                review_reason="Never reached Stripe (the app stopped first); expired.",
            )
            .returning(Purchase.id, Purchase.currency, Purchase.amount_cents)
        ).all()
        for _, currency, amount in expired:  # a Core UPDATE: the totals are counted here
            totals.purchase_moved(
                (PurchaseStatus.PENDING, currency, amount, 0),
                (PurchaseStatus.EXPIRED, currency, amount, 0),
            )
    return sorted(purchase_id for purchase_id, _, _ in expired)
