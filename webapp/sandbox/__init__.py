"""Local checkout sandbox: a Stripe stand-in for development without keys."""

from flask import Blueprint

bp = Blueprint("sandbox", __name__)

from webapp.sandbox import routes  # noqa: E402,F401
