"""JSON API under /api/v1; every error is JSON; its OpenAPI document is built from api.schemas."""

from flask_smorest import Blueprint

from webapp.domain import api_keys
from webapp.extensions import csrf

bp = Blueprint(
    "api", __name__, url_prefix="/api/v1", description="Balance, purchases, usage and holds."
)
# CSRF is checked per request in api.auth: only session-authenticated calls need it.
csrf.exempt(bp)


@bp.after_request
def record_key_use(response):
    api_keys.record_use_if_pending()
    return response


@bp.teardown_request
def forget_key_use(_exc):
    api_keys.forget_pending_use()  # a request that ended in an unhandled error


from webapp.api import routes  # noqa: E402,F401
