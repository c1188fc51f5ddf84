"""JSON API under /api/v1; every error is JSON; its OpenAPI document is built from api.schemas."""

from flask_smorest import Blueprint
from webargs.flaskparser import FlaskParser

from webapp.domain import api_keys
from webapp.extensions import csrf


class JsonBodyParser(FlaskParser):
    """webargs' Flask parser, with a body json.loads refuses by ValueError (an integer past
    Python's 4,300-digit limit) answered as invalid JSON, like any other bad body."""

    def _raw_load_json(self, req):
        try:
            return super()._raw_load_json(req)
        except ValueError as exc:  # JSONDecodeError among them
            self._handle_invalid_json_error(exc, req)


bp = Blueprint(
    "api", __name__, url_prefix="/api/v1", description="Balance, purchases, usage and holds."
)
bp.ARGUMENTS_PARSER = JsonBodyParser()
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
