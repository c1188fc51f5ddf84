"""Monthly plans through Stripe Checkout: subscribing, following Stripe's events, granting credits."""

import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import current_app

from webapp.domain import ledger, notices, plans, stripe_gateway
from webapp.domain.checkout import ensure_customer, price_data_tax, tax_params
from webapp.domain.errors import SubscriptionExistsError, UnmatchedInvoiceError
from webapp.domain.pricing import format_money
from webapp.domain.sql import insert_ignoring_duplicates, locked
from webapp.domain.stripe_objects import (
    SUBSCRIPTION_PURPOSE,
    id_of,
    invoice_added_tax,
    invoice_discounts,
    invoice_metadata,
    invoice_paid_line,
    invoice_payment_ids,
    invoice_subscription_id,
    line_price_id,
    subscription_period,
    subscription_price_id,
    timestamp,
)
from webapp.domain.transaction import atomic
from webapp.extensions import db
from webapp.models import EventOutcome, Subscription, User
from webapp.models.types import utcnow

log = logging.getLogger(__name__)

GRANTING_REASONS = ("subscription_create", "subscription_cycle")
ENDED = ("canceled", "incomplete_expired")

Obj = Mapping[str, Any]


# --- starting a subscription


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


def live_subscription(user_id: int) -> Subscription | None:
    """The user's subscription that has not ended, if any."""
    return db.session.scalars(
        sa.select(Subscription)
        .where(Subscription.user_id == user_id, Subscription.status.not_in(ENDED))
        .order_by(Subscription.id.desc())
    ).first()


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


# --- following Stripe's events (each joins the event's transaction)


def record_checkout_session(session: Obj) -> str:
    """A completed subscription Checkout Session: the subscription exists; outcome."""
    metadata = session.get("metadata") or {}
    subscription_id = id_of(session.get("subscription"))
    plan = plans.find_plan(metadata.get("plan"))
    user_id = _user_id(metadata, session.get("customer"))
    if not subscription_id or plan is None or user_id is None:
        return EventOutcome.UNMATCHED
    with atomic():
        status = "active" if session.get("payment_status") == "paid" else "incomplete"
        record = _ensure_subscription(subscription_id, user_id, plan.code, status)
        if record.status == "incomplete" and status == "active":
            record.status = status
    return EventOutcome.PROCESSED


def apply_invoice_paid(invoice: Obj) -> str:
    """Grant the plan's credits for a paid subscription invoice, once per invoice; outcome.

    The paid line's Price must be the plan's (when the plan names one) and the amount paid
    (less tax added on top) the plan's price less the discounts Stripe reports, in the
    store's currency, and more than nothing: anything else grants nothing and is held
    for review on the admin pages. An invoice of ours that no user can be found for
    raises UnmatchedInvoiceError (500: Stripe retries, /admin/events shows it). The grant
    is linked to the invoice's charge / payment intent (Stripe is asked when the invoice
    does not say) so refunds and disputes of it take the credits back.
    """
    if invoice.get("billing_reason") not in GRANTING_REASONS:
        return EventOutcome.IGNORED
    subscription_id = invoice_subscription_id(invoice)
    line = invoice_paid_line(invoice)
    metadata = invoice_metadata(invoice)
    if not subscription_id or line is None:
        return _unmatched(invoice, metadata, "names no subscription line")
    with atomic():
        record = _subscription_for(
            subscription_id, metadata, invoice.get("customer"), line_price_id(line), "active"
        )
        user_id = record.user_id if record else _user_id(metadata, invoice.get("customer"))
        if user_id is None:
            return _unmatched(invoice, metadata, "has no user we know")
        start, end = timestamp(line["period"].get("start")), timestamp(line["period"].get("end"))
        if (
            record is not None
            and end
            and (record.current_period_end is None or end > record.current_period_end)
        ):
            record.current_period_start, record.current_period_end = start, end
            if record.status in ("incomplete", "past_due"):
                record.status = "active"
        plan, reason = _plan_paid_for(invoice, line, record, metadata)
        payment = _invoice_payment(invoice)
        refs = {
            "invoice_id": invoice["id"],
            "subscription_id": record.id if record else None,
            "payment": payment,
        }
        if reason is not None:
            log.warning("invoice %s held for review: %s", invoice["id"], reason)
            ledger.hold_invoice_for_review(
                user_id,
                plan_code=plan.code if plan else metadata.get("plan"),
                reason=reason,
                **refs,
            )
            return EventOutcome.PROCESSED
        granted = ledger.grant_plan_credits(
            user_id,
            plan.monthly_credits,
            plan_code=plan.code,
            expires_at=None if plan.rollover else end,
            **refs,
        )
        if granted is not None and invoice.get("billing_reason") == "subscription_cycle":
            notices.subscription_renewed(user_id, invoice["id"], plan.code, plan.monthly_credits)
    return EventOutcome.PROCESSED


def _unmatched(invoice: Obj, metadata: Obj, why: str) -> str:
    if metadata.get("purpose") == SUBSCRIPTION_PURPOSE:
        raise UnmatchedInvoiceError(f"invoice {invoice.get('id')} of our subscription {why}")
    return EventOutcome.UNMATCHED


def _plan_paid_for(
    invoice: Obj, line: Obj, record: Subscription | None, metadata: Obj
) -> tuple[plans.Plan | None, str | None]:
    """The plan this invoice paid for, and why it cannot be granted (None when it can)."""
    price_id = line_price_id(line)
    plan = plans.plan_for_price(price_id)
    if plan is None:
        plan = plans.find_plan(record.plan_code if record else metadata.get("plan"))
        if plan is None:
            return None, (
                f"no plan in PLANS matches Price {price_id} or plan "
                f"{(record.plan_code if record else metadata.get('plan'))!r}"
            )
        if plan.price_id and price_id != plan.price_id:
            return plan, f"the paid Price {price_id} is not a plan's Price in PLANS"
    currency = str(invoice.get("currency") or "").lower()
    expected_currency = current_app.config["CURRENCY"]
    paid = int(invoice.get("amount_paid") or 0) - invoice_added_tax(invoice)
    expected = plan.price_minor - invoice_discounts(invoice)
    if currency != expected_currency or paid != expected:
        return plan, (
            f"paid {format_money(paid, currency or expected_currency)} but the "
            f"{plan.code} plan costs {format_money(expected, expected_currency)}"
        )
    if paid <= 0:
        return plan, "nothing was paid (a trial or a full discount): grant by hand if meant"
    return plan, None


def _invoice_payment(invoice: Obj) -> ledger.InvoicePayment:
    """The invoice's amount and the charge / payment intent that paid it (asking Stripe for
    the invoice with its payments when the event does not list them)."""
    amount = int(invoice.get("amount_paid") or 0)
    charge_id, intent_id = invoice_payment_ids(invoice)
    if amount > 0 and not (charge_id or intent_id):
        charge_id, intent_id = invoice_payment_ids(
            stripe_gateway.retrieve_invoice_with_payments(invoice["id"])
        )
    return ledger.InvoicePayment(
        amount, str(invoice.get("currency") or "").lower(), charge_id, intent_id
    )


def apply_invoice_failed(invoice: Obj, created: int) -> str:
    """A subscription invoice's payment failed: the subscription is past due; outcome."""
    subscription_id = invoice_subscription_id(invoice)
    if not subscription_id:
        return EventOutcome.IGNORED
    with atomic():
        record = _subscription_for(
            subscription_id, invoice_metadata(invoice), invoice.get("customer"), None, "past_due"
        )
        if record is None:
            return EventOutcome.UNMATCHED
        when = timestamp(created)
        if _is_stale(record, when) or record.status in ENDED:
            return EventOutcome.IGNORED
        record.status, record.updated_at = "past_due", utcnow()
        record.last_event_at = when or record.last_event_at
        notices.subscription_payment_failed(
            record.user_id, invoice["id"], int(invoice.get("attempt_count") or 1)
        )
    return EventOutcome.PROCESSED


def apply_subscription(subscription: Obj, created: int, *, deleted: bool = False) -> str:
    """customer.subscription.created/updated/deleted: follow plan, status, cancellation."""
    price_id = subscription_price_id(subscription)
    status = "canceled" if deleted else subscription.get("status") or "active"
    with atomic():
        record = _subscription_for(
            subscription["id"],
            subscription.get("metadata") or {},
            subscription.get("customer"),
            price_id,
            status,
        )
        if record is None:
            return EventOutcome.UNMATCHED
        when = timestamp(created)
        if _is_stale(record, when):
            return EventOutcome.IGNORED
        plan = plans.plan_for_price(price_id) or plans.find_plan(
            (subscription.get("metadata") or {}).get("plan")
        )
        if plan is not None:
            record.plan_code = plan.code
        start, end = subscription_period(subscription)
        record.current_period_start = start or record.current_period_start
        record.current_period_end = end or record.current_period_end
        record.status = status
        record.cancel_at_period_end = bool(subscription.get("cancel_at_period_end"))
        record.cancel_at = timestamp(subscription.get("cancel_at")) or (
            record.current_period_end if record.cancel_at_period_end else None
        )
        record.last_event_at, record.updated_at = when or record.last_event_at, utcnow()
    return EventOutcome.PROCESSED


def _is_stale(record: Subscription, when: datetime | None) -> bool:
    return bool(when and record.last_event_at and when < record.last_event_at)


def _subscription_for(
    stripe_id: str, metadata: Obj, customer: Any, price_id: str | None, status: str
) -> Subscription | None:
    """The subscription row, locked; created from the event when it is the first we hear."""
    record = _locked(stripe_id)
    if record is not None:
        return record
    plan = plans.plan_for_price(price_id) or plans.find_plan(metadata.get("plan"))
    user_id = _user_id(metadata, customer)
    if plan is None or user_id is None:
        return None
    return _ensure_subscription(stripe_id, user_id, plan.code, status)


def _locked(stripe_id: str) -> Subscription | None:
    return db.session.scalars(
        locked(sa.select(Subscription).where(Subscription.stripe_subscription_id == stripe_id))
    ).first()


def _ensure_subscription(stripe_id: str, user_id: int, plan_code: str, status: str) -> Subscription:
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


def _user_id(metadata: Obj, customer: Any) -> int | None:
    """The user named by our metadata, else the owner of the Stripe customer."""
    raw = str(metadata.get("user_id") or "")
    if raw.isdigit() and db.session.get(User, int(raw)) is not None:
        return int(raw)
    customer_id = id_of(customer)
    if not customer_id:
        return None
    return db.session.scalar(sa.select(User.id).where(User.stripe_customer_id == customer_id))


# --- what the credits page shows


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
