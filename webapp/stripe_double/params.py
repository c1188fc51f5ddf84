"""Checks a request the way Stripe's API would, from the `stripe` library's own typed params.

`stripe.params` describes every endpoint's parameters as TypedDicts generated from
Stripe's OpenAPI spec. The double decodes each request's form body and checks it against
the matching class: an unknown parameter, a missing required one or a value of the wrong
type is answered with Stripe's 400 `invalid_request_error`, so a misspelt field fails a
test instead of passing silently.
"""

import functools
import importlib
import sys
import types
import typing
from decimal import Decimal
from typing import Any

import typing_extensions

# (method, route) -> the params class; {id} stands for an object id in the path.
PARAMS_FOR_ROUTE = {
    ("post", "customers"): "stripe.params:CustomerCreateParams",
    ("post", "customers/{id}"): "stripe.params:CustomerModifyParams",
    ("get", "customers/{id}"): "stripe.params:CustomerRetrieveParams",
    ("post", "checkout/sessions"): "stripe.params.checkout:SessionCreateParams",
    ("get", "checkout/sessions"): "stripe.params.checkout:SessionListParams",
    ("get", "checkout/sessions/{id}"): "stripe.params.checkout:SessionRetrieveParams",
    ("post", "checkout/sessions/{id}/expire"): "stripe.params.checkout:SessionExpireParams",
    ("get", "charges/{id}"): "stripe.params:ChargeRetrieveParams",
    ("get", "payment_intents/{id}"): "stripe.params:PaymentIntentRetrieveParams",
    ("post", "payment_intents"): "stripe.params:PaymentIntentCreateParams",
    ("post", "payment_intents/{id}/cancel"): "stripe.params:PaymentIntentCancelParams",
    ("get", "setup_intents/{id}"): "stripe.params:SetupIntentRetrieveParams",
    ("get", "payment_methods/{id}"): "stripe.params:PaymentMethodRetrieveParams",
    ("get", "prices/{id}"): "stripe.params:PriceRetrieveParams",
    ("get", "products/{id}"): "stripe.params:ProductRetrieveParams",
    ("get", "invoices/{id}"): "stripe.params:InvoiceRetrieveParams",
    ("get", "invoice_payments"): "stripe.params:InvoicePaymentListParams",
    ("post", "refunds"): "stripe.params:RefundCreateParams",
    ("post", "billing_portal/sessions"): "stripe.params.billing_portal:SessionCreateParams",
    ("get", "subscriptions/{id}"): "stripe.params:SubscriptionRetrieveParams",
}

# Request options travel as headers, never in the form body.
_OPTIONS = frozenset(
    {
        "api_key",
        "stripe_version",
        "stripe_account",
        "stripe_context",
        "max_network_retries",
        "idempotency_key",
        "content_type",
        "headers",
    }
)


class InvalidParams(ValueError):
    """What Stripe would answer with a 400 invalid_request_error; `param` names the field."""

    def __init__(self, message: str, param: str):
        super().__init__(message)
        self.param = param


def check_request(method: str, route: str, params: dict[str, Any]) -> None:
    """Raise InvalidParams unless `params` is a valid body for this endpoint.

    A route without a known params class raises too: the double must not answer a
    request it cannot check.
    """
    spec = PARAMS_FOR_ROUTE.get((method, route))
    if spec is None:
        raise InvalidParams(
            f"The Stripe double has no parameter schema for {method} {route}", route
        )
    module_name, class_name = spec.split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    _check_object(cls, params, "")


@functools.cache
def _fields(cls: type) -> tuple[dict[str, Any], frozenset[str]]:
    """The class's own fields with resolved types, and which of them are required."""
    hints: dict[str, Any] = {}
    required: set[str] = set()
    for klass in reversed(cls.__mro__):
        annotations = klass.__dict__.get("__annotations__", {})
        namespace = vars(sys.modules[klass.__module__])
        for name, annotation in annotations.items():
            if name in _OPTIONS:
                continue
            resolved = _resolve(annotation, namespace)
            hints[name] = resolved
            if typing_extensions.get_origin(resolved) is not typing_extensions.NotRequired:
                required.add(name)
    return hints, frozenset(required)


def _resolve(annotation: Any, namespace: dict[str, Any]) -> Any:
    if isinstance(annotation, str):
        annotation = eval(annotation, dict(namespace))  # noqa: S307 - the library's own annotations
    if isinstance(annotation, typing.ForwardRef):
        annotation = eval(annotation.__forward_arg__, dict(namespace))  # noqa: S307
    return annotation


def _namespace_of(cls: type) -> dict[str, Any]:
    return vars(sys.modules[cls.__module__])


def _check(hint: Any, value: Any, path: str, namespace: dict[str, Any]) -> None:
    hint = _resolve(hint, namespace)
    origin = typing_extensions.get_origin(hint)
    args = typing_extensions.get_args(hint)
    if origin is typing_extensions.NotRequired:
        return _check(args[0], value, path, namespace)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in args:
            try:
                return _check(option, value, path, namespace)
            except InvalidParams as exc:
                errors.append(exc)
        raise errors[-1]
    if origin is typing_extensions.Literal or origin is typing.Literal:
        if value not in [str(a).lower() if isinstance(a, bool) else str(a) for a in args]:
            raise InvalidParams(f"Invalid {path}: must be one of {', '.join(map(str, args))}", path)
        return None
    if origin in (list, typing.List):  # noqa: UP006
        if not isinstance(value, list):
            raise InvalidParams(f"Invalid array for {path}", path)
        for index, item in enumerate(value):
            _check(args[0], item, f"{path}[{index}]", namespace)
        return None
    if origin in (dict, typing.Dict):  # noqa: UP006
        if not isinstance(value, dict):
            raise InvalidParams(f"Invalid hash for {path}", path)
        return None
    if isinstance(hint, type) and typing_extensions.is_typeddict(hint):
        return _check_object(hint, value, path)
    return _check_scalar(hint, value, path)


def _check_object(cls: type, value: Any, path: str) -> None:
    if not isinstance(value, dict):
        raise InvalidParams(f"Invalid object for {path or 'the request'}", path)
    hints, required = _fields(cls)

    def key(name: str) -> str:
        return f"{path}[{name}]" if path else name

    for name in value:
        if name not in hints and not (name == "expand" and not path):
            raise InvalidParams(f"Received unknown parameter: {key(name)}", key(name))
    for name in required:
        if name not in value:
            raise InvalidParams(f"Missing required param: {key(name)}.", key(name))
    for name, item in value.items():
        if name in hints:
            _check(hints[name], item, key(name), _namespace_of(cls))


def _check_scalar(hint: Any, value: Any, path: str) -> None:
    """Form-encoded values all arrive as strings; check they read as the declared type."""
    if not isinstance(value, str):
        raise InvalidParams(f"Invalid value for {path}: expected a single value", path)
    if hint is bool and value not in ("true", "false"):
        raise InvalidParams(f"Invalid boolean: {value}", path)
    if hint is int and not value.lstrip("-").isdigit():
        raise InvalidParams(f"Invalid integer: {value}", path)
    if hint in (float, Decimal):
        try:
            Decimal(value)
        except ArithmeticError as exc:
            raise InvalidParams(f"Invalid decimal: {value}", path) from exc
