"""Stripe's documents for paid purchases: the charge's receipt and the Checkout invoice."""

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from webapp.domain import stripe_gateway
from webapp.domain.errors import PaymentProviderError
from webapp.domain.stripe_objects import TOPUP_PURPOSE, metadata_ids, purpose_of
from webapp.domain.transaction import atomic
from webapp.extensions import db
from webapp.models import EventOutcome, Purchase

log = logging.getLogger(__name__)

# A page view asks Stripe about this many purchases at most; the rest wait for a later view.
MAX_LOOKUPS_PER_VIEW = 5


def fill_missing(purchases: Iterable[Purchase]) -> bool:
    """Fetch, once, the receipt and invoice links of paid purchases that lack them; commits.

    Only credited purchases are looked up (a pending or failed one has no receipt to
    show). Returns True when anything was stored (the caller's objects are stale then).
    A Stripe failure stores what was fetched so far; the rest waits for a later view.
    """
    todo = [p for p in purchases if p.credited_at is not None and _missing(p)]
    found: dict[int, dict[str, Any]] = {}
    for purchase in todo[:MAX_LOOKUPS_PER_VIEW]:
        try:
            found[purchase.id] = _links(purchase)
        except PaymentProviderError:
            break
    found = {purchase_id: values for purchase_id, values in found.items() if values}
    if found:
        with atomic():
            for purchase_id, values in found.items():
                _store(purchase_id, values)
    return bool(found)


def _missing(purchase: Purchase) -> bool:
    return (purchase.receipt_url is None and purchase.stripe_payment_intent_id is not None) or (
        purchase.stripe_invoice_id is not None and purchase.invoice_url is None
    )


def _links(purchase: Purchase) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if purchase.receipt_url is None and purchase.stripe_payment_intent_id:
        charge = stripe_gateway.retrieve_receipt_charge(purchase.stripe_payment_intent_id)
        # "": Stripe has no receipt for this payment; not asked again.
        values["receipt_url"] = _url((charge or {}).get("receipt_url")) or ""
    if purchase.stripe_invoice_id and purchase.invoice_url is None:
        values.update(invoice_links(stripe_gateway.retrieve_invoice(purchase.stripe_invoice_id)))
    return values


def invoice_links(invoice: Mapping[str, Any]) -> dict[str, str]:
    """The hosted page and PDF of an invoice, where Stripe has made them (finalized)."""
    links = {
        "invoice_url": _url(invoice.get("hosted_invoice_url")),
        "invoice_pdf_url": _url(invoice.get("invoice_pdf")),
    }
    return {name: url for name, url in links.items() if url}


def _url(value: Any) -> str | None:
    """Links from Stripe are shown as hrefs: https only."""
    return value if isinstance(value, str) and value.startswith("https://") else None


def _store(purchase_id: int, values: Mapping[str, Any]) -> None:
    """Set each link that is still empty (a concurrent view may have stored it first)."""
    for name, value in values.items():
        column = getattr(Purchase, name)
        db.session.execute(
            sa.update(Purchase)
            .where(Purchase.id == purchase_id, column.is_(None))
            .values({name: value})
        )


def apply_invoice(invoice: Mapping[str, Any]) -> str:
    """invoice.paid / invoice.finalized for a top-up's invoice: keep its links (joins).

    The invoice carries the purchase's metadata (invoice_creation.invoice_data), so this
    works whether it arrives before or after checkout.session.completed.
    """
    ids = metadata_ids(invoice.get("metadata") or {}, "purchase_id", "user_id")
    if ids is None:
        return EventOutcome.UNMATCHED
    purchase = db.session.scalar(
        sa.select(Purchase).where(Purchase.id == ids[0], Purchase.user_id == ids[1])
    )
    if purchase is None or purchase.stripe_invoice_id not in (None, invoice.get("id")):
        return EventOutcome.UNMATCHED
    values = {"stripe_invoice_id": invoice.get("id"), **invoice_links(invoice)}
    db.session.execute(sa.update(Purchase).where(Purchase.id == purchase.id).values(values))
    return EventOutcome.PROCESSED


def is_topup_invoice(invoice: Mapping[str, Any]) -> bool:
    return purpose_of(invoice) == TOPUP_PURPOSE
