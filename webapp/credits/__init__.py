"""The credits page: meter, buying, success and history."""

from flask import Blueprint

bp = Blueprint("credits", __name__, url_prefix="/credits")

from webapp.credits import autorecharge, routes  # noqa: E402,F401
