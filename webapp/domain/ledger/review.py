"""The ways out of review: a purchase whose payment did not match, credited by an admin."""

import sqlalchemy as sa

from webapp.domain.errors import NotUnderReviewError
from webapp.domain.ledger.chargebacks import take_what_came_before_the_credit
from webapp.domain.ledger.purchases import _post_purchase_credit, set_status
from webapp.domain.sql import locked
from webapp.domain.transaction import atomic
from webapp.extensions import db
from webapp.models import Purchase, PurchaseStatus
from webapp.models.types import utcnow


def credit_reviewed_purchase(
    purchase_id: int,
    *,
    actor_id: int,
    amount_cents: int,
    currency: str,
    payment_intent_id: str | None,
    tax_cents: int = 0,
) -> Purchase:
    """Credit a purchase under review with the credits recorded at its creation; joins.

    The caller has seen the money arrive at Stripe: `amount_cents` / `currency` are what
    Stripe charged before tax and `tax_cents` the tax on top, and become the purchase's
    amounts so refunds and disputes take credits in proportion to the real charge. The
    credit is the purchase's one `purchase` ledger row (actor_id = the admin), so it
    happens at most once, and refunds and disputes recorded while it waited then take
    their share (chargebacks.take_what_came_before_the_credit); a purchase not under
    review raises NotUnderReviewError and changes nothing.
    """
    with atomic():
        purchase = db.session.scalars(
            locked(sa.select(Purchase).where(Purchase.id == purchase_id))
        ).one()
        if purchase.status != PurchaseStatus.NEEDS_REVIEW or purchase.credited_at is not None:
            raise NotUnderReviewError("This purchase is not waiting for review.")
        set_status(
            purchase,
            PurchaseStatus.PAID,
            credited_at=utcnow(),
            amount_cents=amount_cents,
            tax_cents=tax_cents,
            currency=currency,
            stripe_payment_intent_id=payment_intent_id,
        )
        db.session.flush()
        _post_purchase_credit(
            purchase.id,
            purchase.user_id,
            purchase.credits,
            purchase.stripe_checkout_session_id,
            actor_id=actor_id,
        )
        take_what_came_before_the_credit(purchase)
        return purchase
