from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from webapp.admin import bp
from webapp.admin.forms import AdjustForm
from webapp.domain import admin_ops, admin_reports, autorecharge, ledger, reports
from webapp.domain.errors import (
    HoldNotOpenError,
    InsufficientCreditsError,
    InvalidAmountError,
    NotFoundError,
)
from webapp.extensions import db
from webapp.hardening import MAX_BIG_ID, cursor_arg
from webapp.models import User


@bp.get("/users")
def user_list():
    q = request.args.get("q", "")
    before = cursor_arg()
    page = admin_reports.users_page(q, before, current_app.config["HISTORY_PAGE_SIZE"])
    return render_template("admin/users.html", page=page, q=q, before=before)


def render_user(user: User, form: AdjustForm, status: int = 200):
    before = cursor_arg(largest=MAX_BIG_ID)  # pages the user's ledger
    size = current_app.config["HISTORY_PAGE_SIZE"]
    account = reports.account_for(user.id)
    return render_template(
        "admin/user_detail.html",
        user=user,
        form=form,
        before=before,
        account=account,
        expiring=reports.expiring_grants(account),
        ledger=reports.ledger_page(user.id, before, size),
        purchases=reports.purchases_page(user.id, None, 10).items,
        actions=admin_reports.admin_actions_for(admin_ops.AdminTarget.USER, user.id),
        holds=ledger.open_holds(user.id),
        recharge=autorecharge.settings_for(user.id),
        recharge_attempts=autorecharge.recent_attempts(user.id, 5),
    ), status


@bp.get("/users/<int:user_id>")
def user_detail(user_id: int):
    return render_user(db.get_or_404(User, user_id), AdjustForm(formdata=None))


@bp.post("/users/<int:user_id>/adjust")
def user_adjust(user_id: int):
    user = db.get_or_404(User, user_id)
    form = AdjustForm()
    if not form.validate_on_submit():
        return render_user(user, form, 400)
    try:
        balance = admin_ops.adjust_credits(
            current_user.id, user.id, form.credits.data, form.reason.data
        )
    except (InvalidAmountError, InsufficientCreditsError) as exc:
        form.credits.errors.append(str(exc))
        return render_user(user, form, 400)
    flash(f"{form.credits.data:+,} credits for {user.email}; balance now {balance:,}.", "success")
    return redirect(url_for("admin.user_detail", user_id=user.id), code=303)


@bp.post("/users/<int:user_id>/holds/<hold_id>/release")
def user_hold_release(user_id: int, hold_id: str):
    user = db.get_or_404(User, user_id)
    try:
        answer = admin_ops.release_hold(current_user.id, user.id, hold_id)
    except NotFoundError:
        abort(404)
    except HoldNotOpenError as exc:
        flash(f"Hold {hold_id} was not released: {exc}", "error")
    else:
        flash(
            f"Released hold {hold_id}: {answer['released']:,} credits available again.", "success"
        )
    return redirect(url_for("admin.user_detail", user_id=user.id), code=303)
