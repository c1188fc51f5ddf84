from flask import abort, flash, redirect, request, url_for
from flask_login import current_user, login_required

from webapp.billing import bp
from webapp.domain import checkout, stripe_gateway, subscriptions
from webapp.domain.errors import PaymentProviderError, UnknownPlanError


@bp.before_request
@login_required
def require_login():
    pass


@bp.post("/subscribe")
def subscribe():
    base_url = checkout.public_base_url(request.url_root)
    try:
        url = subscriptions.start_subscription(current_user, request.form.get("plan", ""),
                                               base_url)
    except UnknownPlanError as exc:
        abort(400, description=f"{exc} Choose one of the plans on the credits page.")
    except PaymentProviderError as exc:
        flash(str(exc), "error")
        return redirect(url_for("credits.index"))
    return redirect(url, code=303)


@bp.post("/portal")
def portal():
    if not current_user.stripe_customer_id:
        flash("You have no billing account yet: subscribe to a plan or buy credits first.",
              "info")
        return redirect(url_for("credits.index"))
    return_url = f"{checkout.public_base_url(request.url_root)}/credits"
    try:
        session = stripe_gateway.create_portal_session(current_user.stripe_customer_id,
                                                       return_url)
    except PaymentProviderError as exc:
        flash(str(exc), "error")
        return redirect(url_for("credits.index"))
    return redirect(session["url"], code=303)

