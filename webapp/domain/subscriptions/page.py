"""What the credits page shows of plans: the plans on offer and the user's subscription in words."""

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from webapp.domain import plans
from webapp.domain.subscriptions.records import ENDED
from webapp.extensions import db
from webapp.models import Subscription


@dataclass(frozen=True)
class PlanView:
    plans: tuple[plans.Plan, ...]
    subscription: Subscription | None
    status_words: str | None
    renews_at: datetime | None


def plan_view(user_id: int) -> PlanView:
    """The plans on offer, the user's current subscription and its status in words."""
    record = db.session.scalars(
        sa.select(Subscription)
        .where(Subscription.user_id == user_id)
        .order_by(Subscription.status.in_(ENDED), Subscription.id.desc())
    ).first()
    if record is None:
        return PlanView(plans.all_plans(), None, None, None)
    return PlanView(
        plans.all_plans(),
        record,
        status_words(record),
        None if record.status in ENDED or record.cancel_at else record.current_period_end,
    )


def status_words(record: Subscription) -> str:
    if record.status in ENDED:
        return "ended"
    if record.cancel_at is not None:
        return f"cancels on {record.cancel_at:%d %b %Y}"
    if record.status in ("past_due", "unpaid"):
        return "past due"
    if record.status == "incomplete":
        return "waiting for the first payment"
    return "active"
