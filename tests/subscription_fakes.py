"""Subscription objects and events as Stripe sends them, built from Stripe's examples."""

import secrets
from datetime import UTC, datetime, timedelta

import pytest

from tests.stripe_fakes import fixture
from webapp.domain import clock

CUSTOMER = "cus_QXg1o8vcGmoR32"
JAN_1 = datetime(2030, 1, 1, tzinfo=UTC)
FEB_1 = datetime(2030, 2, 1, tzinfo=UTC)
MAR_1 = datetime(2030, 3, 1, tzinfo=UTC)


def ts(moment: datetime) -> int:
    return int(moment.timestamp())


def metadata(user_id: int, plan: str = "basic") -> dict[str, str]:
    return {"purpose": "credits_subscription", "plan": plan, "user_id": str(user_id)}


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def subscription_session(sub_id: str, user_id: int, plan: str = "basic", **overrides):
    """A completed subscription-mode Checkout Session."""
    fields = {
        "id": new_id("cs_test"),
        "mode": "subscription",
        "subscription": sub_id,
        "customer": CUSTOMER,
        "payment_status": "paid",
        "status": "complete",
        "payment_intent": None,
        "amount_total": 900,
        "metadata": metadata(user_id, plan),
    }
    return fixture("checkout.session", **{**fields, **overrides})


# What each default plan costs (TestConfig.PLANS), so invoices pay the right amount.
PLAN_PRICES = {"basic": 900, "pro": 3900}


def invoice(
    sub_id: str,
    user_id: int | None,
    *,
    start: datetime = JAN_1,
    end: datetime = FEB_1,
    reason: str = "subscription_create",
    plan: str = "basic",
    price: str = "price_adhoc",
    invoice_id: str | None = None,
    **overrides,
):
    """A paid subscription invoice; its own period_* look back, its line's period ahead.

    It pays the plan's price and lists the payment (a fresh PaymentIntent id)."""
    meta = metadata(user_id, plan) if user_id is not None else None
    amount = PLAN_PRICES.get(plan, 900)
    obj = fixture(
        "invoice",
        id=invoice_id or new_id("in"),
        billing_reason=reason,
        status="paid",
        amount_paid=amount,
        amount_due=amount,
        amount_remaining=0,
        customer=CUSTOMER,
        currency="usd",
        period_start=ts(start),
        period_end=ts(start),
        subscription=None,
        payments={
            "object": "list",
            "has_more": False,
            "data": [
                {
                    "object": "invoice_payment",
                    "status": "paid",
                    "amount_paid": amount,
                    "payment": {"type": "payment_intent", "payment_intent": new_id("pi")},
                }
            ],
        },
    )
    obj["parent"] = {
        "type": "subscription_details",
        "quote_details": None,
        "subscription_details": {"metadata": meta, "subscription": sub_id},
    }
    line = obj["lines"]["data"][0]
    line.update(
        invoice=obj["id"],
        period={"start": ts(start), "end": ts(end)},
        pricing={
            "type": "price_details",
            "unit_amount_decimal": "900",
            "price_details": {"price": price, "product": "prod_QXg1hqf4jFNsqG"},
        },
    )
    line["parent"] = {
        "type": "subscription_item_details",
        "invoice_item_details": None,
        "subscription_item_details": {
            "invoice_item": None,
            "proration": False,
            "proration_details": None,
            "subscription": sub_id,
            "subscription_item": "si_QXhVnC2h0Jczwc",
        },
    }
    obj.update(overrides)
    return obj


def running_invoice(user_id: int, days: int = 30, **overrides):
    """A paid invoice of a new subscription whose period runs from now for `days`."""
    now = clock.now()
    return invoice(new_id("sub"), user_id, start=now, end=now + timedelta(days=days), **overrides)


def subscription(
    sub_id: str,
    user_id: int,
    *,
    status: str = "active",
    plan: str = "basic",
    price: str = "price_adhoc",
    start: datetime = JAN_1,
    end: datetime = FEB_1,
    cancel_at_period_end: bool = False,
    cancel_at: datetime | None = None,
):
    obj = fixture(
        "subscription",
        id=sub_id,
        customer=CUSTOMER,
        status=status,
        metadata=metadata(user_id, plan),
        cancel_at_period_end=cancel_at_period_end,
        cancel_at=ts(cancel_at) if cancel_at else None,
        canceled_at=None,
        ended_at=None,
    )
    item = obj["items"]["data"][0]
    item.update(current_period_start=ts(start), current_period_end=ts(end), subscription=sub_id)
    item["price"]["id"] = price
    return obj


class FixedClock:
    def __init__(self, moment: datetime):
        self.set(moment)

    def set(self, moment: datetime) -> None:
        self.now = moment
        clock.fix(moment)


@pytest.fixture
def fixed_clock(app):
    """Domain time frozen at 1 Jan 2030 (move it with .set()); released afterwards."""
    frozen = FixedClock(JAN_1)
    yield frozen
    clock.fix(None)
