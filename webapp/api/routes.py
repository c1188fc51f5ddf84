from collections.abc import Callable
from typing import Any

from flask import g, jsonify, request
from werkzeug.exceptions import BadRequest, UnprocessableEntity

from webapp.api import bp
from webapp.api import schemas as s
from webapp.api.auth import api_error, api_login_required
from webapp.domain import autorecharge, checkout, hold_requests, reports, usage, users
from webapp.domain.errors import (
    IdempotencyKeyReusedError,
    InvalidPurchaseError,
    PaymentProviderError,
    UnknownPackError,
)
from webapp.domain.usage import UsageAnswer
from webapp.extensions import caller_key, configured_limit, limiter

# Which error code a field's validation failure answers with (the rest: invalid_body).
_FIELD_ERRORS = {
    "credits": "invalid_credits",
    "pack": "unknown_pack",
    "description": "invalid_description",
    "expires_in": "invalid_expires_in",
    "Idempotency-Key": "invalid_idempotency_key",
    "from": "invalid_from",
    "to": "invalid_to",
    "before": "invalid_before",
    "limit": "invalid_limit",
}
_UNAUTHENTICATED = (401, s.Error, "No session and no valid API key.")


@bp.errorhandler(UnprocessableEntity)
@bp.errorhandler(BadRequest)
def invalid_input(error):
    """A request the schemas (or the JSON parser) refused: 400 naming the first bad field."""
    messages = (getattr(error, "data", None) or {}).get("messages") or {}
    fields = {
        name: problem
        for where in messages.values()
        if isinstance(where, dict)
        for name, problem in where.items()
        if name != "_schema"
    }
    if not fields:
        return api_error(400, "invalid_body", message="Send a JSON object.")
    code = next((_FIELD_ERRORS[name] for name in fields if name in _FIELD_ERRORS), None)
    return api_error(400, code or "invalid_body", message=_first_problem(fields), fields=fields)


def _first_problem(fields: dict) -> str:
    """The first refusal in words, e.g. "credits: credits must be a whole number ..."."""
    name, problem = next(iter(fields.items()))
    while isinstance(problem, (list, dict)) and problem:
        problem = problem[0] if isinstance(problem, list) else next(iter(problem.values()))
    return f"{name}: {problem}" if isinstance(problem, str) else "Invalid input."


@bp.errorhandler(RecursionError)
def too_deep(_error):
    """JSON nested deeper than the parser goes (thousands of brackets) is bad input too."""
    return api_error(400, "invalid_body", message="Send a JSON object.")


def _documented(*answers):
    """The error answers an operation may give, for the OpenAPI document."""

    def decorate(view):
        for status, schema, description in (_UNAUTHENTICATED, *answers):
            view = bp.alt_response(status, schema=schema, description=description)(view)
        return view

    return decorate


def _reply(answer: UsageAnswer):
    response = jsonify(answer.body)
    if answer.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response, answer.status


def _idempotent_reply(call: Callable[..., UsageAnswer], *args: Any, **kwargs: Any):
    """The answer of a domain call taking an Idempotency-Key (the first answer again, marked
    replayed, on a retry); the key reused for a different request is a 409."""
    try:
        answer = call(*args, **kwargs)
    except IdempotencyKeyReusedError as exc:
        return api_error(409, "idempotency_key_reused", message=str(exc))
    return _reply(answer)


def _caller():
    """The calling user's row (checkout needs the whole user: email, Stripe customer)."""
    return users.get(g.api_user_id)


def _api_key_id() -> int | None:
    return g.api_key.key_id if g.api_key is not None else None


_INVALID = (400, s.Error, "Invalid input.")
_KEY_REUSED = (409, s.Error, "idempotency_key_reused")


@bp.get("/balance")
@api_login_required
@bp.response(200, s.Balance)
@_documented()
def balance():
    """Balance, credits bought and used, on hold and available, what expires when, and the
    auto-recharge settings."""
    body = reports.balance_json(reports.account_for(g.api_user_id))
    return jsonify({**body, "auto_recharge": autorecharge.summary(g.api_user_id)})


@bp.post("/checkout")
@limiter.shared_limit(
    configured_limit("CHECKOUT_RATE_LIMIT"), scope="checkout", key_func=caller_key
)
@api_login_required
@bp.arguments(s.CheckoutBody())
@bp.response(201, s.CheckoutCreated)
@_documented(_INVALID, (502, s.Error, "Stripe could not be reached."))
def checkout_create(body):
    """Start a Checkout Session for `credits`, or for a `pack` on offer (a Price id)."""
    base_url = checkout.public_base_url(request.url_root)
    try:
        if "pack" in body:
            purchase = checkout.start_pack_checkout(_caller(), body["pack"], base_url)
        elif "credits" in body:
            purchase = checkout.start_checkout(_caller(), body["credits"], base_url)
        else:
            return api_error(400, "invalid_credits", message="Send credits or a pack.")
    except UnknownPackError as exc:
        return api_error(400, "unknown_pack", message=str(exc))
    except InvalidPurchaseError as exc:
        return api_error(400, "invalid_credits", message=str(exc))
    except PaymentProviderError as exc:
        return api_error(502, "payment_provider_error", message=str(exc))
    return jsonify(id=purchase.stripe_checkout_session_id, url=purchase.checkout_url), 201


@bp.post("/usage")
@limiter.limit(configured_limit("USAGE_RATE_LIMIT"), key_func=caller_key)
@api_login_required
@bp.arguments(s.UsageBody())
@bp.arguments(s.IdempotencyHeader(), location="headers", as_kwargs=True)
@bp.response(200, s.BalanceAfter)
@_documented(_INVALID, (402, s.InsufficientCredits, "Not enough available credits."), _KEY_REUSED)
def usage_create(body, idempotency_key=None):
    """Spend credits now (needs that many available); Idempotency-Key replays the first answer."""
    reference = g.api_key.prefix if g.api_key is not None else None
    return _idempotent_reply(
        usage.spend,
        g.api_user_id,
        body["credits"],
        body["description"],
        idempotency_key=idempotency_key,
        reference=reference,
        api_key_id=_api_key_id(),
    )


@bp.get("/usage")
@api_login_required
@bp.arguments(s.UsageQuery(), location="query")
@bp.response(200, s.UsageList)
@_documented(_INVALID)
def usage_list(query):
    """Your usage debits and hold captures, newest first, with the API key that made each."""
    page = reports.usage_page(
        g.api_user_id, query.get("from_"), query.get("to"), query.get("before"), query["limit"]
    )
    return jsonify(data=[_usage_item(entry) for entry in page.items], next_before=page.next_before)


def _usage_item(entry) -> dict:
    key = entry.api_key
    return {
        "id": entry.id,
        "credits": -entry.credits,
        "description": entry.description or "",
        "reference": entry.reference,
        "api_key": {"id": key.id, "label": key.label, "prefix": key.prefix} if key else None,
        "created_at": reports.iso_z(entry.created_at),
    }


@bp.post("/holds")
@limiter.limit(configured_limit("USAGE_RATE_LIMIT"), key_func=caller_key)
@api_login_required
@bp.arguments(s.HoldBody())
@bp.arguments(s.IdempotencyHeader(), location="headers", as_kwargs=True)
@bp.response(201, s.HoldPlaced)
@_documented(_INVALID, (402, s.InsufficientCredits, "Not enough available credits."), _KEY_REUSED)
def hold_create(body, idempotency_key=None):
    """Reserve credits for a job; they stay yours until captured, released or expired."""
    return _idempotent_reply(
        hold_requests.place,
        g.api_user_id,
        body["credits"],
        body["expires_in"],
        body["description"],
        idempotency_key=idempotency_key,
        api_key_id=_api_key_id(),
    )


_NO_HOLD = (404, s.Error, "No such hold (or another user's).")


@bp.get("/holds/<hold_id>")
@api_login_required
@bp.response(200, s.Hold)
@_documented(_NO_HOLD)
def hold_detail(hold_id):
    """A hold and its status: held, captured, released or expired."""
    return _reply(hold_requests.show(g.api_user_id, hold_id))


@bp.post("/holds/<hold_id>/capture")
@api_login_required
@bp.arguments(s.CaptureBody(), required=False)
@bp.arguments(s.IdempotencyHeader(), location="headers", as_kwargs=True)
@bp.response(200, s.HoldSettled)
@_documented(
    _INVALID,
    (402, s.InsufficientCredits, "The balance no longer covers it."),
    _NO_HOLD,
    (409, s.Error, "hold_expired, hold_released, hold_already_settled or idempotency_key_reused"),
)
def hold_capture(body, hold_id, idempotency_key=None):
    """Take what the job used (omitted: all) as one usage debit and release the rest."""
    return _idempotent_reply(
        hold_requests.capture,
        g.api_user_id,
        hold_id,
        body.get("credits"),
        idempotency_key=idempotency_key,
        api_key_id=_api_key_id(),
    )


@bp.post("/holds/<hold_id>/release")
@api_login_required
@bp.response(200, s.HoldSettled)
@_documented(_NO_HOLD, (409, s.Error, "hold_expired or hold_already_settled"))
def hold_release(hold_id):
    """Give the whole hold back without taking anything."""
    return _reply(hold_requests.release(g.api_user_id, hold_id))
