"""Maps each Stripe event type to one domain call; returns the event's outcome."""

from collections.abc import Callable
from typing import Any

from webapp.domain import autorecharge, events, ledger, linking, receipts, subscriptions
from webapp.domain.ledger import Fulfilment
from webapp.domain.ledger.recharge_outcomes import Outcome
from webapp.domain.sql import is_postgresql
from webapp.domain.stripe_objects import (
    CARD_PURPOSE,
    SUBSCRIPTION_PURPOSE,
    TOPUP_PURPOSE,
    id_of,
    purpose_of,
)
from webapp.models import EventOutcome, PurchaseStatus

Event = dict[str, Any]


def _topup_session(event: Event) -> dict[str, Any] | None:
    session = event["data"]["object"]
    if purpose_of(session) != TOPUP_PURPOSE:
        return None
    return session


def _on_session(apply: Callable[[dict[str, Any]], ledger.FulfilmentResult]):
    def handler(event: Event) -> str:
        session = _topup_session(event)
        if session is None:
            return EventOutcome.IGNORED
        result = apply(session)
        if result.outcome is Fulfilment.UNKNOWN:
            return EventOutcome.UNMATCHED
        return EventOutcome.PROCESSED

    return handler


def fast_path(event: Event) -> str | None:
    """PostgreSQL: claim the event and credit a paid top-up session's purchase in one
    statement, from the very conditions fulfil_checkout_session uses (events.FastPath)."""
    old_status = _FAST_FROM.get(event["type"])
    if old_status is None or not is_postgresql():
        return None
    session = _topup_session(event)
    if session is None or (session.get("metadata") or {}).get("save_card") == "1":
        return None  # a saved card besides the credit: the full handler does both
    params = ledger.one_statement_params(session, old_status)
    if params is None:
        return None
    claimed, credited = events.claim_and_run(event, ledger.one_statement_credit, params)
    if not ledger.one_statement_done(credited):
        return events.CLAIMED if claimed else events.DUPLICATE
    return EventOutcome.PROCESSED


# The status a purchase has when these events usually credit it: any other goes the
# ordinary way.
_FAST_FROM = {
    "checkout.session.completed": PurchaseStatus.PENDING,
    "checkout.session.async_payment_succeeded": PurchaseStatus.PROCESSING,
}


def handle_event(event: Event) -> str:
    handler = HANDLERS.get(event["type"])
    return handler(event) if handler else EventOutcome.IGNORED


# --- Refunds and disputes: found through the charge or payment intent they carry.
# Companion events (refund.created, refund.updated, charge.refund.updated,
# charge.dispute.funds_withdrawn / funds_reinstated) are left unmapped: charge.refunded
# and the dispute events already carry the whole story. payment_intent.* events matter
# only for auto-recharge charges (below).

Apply = Callable[[int, dict[str, Any]], int]


def _on_payment(charge_field: str, apply: Apply, apply_to_grant: Apply):
    """A charge's refund or dispute: the purchase it paid, or the plan grant its invoice paid."""

    def handler(event: Event) -> str:
        obj = event["data"]["object"]
        charge_id = obj["id"] if charge_field == "id" else id_of(obj.get(charge_field))
        link = linking.purchase_for_payment(charge_id, id_of(obj.get("payment_intent")))
        if link.grant_id is not None:
            apply_to_grant(link.grant_id, obj)
            return EventOutcome.PROCESSED
        if link.purchase_id is None:
            return EventOutcome.UNMATCHED if link.ours else EventOutcome.IGNORED
        if link.payment_intent_id and not obj.get("payment_intent"):
            obj = {**obj, "payment_intent": link.payment_intent_id}
        apply(link.purchase_id, obj)
        return EventOutcome.PROCESSED

    return handler


# --- subscriptions


def _subscription_session_or(topup_handler: Callable[[Event], str]) -> Callable[[Event], str]:
    """Subscription Checkout Sessions go to the subscription code, the rest as before."""

    def handler(event: Event) -> str:
        session = event["data"]["object"]
        if purpose_of(session) == SUBSCRIPTION_PURPOSE:
            return subscriptions.record_checkout_session(session)
        return topup_handler(event)

    return handler


# --- auto-recharge: saved cards and off-session charges


def _saving_card_or(handler: Callable[[Event], str]) -> Callable[[Event], str]:
    """A setup-mode session saves its card; a purchase with save_card=1 is fulfilled as
    any purchase and saves its card too (whatever the fulfilment found)."""

    def saving(event: Event) -> str:
        session = event["data"]["object"]
        if purpose_of(session) == CARD_PURPOSE:
            saved = autorecharge.save_card_from_session(session)
            return EventOutcome.PROCESSED if saved else EventOutcome.UNMATCHED
        outcome = handler(event)
        autorecharge.save_card_from_session(session)
        return outcome

    return saving


def _on_payment_intent(event: Event) -> str:
    outcome = autorecharge.on_payment_intent(event["data"]["object"])
    return EventOutcome.IGNORED if outcome is Outcome.UNKNOWN else EventOutcome.PROCESSED


def _topup_invoice_or(other_handler: Callable[[Event], str]) -> Callable[[Event], str]:
    """A top-up's invoice (CHECKOUT_INVOICES) gives its purchase the invoice links."""

    def handler(event: Event) -> str:
        invoice = event["data"]["object"]
        if receipts.is_topup_invoice(invoice):
            return receipts.apply_invoice(invoice)
        return other_handler(event)

    return handler


HANDLERS: dict[str, Callable[[Event], str]] = {
    "checkout.session.completed": _saving_card_or(
        _subscription_session_or(_on_session(ledger.fulfil_checkout_session))
    ),
    "checkout.session.async_payment_succeeded": _on_session(ledger.fulfil_checkout_session),
    "checkout.session.async_payment_failed": _on_session(ledger.mark_session_failed),
    "checkout.session.expired": _on_session(ledger.mark_session_expired),
    "charge.refunded": _on_payment("id", ledger.apply_refund, ledger.refund_grant),
    "charge.dispute.created": _on_payment("charge", ledger.open_dispute, ledger.open_grant_dispute),
    "charge.dispute.closed": _on_payment(
        "charge", ledger.close_dispute, ledger.close_grant_dispute
    ),
    "invoice.paid": _topup_invoice_or(
        lambda event: subscriptions.apply_invoice_paid(event["data"]["object"])
    ),
    "invoice.finalized": _topup_invoice_or(lambda event: EventOutcome.IGNORED),
    "invoice.payment_failed": lambda event: subscriptions.apply_invoice_failed(
        event["data"]["object"], event.get("created")
    ),
    "customer.subscription.created": lambda event: subscriptions.apply_subscription(
        event["data"]["object"], event.get("created")
    ),
    "customer.subscription.updated": lambda event: subscriptions.apply_subscription(
        event["data"]["object"], event.get("created")
    ),
    "customer.subscription.deleted": lambda event: subscriptions.apply_subscription(
        event["data"]["object"], event.get("created"), deleted=True
    ),
    "payment_intent.succeeded": _on_payment_intent,
    "payment_intent.payment_failed": _on_payment_intent,
    "payment_intent.canceled": _on_payment_intent,
    "payment_intent.requires_action": _on_payment_intent,
    "payment_intent.processing": _on_payment_intent,
}
