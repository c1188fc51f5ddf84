"""Subscriptions to monthly credit plans and the Stripe customer portal."""

from flask import Blueprint

bp = Blueprint("billing", __name__, url_prefix="/billing")

from webapp.billing import routes  # noqa: E402,F401
