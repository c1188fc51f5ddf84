"""Auto-recharge on /credits: saving a card, the settings form, confirming a charge."""

from flask import abort, flash, redirect, request, url_for
from flask_login import current_user

from webapp.credits import bp
from webapp.credits.forms import AutoRechargeForm, BuyForm
from webapp.credits.routes import render_index
from webapp.domain import autorecharge, checkout
from webapp.domain.autorecharge import InvalidSettingsError
from webapp.domain.errors import NotFoundError, PaymentProviderError


@bp.post("/auto-recharge/card")
def save_card():
    try:
        url = autorecharge.start_card_setup(
            current_user, checkout.public_base_url(request.url_root)
        )
    except PaymentProviderError as exc:
        flash(str(exc), "error")
        return render_index(BuyForm(formdata=None), 502)
    return redirect(url, code=303)


@bp.post("/auto-recharge")
def recharge_settings():
    form = AutoRechargeForm()
    if not form.validate_on_submit():
        return render_index(BuyForm(formdata=None), 400, form)
    try:
        settings = autorecharge.parse_settings(
            form.enabled.data,
            form.threshold.data or "",
            form.amount.data or "",
            form.monthly_limit.data or "",
        )
        autorecharge.save_settings(current_user.id, settings)
    except InvalidSettingsError as exc:
        for name, message in exc.errors.items():
            getattr(form, name).errors.append(message)
        return render_index(BuyForm(formdata=None), 400, form)
    flash(
        "Auto-recharge is on." if settings.enabled else "Auto-recharge settings saved.", "success"
    )
    return redirect(url_for("credits.index"), code=303)


@bp.get("/auto-recharge/confirm/<int:purchase_id>")
def confirm_recharge(purchase_id: int):
    try:
        url = autorecharge.confirmation_url(
            current_user, purchase_id, checkout.public_base_url(request.url_root)
        )
    except NotFoundError:
        abort(404)
    except PaymentProviderError as exc:
        flash(str(exc), "error")
        return redirect(url_for("credits.index"))
    if url is None:
        flash("This auto-recharge no longer needs you: nothing to confirm.", "info")
        return redirect(url_for("credits.index"))
    return redirect(url, code=303)
