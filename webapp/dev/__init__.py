"""Developer tools, registered only when APP_ENV is development: the local mail outbox."""

from flask import Blueprint

bp = Blueprint("dev", __name__, url_prefix="/dev")

from webapp.dev import routes  # noqa: E402,F401
