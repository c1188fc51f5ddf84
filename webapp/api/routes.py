from flask import g, jsonify

from webapp.api import bp
from webapp.api.auth import api_login_required
from webapp.domain import reports


@bp.get("/balance")
@api_login_required
def balance():
    return jsonify(reports.balance_json(reports.account_for(g.api_user.id)))
