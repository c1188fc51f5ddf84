"""Stripe webhook endpoint."""

from flask import Blueprint

bp = Blueprint("webhooks", __name__)

from webapp.webhooks import routes  # noqa: E402,F401
