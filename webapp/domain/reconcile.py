"""Repairing what lost webhooks left undone: walk recent Checkout Sessions and settle them."""

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from webapp.domain import ledger, stripe_gateway
from webapp.domain.ledger import Fulfilment
from webapp.domain.stripe_objects import TOPUP_PURPOSE, purpose_of
from webapp.models import PurchaseStatus

SUMMARY_KEYS = ("checked", "fulfilled", "already", "mismatched", "expired")

_ACTION_FOR_OUTCOME = {
    Fulfilment.CREDITED: "fulfilled", Fulfilment.ALREADY_CREDITED: "already",
    Fulfilment.MISMATCH: "mismatched", Fulfilment.PROCESSING: "processing",
    Fulfilment.NOT_PAID: "not paid", Fulfilment.UNKNOWN: "unknown",
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
