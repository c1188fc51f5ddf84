from flask import abort, flash, redirect, render_template, session, url_for
from flask_login import current_user, login_required

from webapp.account import bp
from webapp.account.forms import ApiKeyForm
from webapp.domain import api_keys
from webapp.domain.errors import NotFoundError


@bp.before_request
@login_required
def require_login():
    pass


NEW_KEY = "new_api_key"


def render_index(form: ApiKeyForm, new_key: dict | None = None, status: int = 200):
    html = render_template(
        "account/index.html", form=form, new_key=new_key, keys=api_keys.keys_for(current_user.id)
    )
    # The page may hold a key shown once: no cache, no back-button copy, keeps it.
    return html, status, {"Cache-Control": "no-store"}


@bp.get("")
def index():
    # Shown on the first page after the POST that made it, then forgotten: a reload
    # neither shows it again nor mints another key.
    return render_index(ApiKeyForm(), session.pop(NEW_KEY, None))


@bp.post("/api-keys")
def key_create():
    form = ApiKeyForm()
    if not form.validate_on_submit():
        return render_index(form, status=400)
    minted = api_keys.mint(current_user.id, form.label.data or "")
    session[NEW_KEY] = {"secret": minted.secret, "label": minted.api_key.label}
    return redirect(url_for("account.index"), code=303)


@bp.post("/api-keys/<int:key_id>/revoke")
def key_revoke(key_id: int):
    try:
        revoked = api_keys.revoke(current_user.id, key_id)
    except NotFoundError:
        abort(404)
    flash(f"Key {revoked.prefix}… revoked; it no longer works.", "success")
    return redirect(url_for("account.index"), code=303)
