"""Monthly plans through Stripe Checkout: subscribing, following Stripe's events, granting credits.

subscribe.py starts a subscription (Checkout) and takes the user's return from it,
events.py follows Stripe's subscription and invoice events, page.py is what the credits
page shows, records.py finds and creates the subscription rows the others work on.
"""

from webapp.domain.subscriptions.events import (
    apply_invoice_failed,
    apply_invoice_paid,
    apply_subscription,
    record_checkout_session,
)
from webapp.domain.subscriptions.page import PlanView, plan_view, status_words
from webapp.domain.subscriptions.records import ENDED, live_subscription
from webapp.domain.subscriptions.subscribe import confirm_checkout_session, start_subscription

__all__ = [
    "ENDED",
    "PlanView",
    "apply_invoice_failed",
    "apply_invoice_paid",
    "apply_subscription",
    "confirm_checkout_session",
    "live_subscription",
    "plan_view",
    "record_checkout_session",
    "start_subscription",
    "status_words",
]
