"""JSON API under /api/v1; every error is JSON; its OpenAPI document is built from api.schemas."""

from flask_smorest import Blueprint

from webapp.extensions import csrf

bp = Blueprint(
    "api", __name__, url_prefix="/api/v1", description="Balance, purchases, usage and holds."
)
# CSRF is checked per request in api.auth: only session-authenticated calls need it.
csrf.exempt(bp)

from webapp.api import routes  # noqa: E402,F401
