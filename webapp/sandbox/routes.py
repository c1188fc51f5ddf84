"""The sandbox checkout page: pays through a signed webhook, like Stripe would."""

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from webapp.extensions import db
from webapp.sandbox import bp
from webapp.stripe_double import sandbox_double
from webapp.stripe_double.events import deliver_event


def _session_or_404(session_id: str) -> dict:
    session = sandbox_double(current_app).objects.get(session_id)
    if session is None or session.get("object") != "checkout.session":
        abort(404)
    if session.get("metadata", {}).get("user_id") != str(current_user.id):
        abort(404)
    return session


def deliver(event_type: str, obj: dict) -> int:
    """Sign an event as Stripe does and post it to our own webhook endpoint."""
    return deliver_event(
        event_type, obj, secret=current_app.config["STRIPE_WEBHOOK_SECRET"], post=_post_webhook
    )


def _post_webhook(payload: str, headers: dict[str, str]) -> int:
    db.session.close()  # release this request's database transaction before the delivery
    with current_app.test_client() as client:
        response = client.post(url_for("webhooks.stripe_webhook"), data=payload, headers=headers)
    return response.status_code


# The saved test cards the sandbox offers, and what their next off-session charge does.
SANDBOX_CARDS = (
    ("4242", "succeeds"),
    ("0002", "is declined"),
    ("3184", "needs the card holder (authentication)"),
)


@bp.get("/sandbox/checkout/<session_id>")
@login_required
def checkout(session_id):
    return render_template(
        "sandbox/checkout.html", session=_session_or_404(session_id), sandbox_cards=SANDBOX_CARDS
    )


@bp.post("/sandbox/checkout/<session_id>/<action>")
@login_required
def act(session_id, action):
    session = _session_or_404(session_id)
    double = sandbox_double(current_app)
    if action == "pay" and session.get("mode") == "subscription":
        _deliver_subscription_start(double, session_id)
    elif action == "pay":
        card = request.form.get("card", "4242")
        card = card if card in {last4 for last4, _ in SANDBOX_CARDS} else "4242"
        deliver(
            "checkout.session.completed", double.complete_checkout_session(session_id, card=card)
        )
    elif action == "pay-later":
        deliver(
            "checkout.session.completed", double.complete_checkout_session(session_id, paid=False)
        )
    elif action == "settle":
        deliver(
            "checkout.session.async_payment_succeeded",
            double.complete_checkout_session(session_id, paid=True),
        )
    elif action == "fail":
        deliver("checkout.session.async_payment_failed", double.objects[session_id])
    elif action == "expire":
        deliver("checkout.session.expired", double.expire_checkout_session(session_id))
        flash("The checkout expired without payment: nothing was charged.", "info")
        return redirect(url_for("credits.index"))
    else:
        abort(404)
    return redirect(session["success_url"].replace("{CHECKOUT_SESSION_ID}", session_id))


# --- subscriptions: what Stripe would send over a subscription's life


def _deliver_subscription_start(double, session_id: str) -> None:
    # Stripe does not order these; the invoice often arrives before the session.
    session = double.complete_checkout_session(session_id)
    subscription = double.objects[session["subscription"]]
    deliver("invoice.paid", double.objects[subscription["latest_invoice"]])
    deliver("customer.subscription.created", subscription)
    deliver("checkout.session.completed", session)


def _own_subscriptions(double) -> list[dict]:
    return [
        obj
        for obj in list(double.objects.values())
        if obj.get("object") == "subscription"
        and obj.get("metadata", {}).get("user_id") == str(current_user.id)
    ]


@bp.get("/sandbox/portal/<portal_id>")
@login_required
def portal(portal_id):
    double = sandbox_double(current_app)
    session = double.objects.get(portal_id)
    if session is None or session.get("customer") != current_user.stripe_customer_id:
        abort(404)
    return render_template(
        "sandbox/portal.html",
        portal=session,
        subscriptions=_own_subscriptions(double),
        sandbox_cards=SANDBOX_CARDS,
    )


@bp.post("/sandbox/portal/<portal_id>/card")
@login_required
def portal_card(portal_id):
    """The customer replaces their default card in the portal."""
    double = sandbox_double(current_app)
    session = double.objects.get(portal_id)
    card = request.form.get("card", "")
    if (
        session is None
        or session.get("customer") != current_user.stripe_customer_id
        or card not in {last4 for last4, _ in SANDBOX_CARDS}
    ):
        abort(404)
    double.change_default_card(session["customer"], card)
    return redirect(url_for("sandbox.portal", portal_id=portal_id))


@bp.post("/sandbox/subscriptions/<sub_id>/<action>")
@login_required
def subscription_act(sub_id, action):
    double = sandbox_double(current_app)
    if sub_id not in {sub["id"] for sub in _own_subscriptions(double)}:
        abort(404)
    if action in ("renew", "fail-renewal"):
        subscription, invoice = double.renew_subscription(sub_id, paid=action == "renew")
        deliver("invoice.paid" if action == "renew" else "invoice.payment_failed", invoice)
        deliver("customer.subscription.updated", subscription)
    elif action in ("cancel", "cancel-now"):
        subscription = double.cancel_subscription(sub_id, at_period_end=action == "cancel")
        deliver(
            "customer.subscription.deleted"
            if action == "cancel-now"
            else "customer.subscription.updated",
            subscription,
        )
    else:
        abort(404)
    return redirect(url_for("credits.index"))


# --- events Stripe sends on its own (charge.refunded after an admin's refund)


@bp.teardown_app_request
def deliver_pending_events(_error=None) -> None:
    """Deliver what the double recorded during this request, as Stripe would send it.

    Runs after the view and its transactions are done (deliver() closes this request's
    session first): on SQLite a transaction holds the write lock, so delivering in the
    middle of one would wait on itself.
    """
    double = current_app.extensions.get("stripe_sandbox")
    if double is None:
        return
    for event_type, obj in double.take_pending_events():
        try:
            status = deliver(event_type, obj)
        except Exception:  # the sandbox must not break the request that caused the event
            current_app.logger.exception("sandbox: delivering %s failed", event_type)
            continue
        if status >= 400:
            current_app.logger.warning("sandbox: %s was answered %s", event_type, status)
