"""The user's account page: API keys."""

from flask import Blueprint

bp = Blueprint("account", __name__, url_prefix="/account")

from webapp.account import routes  # noqa: E402,F401
