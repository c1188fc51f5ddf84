"""Who is calling the API: `Authorization: Bearer <api key>` or a logged-in browser session."""

from functools import wraps

from flask import current_app, g, jsonify, request
from flask_login import current_user
from flask_wtf.csrf import CSRFError

from webapp.domain import api_keys
from webapp.extensions import csrf


def api_error(status: int, error: str, **extra):
    return jsonify(error=error, **extra), status


def _bearer_secret() -> str | None:
    """The key in an Authorization header, "" for a malformed one, None without the header."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, secret = header.partition(" ")
    return secret.strip() if scheme.lower() == "bearer" else ""


def api_login_required(view):
    """Bearer key first (no CSRF: it is not a cookie); else a session, whose POSTs need CSRF.

    Sets g.api_user_id, and g.api_key (an api_keys.Caller: key_id, prefix) for a key."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        secret = _bearer_secret()
        if secret is not None:
            caller = api_keys.authenticate(secret) if secret else None
            if caller is None:
                return api_error(
                    401, "invalid_api_key", message="The API key is unknown or has been revoked."
                )
            g.api_user_id, g.api_key = caller.user_id, caller
        elif current_user.is_authenticated:
            if current_app.config.get("WTF_CSRF_ENABLED", True):
                try:
                    csrf.protect()
                except CSRFError as exc:
                    return api_error(400, "csrf_failed", message=exc.description)
            g.api_user_id, g.api_key = current_user.id, None
        else:
            return api_error(
                401, "authentication_required", message="Send a logged-in session or an API key."
            )
        return view(*args, **kwargs)

    return wrapper
