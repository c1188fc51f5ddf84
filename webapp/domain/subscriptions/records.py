"""Subscription rows: the user's live one, and the row (and user) a Stripe event names."""

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from webapp.domain import plans
from webapp.domain.sql import insert_ignoring_duplicates, locked
from webapp.domain.stripe_objects import id_of
from webapp.extensions import db
from webapp.models import Subscription, User
from webapp.models.types import utcnow

ENDED = ("canceled", "incomplete_expired")

Obj = Mapping[str, Any]


def live_subscription(user_id: int) -> Subscription | None:
    """The user's subscription that has not ended, if any."""
    return db.session.scalars(
        sa.select(Subscription)
        .where(Subscription.user_id == user_id, Subscription.status.not_in(ENDED))
        .order_by(Subscription.id.desc())
    ).first()


def subscription_for(
    stripe_id: str, metadata: Obj, customer: Any, price_id: str | None, status: str
) -> Subscription | None:
    """The subscription row, locked; created from the event when it is the first we hear."""
    record = _locked(stripe_id)
    if record is not None:
        return record
    plan = plans.plan_for_price(price_id) or plans.find_plan(metadata.get("plan"))
    user_id = user_id_for(metadata, customer)
    if plan is None or user_id is None:
        return None
    return ensure_subscription(stripe_id, user_id, plan.code, status)


def _locked(stripe_id: str) -> Subscription | None:
    return db.session.scalars(
        locked(sa.select(Subscription).where(Subscription.stripe_subscription_id == stripe_id))
    ).first()


def ensure_subscription(stripe_id: str, user_id: int, plan_code: str, status: str) -> Subscription:
    """The row for `stripe_id`, locked; inserted first unless it exists (two events racing
    to create it meet at the unique Stripe id)."""
    now = utcnow()
    insert_ignoring_duplicates(
        Subscription,
        {
            "user_id": user_id,
            "stripe_subscription_id": stripe_id,
            "plan_code": plan_code,
            "status": status,
            "cancel_at_period_end": False,
            "created_at": now,
            "updated_at": now,
        },
        Subscription.stripe_subscription_id,
        returning=Subscription.id,
    )
    return _locked(stripe_id)


def user_id_for(metadata: Obj, customer: Any) -> int | None:
    """The user named by our metadata, else the owner of the Stripe customer."""
    raw = str(metadata.get("user_id") or "")
    if raw.isdigit() and db.session.get(User, int(raw)) is not None:
        return int(raw)
    customer_id = id_of(customer)
    if not customer_id:
        return None
    return db.session.scalar(sa.select(User.id).where(User.stripe_customer_id == customer_id))
