"""Defect 8: a purchase left pending by a crash before Stripe was called expires in time."""

from datetime import timedelta

import sqlalchemy as sa

from webapp.domain import checkout, pricing, reconcile
from webapp.extensions import db
from webapp.models import Purchase
from webapp.models.types import utcnow


def pending_without_session(user):
    """What start_checkout has stored when the process dies before asking Stripe."""
    return checkout._record_purchase(user.id, pricing.quote(500)).id


def statuses():
    db.session.expire_all()
    return dict(db.session.execute(sa.select(Purchase.id, Purchase.status)).all())


def test_reconcile_expires_pending_purchases_older_than_a_session_lifetime(
    runner, user, stripe_double, fixed_clock
):
    abandoned = pending_without_session(user)
    started = checkout.start_checkout(user, 500, "https://credits.example.test").id  # has a session
    fixed_clock.set(utcnow() + reconcile.ABANDONED_AFTER - timedelta(minutes=1))
    assert reconcile.expire_abandoned_purchases() == []
    fixed_clock.set(utcnow() + reconcile.ABANDONED_AFTER + timedelta(minutes=1))
    result = runner.invoke(args=["credits", "reconcile"])
    assert result.exit_code == 0, result.output
    assert f"purchase {abandoned}: never reached Stripe, expired" in result.output
    assert result.output.strip().endswith("expired 1")
    assert statuses() == {abandoned: "expired", started: "pending"}
    again = runner.invoke(args=["credits", "reconcile"])
    assert again.output.strip().endswith("expired 0")
