"""Who is calling the API: a logged-in browser session (API keys join in later)."""

from functools import wraps

from flask import g, jsonify
from flask_login import current_user


def api_error(status: int, error: str, **extra):
    return jsonify(error=error, **extra), status


def api_login_required(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        if not current_user.is_authenticated:
            return api_error(401, "authentication_required",
                             message="Send a logged-in session or an API key.")
        g.api_user = current_user._get_current_object()
        return view(*args, **kwargs)

    return wrapper
