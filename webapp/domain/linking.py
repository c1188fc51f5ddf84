"""Finding the purchase (or plan grant) behind a charge, refund or dispute, which name no
Checkout Session."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from webapp.domain import plans, stripe_gateway
from webapp.domain.errors import PurchaseNotSettledError
from webapp.domain.stripe_objects import (
    AUTORECHARGE_PURPOSE,
    SUBSCRIPTION_PURPOSE,
    TOPUP_PURPOSE,
    id_of,
    invoice_metadata,
)
from webapp.extensions import db
from webapp.models import CreditGrant, Purchase


@dataclass(frozen=True)
class Link:
    purchase_id: int | None
    ours: bool  # a credits top-up payment, even when no purchase matches it
    payment_intent_id: str | None = None  # as Stripe reported it, when it had to be asked
    grant_id: int | None = None  # the plan grant a subscription invoice's payment paid for


NOT_OURS = Link(None, False)


def purchase_for_payment(charge_id: str | None, payment_intent_id: str | None) -> Link:
    """The purchase or plan grant paid by this charge / payment intent.

    Looked up by the stored charge id, then the stored payment intent id (purchases, then
    plan grants, linked when their invoice was paid), and last by asking Stripe for the
    payment intent, whose metadata (copied from the Checkout Session at creation) names
    our purchase, or whose invoice (named by the charge or intent on older API versions,
    else found through Stripe's invoice payments) names a plan grant. A Stripe
    failure raises PaymentProviderError, so the webhook answers 500 and Stripe retries.
    """
    for model in (Purchase, CreditGrant):
        for column, value in (
            (model.stripe_charge_id, charge_id),
            (model.stripe_payment_intent_id, payment_intent_id),
        ):
            if value:
                found = db.session.scalar(sa.select(model.id).where(column == value).limit(1))
                if found is not None:
                    return Link(found, True) if model is Purchase else _grant_link(found)
    invoice_id = None
    if charge_id and not payment_intent_id:
        charge = stripe_gateway.retrieve_charge(charge_id)
        payment_intent_id, invoice_id = (
            id_of(charge.get("payment_intent")),
            id_of(charge.get("invoice")),
        )
    if not payment_intent_id:
        return _from_invoice(invoice_id)
    intent = stripe_gateway.retrieve_payment_intent(payment_intent_id)
    link = _from_metadata(intent.get("metadata") or {}, payment_intent_id)
    if link.ours:
        return link
    invoice_id = invoice_id or id_of(intent.get("invoice"))
    return _from_invoice(invoice_id or stripe_gateway.invoice_paid_by(payment_intent_id))


def _grant_link(grant_id: int) -> Link:
    return Link(None, True, grant_id=grant_id)


def _from_invoice(invoice_id: str | None) -> Link:
    """The plan grant of the invoice a charge names. An invoice of our subscription that
    grants credits but whose invoice.paid has not been handled yet raises
    PurchaseNotSettledError (the event is retried); one that never grants (a proration,
    a manual invoice) has no credits to take back: nothing to do, like a payment not ours."""
    if not invoice_id:
        return NOT_OURS
    found = db.session.scalar(
        sa.select(CreditGrant.id).where(CreditGrant.stripe_invoice_id == invoice_id)
    )
    if found is not None:
        return _grant_link(found)
    invoice = stripe_gateway.retrieve_invoice_with_payments(invoice_id)
    ours = invoice_metadata(invoice).get("purpose") == SUBSCRIPTION_PURPOSE
    if ours and plans.invoice_grants_credits(invoice):
        raise PurchaseNotSettledError(
            f"invoice {invoice_id} is not granted yet; Stripe will retry this event"
        )
    return NOT_OURS


def _from_metadata(metadata: Mapping[str, Any], payment_intent_id: str) -> Link:
    if metadata.get("purpose") not in (TOPUP_PURPOSE, AUTORECHARGE_PURPOSE):
        return NOT_OURS
    purchase_id, user_id = str(metadata.get("purchase_id")), str(metadata.get("user_id"))
    if not (purchase_id.isdigit() and user_id.isdigit()):
        return Link(None, True)
    found = db.session.scalar(
        sa.select(Purchase.id).where(
            Purchase.id == int(purchase_id), Purchase.user_id == int(user_id)
        )
    )
    return Link(found, True, payment_intent_id)
