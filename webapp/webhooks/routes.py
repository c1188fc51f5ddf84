from flask import jsonify, request

from webapp.domain import stripe_gateway
from webapp.domain.errors import SignatureError
from webapp.domain.events import process_event
from webapp.extensions import csrf
from webapp.webhooks import bp
from webapp.webhooks.handlers import fast_path, handle_event


@bp.post("/webhooks/stripe")
@csrf.exempt
def stripe_webhook():
    try:
        event = stripe_gateway.verify_event(
            request.get_data(cache=False), request.headers.get("Stripe-Signature")
        )
    except SignatureError as exc:
        return jsonify(error="invalid_payload", message=str(exc)), 400
    request.environ["stripe.event_id"] = event["id"]
    try:
        process_event(event, handle_event, fast_path)
    except Exception:
        return jsonify(error="handler_failed"), 500
    return jsonify(received=True)
