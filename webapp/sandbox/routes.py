"""The sandbox checkout page: pays through a signed webhook, like Stripe would."""

import json
import secrets
import time

from flask import abort, current_app, redirect, render_template, url_for
from flask_login import current_user, login_required

from webapp.domain import stripe_gateway
from webapp.extensions import db
from webapp.sandbox import bp
from webapp.sandbox.stripe_double import sandbox_double


def _session_or_404(session_id: str) -> dict:
    session = sandbox_double(current_app).objects.get(session_id)
    if session is None or session.get("object") != "checkout.session":
        abort(404)
    if session.get("metadata", {}).get("user_id") != str(current_user.id):
        abort(404)
    return session


def deliver(event_type: str, obj: dict) -> int:
    """Sign an event as Stripe does and post it to our own webhook endpoint."""
    event = {"id": f"evt_{secrets.token_hex(12)}", "object": "event", "api_version": "2025-09-30",
             "created": int(time.time()), "livemode": False, "pending_webhooks": 1,
             "request": {"id": None, "idempotency_key": None}, "type": event_type,
             "data": {"object": obj}}
    payload = json.dumps(event)
    signature = stripe_gateway.sign_payload(payload, current_app.config["STRIPE_WEBHOOK_SECRET"])
    db.session.close()  # release this request's database transaction before the delivery
    with current_app.test_client() as client:
        response = client.post(url_for("webhooks.stripe_webhook"), data=payload,
                               headers={"Stripe-Signature": signature,
                                        "Content-Type": "application/json"})
    return response.status_code


@bp.get("/sandbox/checkout/<session_id>")
@login_required
def checkout(session_id):
    return render_template("sandbox/checkout.html", session=_session_or_404(session_id))


@bp.post("/sandbox/checkout/<session_id>/<action>")
@login_required
def act(session_id, action):
    session = _session_or_404(session_id)
    double = sandbox_double(current_app)
    if action == "pay":
        deliver("checkout.session.completed", double.complete_checkout_session(session_id))
    elif action == "pay-later":
        deliver("checkout.session.completed",
                double.complete_checkout_session(session_id, paid=False))
    elif action == "settle":
        deliver("checkout.session.async_payment_succeeded",
                double.complete_checkout_session(session_id, paid=True))
    elif action == "fail":
        deliver("checkout.session.async_payment_failed", double.objects[session_id])
    elif action == "expire":
        deliver("checkout.session.expired", double.expire_checkout_session(session_id))
        return redirect(url_for("credits.index"))
    else:
        abort(404)
    return redirect(session["success_url"].replace("{CHECKOUT_SESSION_ID}", session_id))
