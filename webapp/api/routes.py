from flask import g, jsonify, request

from webapp.api import bp
from webapp.api.auth import api_error, api_login_required
from webapp.domain import checkout, reports, usage
from webapp.domain.errors import (
    IdempotencyKeyReusedError,
    InvalidPurchaseError,
    PaymentProviderError,
    UnknownPackError,
)
from webapp.domain.limits import MAX_CREDITS, out_of_bounds_message
from webapp.domain.text import has_nul, strip_controls
from webapp.extensions import caller_key, configured_limit, limiter

MAX_DESCRIPTION_LENGTH = 500


@bp.get("/balance")
@api_login_required
def balance():
    return jsonify(reports.balance_json(reports.account_for(g.api_user.id)))


def _json_body() -> dict | None:
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else None


def _positive_int(value) -> int | None:
    """JSON integers only (true, 3.0 and "3" are not credits), from 1 to MAX_CREDITS."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CREDITS:
        return None
    return value


@bp.post("/checkout")
@limiter.shared_limit(
    configured_limit("CHECKOUT_RATE_LIMIT"), scope="checkout", key_func=caller_key
)
@api_login_required
def checkout_create():
    body = _json_body()
    base_url = checkout.public_base_url(request.url_root)
    if body is not None and "pack" in body:
        return _pack_checkout(body["pack"], base_url)
    credits = _positive_int(body.get("credits")) if body is not None else None
    if credits is None:
        return api_error(400, "invalid_credits", message="credits must be an integer.")
    try:
        purchase = checkout.start_checkout(g.api_user, credits, base_url)
    except InvalidPurchaseError as exc:
        return api_error(400, "invalid_credits", message=str(exc))
    except PaymentProviderError as exc:
        return api_error(502, "payment_provider_error", message=str(exc))
    return jsonify(id=purchase.stripe_checkout_session_id, url=purchase.checkout_url), 201


def _pack_checkout(pack, base_url: str):
    """{"pack": "price_..."}: a Price pack on offer (UnknownPackError otherwise)."""
    try:
        purchase = checkout.start_pack_checkout(g.api_user, pack, base_url)
    except UnknownPackError as exc:
        return api_error(400, "unknown_pack", message=str(exc))
    except PaymentProviderError as exc:
        return api_error(502, "payment_provider_error", message=str(exc))
    return jsonify(id=purchase.stripe_checkout_session_id, url=purchase.checkout_url), 201


@bp.post("/usage")
@limiter.limit(configured_limit("USAGE_RATE_LIMIT"), key_func=caller_key)
@api_login_required
def usage_create():
    body = _json_body()
    if body is None:
        return api_error(400, "invalid_body", message="Send a JSON object.")
    credits = _positive_int(body.get("credits"))
    description = body.get("description", "")
    key = request.headers.get("Idempotency-Key")
    if credits is None:
        return api_error(400, "invalid_credits", message=out_of_bounds_message())
    if (
        not isinstance(description, str)
        or len(description) > MAX_DESCRIPTION_LENGTH
        or has_nul(description)
    ):
        return api_error(
            400,
            "invalid_description",
            message=f"description must be text of at most {MAX_DESCRIPTION_LENGTH} "
            "characters, without NUL characters.",
        )
    description = strip_controls(description)
    if key is not None and not 0 < len(key) <= usage.MAX_KEY_LENGTH:
        return api_error(
            400,
            "invalid_idempotency_key",
            message=f"Idempotency-Key must be 1 to {usage.MAX_KEY_LENGTH} characters.",
        )
    reference = g.api_key.prefix if g.api_key is not None else None
    try:
        answer = usage.spend(
            g.api_user.id, credits, description, idempotency_key=key, reference=reference
        )
    except IdempotencyKeyReusedError as exc:
        return api_error(409, "idempotency_key_reused", message=str(exc))
    response = jsonify(answer.body)
    if answer.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response, answer.status
