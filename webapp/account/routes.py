from flask import abort, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user

from webapp.account import bp
from webapp.account.forms import ApiKeyForm, ChangePasswordForm, NotificationsForm
from webapp.auth.routes import AUTH_LIMIT
from webapp.domain import api_keys, reports, users
from webapp.domain.errors import NotFoundError
from webapp.extensions import limiter


@bp.before_request
@login_required
def require_login():
    pass


NEW_KEY = "new_api_key"


def render_index(form: ApiKeyForm, new_key: dict | None = None, status: int = 200):
    html = render_template(
        "account/index.html",
        form=form,
        new_key=new_key,
        keys=api_keys.keys_for(current_user.id),
        spend=reports.spend_by_key(current_user.id),
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


@bp.route("/password", methods=["GET", "POST"])
@limiter.limit(AUTH_LIMIT, methods=["POST"])  # it checks the current password, like login
def password():
    form = ChangePasswordForm()
    form.email = current_user.email
    if form.validate_on_submit():
        try:
            users.change_password(current_user, form.current_password.data, form.password.data)
        except users.WrongPasswordError as exc:
            form.current_password.errors.append(str(exc))
        else:
            login_user(current_user._get_current_object())  # this session, new version
            flash("Your password is changed; your other sessions were logged out.", "success")
            return redirect(url_for("account.index"), code=303)
    status = 400 if form.errors else 200
    return render_template("account/password.html", form=form), status


@bp.route("/notifications", methods=["GET", "POST"])
def notifications():
    current = users.preferences(current_user)
    form = NotificationsForm(
        data=None
        if request.method == "POST"
        else {
            "low_balance": current.low_balance,
            "auto_recharge": current.auto_recharge,
            "renewals": current.renewals,
            "low_balance_threshold": current.low_balance_threshold,
        }
    )
    if form.validate_on_submit():
        users.save_preferences(
            current_user,
            users.Preferences(
                form.low_balance.data,
                form.auto_recharge.data,
                form.renewals.data,
                form.low_balance_threshold.data,
            ),
        )
        flash("Your notification settings are saved.", "success")
        return redirect(url_for("account.notifications"), code=303)
    status = 400 if form.errors else 200
    return render_template("account/notifications.html", form=form), status
