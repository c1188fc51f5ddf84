"""An in-process Stripe API double, plugged into the `stripe` library as its HTTP client.

The development sandbox uses it so the app's Stripe code runs unchanged without keys;
the tests use it with Stripe's published example objects as templates, so every request
is checked as it leaves the library. It knows the few endpoints this app calls.

core.py answers the library (routing, idempotency, the object store); wire.py holds
Stripe's request and error shapes; params.py checks parameters; checkout.py,
payments.py, invoices.py and subscriptions.py answer per resource; shared.py shares the
sandbox's double between processes; events.py signs and delivers webhook events.
"""

from webapp.stripe_double.checkout import CheckoutSessions
from webapp.stripe_double.core import Templates, minimal_templates
from webapp.stripe_double.invoices import Invoices
from webapp.stripe_double.payments import TEST_CARDS, Payments
from webapp.stripe_double.subscriptions import Subscriptions
from webapp.stripe_double.wire import decode_form

__all__ = [
    "TEST_CARDS",
    "StripeDouble",
    "Templates",
    "decode_form",
    "minimal_templates",
    "sandbox_double",
]


class StripeDouble(CheckoutSessions, Payments, Invoices, Subscriptions):
    """The whole double: each resource class adds its answers to the core."""


def sandbox_double(app) -> StripeDouble:
    """The app's sandbox double, created on first use."""
    double = app.extensions.get("stripe_sandbox")
    if double is None:
        path = app.config.get("SANDBOX_STATE_PATH")
        if path:  # the app and its worker (another process) share one sandbox Stripe
            from webapp.stripe_double.shared import SharedDouble

            double = SharedDouble(path)
        else:
            double = StripeDouble(minimal_templates, checkout_base="")
        double.pending_events = []  # delivered after each request by webapp.sandbox.routes
        app.extensions["stripe_sandbox"] = double
    return double
