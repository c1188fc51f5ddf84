"""Admin area: every route here requires the admin role."""

from flask import Blueprint, abort
from flask_login import current_user

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
def require_admin():
    if not current_user.is_authenticated:
        from webapp.extensions import login_manager

        return login_manager.unauthorized()
    if not current_user.is_admin:
        abort(403)


from webapp.admin import jobs as _jobs  # noqa: E402,F401,I001
from webapp.admin import routes  # noqa: E402,F401
from webapp.admin import subscriptions as _subscriptions  # noqa: E402,F401,I001
