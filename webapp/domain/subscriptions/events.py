"""Following Stripe's subscription and invoice events; each joins the event's transaction.

A paid invoice grants the plan's credits (through the ledger), a failed one makes the
subscription past due, customer.subscription.* events follow its plan, status and
cancellation.
"""

import logging
from datetime import datetime

from flask import current_app

from webapp.domain import ledger, notices, plans, stripe_gateway
from webapp.domain.errors import UnmatchedInvoiceError
from webapp.domain.pricing import format_money
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
from webapp.domain.subscriptions.records import (
    ENDED,
    Obj,
    ensure_subscription,
    subscription_for,
    user_id_for,
)
from webapp.domain.transaction import atomic
from webapp.models import EventOutcome, Subscription
from webapp.models.types import utcnow

log = logging.getLogger(__name__)


def record_checkout_session(session: Obj) -> str:
    """A completed subscription Checkout Session: the subscription exists; outcome."""
    metadata = session.get("metadata") or {}
    subscription_id = id_of(session.get("subscription"))
    plan = plans.find_plan(metadata.get("plan"))
    user_id = user_id_for(metadata, session.get("customer"))
    if not subscription_id or plan is None or user_id is None:
        return EventOutcome.UNMATCHED
    with atomic():
        status = "active" if session.get("payment_status") == "paid" else "incomplete"
        record = ensure_subscription(subscription_id, user_id, plan.code, status)
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
    if not plans.invoice_grants_credits(invoice):
        return EventOutcome.IGNORED
    subscription_id = invoice_subscription_id(invoice)
    line = invoice_paid_line(invoice)
    metadata = invoice_metadata(invoice)
    if not subscription_id or line is None:
        return _unmatched(invoice, metadata, "names no subscription line")
    with atomic():
        record = subscription_for(
            subscription_id, metadata, invoice.get("customer"), line_price_id(line), "active"
        )
        user_id = record.user_id if record else user_id_for(metadata, invoice.get("customer"))
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
        record = subscription_for(
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
        record = subscription_for(
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
