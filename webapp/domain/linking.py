"""Finding the purchase behind a charge, refund or dispute, which name no Checkout Session."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from webapp.domain import stripe_gateway
from webapp.domain.stripe_objects import AUTORECHARGE_PURPOSE, TOPUP_PURPOSE, id_of
from webapp.extensions import db
from webapp.models import Purchase


@dataclass(frozen=True)
class Link:
    purchase_id: int | None
    ours: bool  # a credits top-up payment, even when no purchase matches it
    payment_intent_id: str | None = None  # as Stripe reported it, when it had to be asked


NOT_OURS = Link(None, False)


def purchase_for_payment(charge_id: str | None, payment_intent_id: str | None) -> Link:
    """The purchase paid by this charge / payment intent.

    Looked up by the stored charge id, then the stored payment intent id, and last by
    asking Stripe for the payment intent, whose metadata (copied from the Checkout
    Session at creation) names our purchase. A Stripe failure raises
    PaymentProviderError, so the webhook answers 500 and Stripe retries.
    """
    for column, value in ((Purchase.stripe_charge_id, charge_id),
                          (Purchase.stripe_payment_intent_id, payment_intent_id)):
        if value:
            found = db.session.scalar(sa.select(Purchase.id).where(column == value).limit(1))
            if found is not None:
                return Link(found, True)
    if not payment_intent_id and charge_id:
        payment_intent_id = id_of(stripe_gateway.retrieve_charge(charge_id).get("payment_intent"))
    if not payment_intent_id:
        return NOT_OURS
    intent = stripe_gateway.retrieve_payment_intent(payment_intent_id)
    return _from_metadata(intent.get("metadata") or {}, payment_intent_id)


def _from_metadata(metadata: Mapping[str, Any], payment_intent_id: str) -> Link:
    if metadata.get("purpose") not in (TOPUP_PURPOSE, AUTORECHARGE_PURPOSE):
        return NOT_OURS
    purchase_id, user_id = str(metadata.get("purchase_id")), str(metadata.get("user_id"))
    if not (purchase_id.isdigit() and user_id.isdigit()):
        return Link(None, True)
    found = db.session.scalar(sa.select(Purchase.id).where(
        Purchase.id == int(purchase_id), Purchase.user_id == int(user_id)))
    return Link(found, True, payment_intent_id)
