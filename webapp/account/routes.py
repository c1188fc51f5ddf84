from flask import abort, flash, redirect, render_template, url_for
from flask_login import current_user, login_required

from webapp.account import bp
from webapp.account.forms import ApiKeyForm
from webapp.domain import api_keys, reports
from webapp.domain.errors import NotFoundError


@bp.before_request
@login_required
def require_login():
    pass


def render_index(form: ApiKeyForm, new_key: api_keys.MintedKey | None = None, status: int = 200):
    return render_template("account/index.html", form=form, new_key=new_key,
                           keys=api_keys.keys_for(current_user.id),
                           spend=reports.spend_by_key(current_user.id)), status


@bp.get("")
def index():
    return render_index(ApiKeyForm())


@bp.post("/api-keys")
def key_create():
    form = ApiKeyForm()
    if not form.validate_on_submit():
        return render_index(form, status=400)
    # Rendered, not redirected: this response is the only time the key is ever shown.
    return render_index(ApiKeyForm(formdata=None),
                        api_keys.mint(current_user.id, form.label.data or ""), 201)


@bp.post("/api-keys/<int:key_id>/revoke")
def key_revoke(key_id: int):
    try:
        revoked = api_keys.revoke(current_user.id, key_id)
    except NotFoundError:
        abort(404)
    flash(f"Key {revoked.prefix}… revoked; it no longer works.", "success")
    return redirect(url_for("account.index"), code=303)
