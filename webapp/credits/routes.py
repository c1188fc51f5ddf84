from flask import abort, current_app, flash, redirect, render_template, request
from flask_login import current_user, login_required

from webapp.credits import bp, chart
from webapp.credits.forms import AutoRechargeForm, BuyForm
from webapp.domain import (
    autorecharge,
    catalog,
    checkout,
    ledger,
    pricing,
    receipts,
    reports,
    subscriptions,
)
from webapp.domain.errors import InvalidPurchaseError, PaymentProviderError
from webapp.extensions import caller_key, configured_limit, limiter
from webapp.hardening import MAX_BIG_ID, MAX_ID, cursor_arg


@bp.before_request
@login_required
def require_login():
    pass


def render_index(form: BuyForm, status: int = 200, recharge_form: AutoRechargeForm | None = None):
    account = reports.account_for(current_user.id)
    settings = autorecharge.settings_for(current_user.id)
    return render_template(
        "credits/index.html",
        form=form,
        account=account,
        held=ledger.held_now(account),
        expiring=reports.expiring_grants(account),
        plan=subscriptions.plan_view(current_user.id),
        recharge=settings,
        recharge_form=recharge_form
        or AutoRechargeForm(formdata=None, data=autorecharge.form_values(settings)),
        recharge_waiting=autorecharge.waiting_attempt(current_user.id),
        recent=reports.ledger_page(current_user.id, None, 5).items,
        packs=catalog.offered_quotes(),
        chart=chart.build(reports.credits_by_day(current_user.id)),
    ), status


@bp.get("")
def index():
    card_session = request.args.get("card_session", "")
    if card_session:
        try:
            if autorecharge.card_session_returned(current_user, card_session):
                flash("Your card is saved for auto-recharge.", "success")
        except PaymentProviderError:
            flash(
                "We could not check your card with Stripe just now; it will show here "
                "as soon as Stripe confirms it.",
                "info",
            )
    return render_index(BuyForm())


@bp.post("/checkout")
@limiter.shared_limit(
    configured_limit("CHECKOUT_RATE_LIMIT"), scope="checkout", key_func=caller_key
)
def buy():
    form = BuyForm()
    if not form.validate_on_submit():
        return render_index(form, 400)
    base_url = checkout.public_base_url(request.url_root)
    try:
        if form.pack.data:
            purchase = checkout.start_pack_checkout(
                current_user, form.pack.data, base_url, save_card=form.save_card.data
            )
        else:
            credits = pricing.parse_credits(form.credits.data)
            purchase = checkout.start_checkout(
                current_user, credits, base_url, save_card=form.save_card.data
            )
    except InvalidPurchaseError as exc:
        (form.pack if form.pack.data else form.credits).errors.append(str(exc))
        return render_index(form, 400)
    except PaymentProviderError as exc:
        flash(str(exc), "error")
        return render_index(form, 502)
    return redirect(purchase.checkout_url, code=303)


@bp.get("/success")
def success():
    session_id = request.args.get("session_id", "")
    returned = checkout.confirm_return(current_user.id, session_id)
    if returned is None:
        return subscription_success(session_id)
    if returned.stripe_unreachable:
        flash(
            "We could not check this payment with Stripe just now; "
            "your credits will arrive as soon as Stripe confirms it.",
            "info",
        )
    return render_template(
        "credits/success.html",
        purchase=returned.purchase,
        account=reports.account_for(current_user.id),
    )


@bp.get("/cancel")
def cancel():
    purchase_id = request.args.get("purchase", "")
    purchase = checkout.cancel_checkout(
        current_user.id,
        int(purchase_id)
        if purchase_id.isascii() and purchase_id.isdigit() and len(purchase_id) < 19
        else None,
    )
    return render_template("credits/cancel.html", purchase=purchase)


@bp.get("/history")
def history():
    tab = "payments" if request.args.get("tab") == "payments" else "activity"
    before = cursor_arg(largest=MAX_ID if tab == "payments" else MAX_BIG_ID)
    size = current_app.config["HISTORY_PAGE_SIZE"]
    if tab == "payments":
        page = reports.purchases_page(current_user.id, before, size)
        if receipts.fill_missing(page.items):  # first view of newly paid purchases
            page = reports.purchases_page(current_user.id, before, size)
    else:
        page = reports.ledger_page(current_user.id, before, size)
    return render_template("credits/history.html", page=page, tab=tab, before=before)


def subscription_success(session_id: str):
    """The success page for a subscription Checkout Session (no purchase behind it)."""
    try:
        session = subscriptions.confirm_checkout_session(session_id, current_user.id)
    except PaymentProviderError:
        session = {"id": session_id, "status": "unknown"}
    if session is None:
        abort(404)
    return render_template(
        "credits/subscribed.html",
        session=session,
        plan=subscriptions.plan_view(current_user.id),
        account=reports.account_for(current_user.id),
    )
