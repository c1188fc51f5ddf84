from flask import g, jsonify, request

from webapp.api import bp
from webapp.api.auth import api_error, api_login_required
from webapp.domain import autorecharge, checkout, reports, usage
from webapp.domain.errors import (
    IdempotencyKeyReusedError,
    InvalidPurchaseError,
    PaymentProviderError,
    UnknownPackError,
)

MAX_DESCRIPTION_LENGTH = 500


@bp.get("/balance")
@api_login_required
def balance():
    body = reports.balance_json(reports.account_for(g.api_user.id))
    return jsonify({**body, "auto_recharge": autorecharge.summary(g.api_user.id)})


def _json_body() -> dict | None:
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else None


def _positive_int(value) -> int | None:
    """JSON integers only: true, 3.0 and "3" are not credits."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return None
    return value


@bp.post("/checkout")
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
@api_login_required
def usage_create():
    body = _json_body()
    if body is None:
        return api_error(400, "invalid_body", message="Send a JSON object.")
    credits = _positive_int(body.get("credits"))
    description = body.get("description", "")
    key = request.headers.get("Idempotency-Key")
    if credits is None:
        return api_error(400, "invalid_credits", message="credits must be an integer >= 1.")
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION_LENGTH:
        return api_error(400, "invalid_description",
                         message=f"description must be text of at most {MAX_DESCRIPTION_LENGTH} characters.")
    if key is not None and not 0 < len(key) <= usage.MAX_KEY_LENGTH:
        return api_error(400, "invalid_idempotency_key",
                         message=f"Idempotency-Key must be 1 to {usage.MAX_KEY_LENGTH} characters.")
    reference = g.api_key.prefix if g.api_key is not None else None
    try:
        answer = usage.spend(g.api_user.id, credits, description, idempotency_key=key,
                             reference=reference)
    except IdempotencyKeyReusedError as exc:
        return api_error(409, "idempotency_key_reused", message=str(exc))
    response = jsonify(answer.body)
    if answer.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response, answer.status
