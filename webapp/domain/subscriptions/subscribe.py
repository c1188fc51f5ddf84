"""Starting a monthly plan: the subscription-mode Checkout Session, and the user's return from it."""

import secrets
from typing import Any

from flask import current_app

from webapp.domain import plans, stripe_gateway
from webapp.domain.checkout import ensure_customer, price_data_tax, tax_params
from webapp.domain.errors import SubscriptionExistsError
from webapp.domain.stripe_objects import SUBSCRIPTION_PURPOSE
from webapp.domain.subscriptions.events import record_checkout_session
from webapp.domain.subscriptions.page import status_words
from webapp.domain.subscriptions.records import Obj, live_subscription
from webapp.domain.transaction import atomic
from webapp.models import User


def start_subscription(user: User, plan_code: str, base_url: str) -> str:
    """Open a Checkout Session in subscription mode for the plan; returns its URL.

    UnknownPlanError before anything is sent; SubscriptionExistsError while the user has
    a live subscription (a stale or second tab: change plans in the billing portal);
    PaymentProviderError when Stripe fails.
    """
    plan = plans.get_plan(plan_code)
    live = live_subscription(user.id)
    if live is not None:
        raise SubscriptionExistsError(
            f"You already have the {live.plan_code} plan ({status_words(live)}): change or "
            "cancel it in the billing portal instead of subscribing again."
        )
    customer_id = ensure_customer(user)
    metadata = {"purpose": SUBSCRIPTION_PURPOSE, "plan": plan.code, "user_id": str(user.id)}
    params = {
        "mode": "subscription",
        "customer": customer_id,
        "client_reference_id": str(user.id),
        "line_items": [_plan_line(plan)],
        "metadata": metadata,
        "subscription_data": {"metadata": metadata},
        "success_url": f"{base_url}/credits/success?session_id={{CHECKOUT_SESSION_ID}}",
        "cancel_url": f"{base_url}/credits/cancel",
        **tax_params(),
    }
    session = stripe_gateway.create_checkout_session(
        params, idempotency_key=f"subscribe-{user.id}-{plan.code}-{secrets.token_hex(8)}"
    )
    return session["url"]


def _plan_line(plan: plans.Plan) -> dict[str, Any]:
    if plan.price_id:
        return {"price": plan.price_id, "quantity": 1}
    return {
        "quantity": 1,
        "price_data": {
            "currency": current_app.config["CURRENCY"],
            "unit_amount": plan.price_minor,
            "recurring": {"interval": "month"},
            "product_data": {
                "name": f"{plan.code.title()} plan: {plan.monthly_credits:,} credits a month"
            },
            **price_data_tax(),
        },
    }


def confirm_checkout_session(session_id: str, user_id: int) -> Obj | None:
    """The user's own subscription Checkout Session from Stripe, recorded when complete.

    None when Stripe does not know it or it is not this user's subscription session;
    PaymentProviderError when Stripe cannot be asked. Commits the subscription row.
    """
    if not session_id.startswith("cs_"):
        return None
    session = stripe_gateway.find_checkout_session(session_id)
    if session is None:
        return None
    metadata = session.get("metadata") or {}
    if metadata.get("purpose") != SUBSCRIPTION_PURPOSE or metadata.get("user_id") != str(user_id):
        return None
    if session.get("status") == "complete":
        with atomic():
            record_checkout_session(session)
    return session
