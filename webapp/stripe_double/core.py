"""The double's core: the `stripe` library's HTTPClient interface, routing and idempotency.

A request is decoded from Stripe's form encoding, answered once per Idempotency-Key (a
replay gets the first answer, a reuse with other parameters Stripe's 400), checked
against the library's typed params, and routed by method and path to a `_<method>_<route>`
method of the resource classes (checkout.py, payments.py, invoices.py,
subscriptions.py). Objects live in `objects`, by id.
"""

import copy
import itertools
import json
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import stripe

from webapp.stripe_double.params import InvalidParams, check_request
from webapp.stripe_double.wire import decode_form, error, looks_like_id

Templates = Callable[[str], dict[str, Any]]


def minimal_templates(object_type: str) -> dict[str, Any]:
    """Bare objects of each type, for the sandbox (tests use Stripe's full examples)."""
    return {"object": object_type, "livemode": False, "metadata": {}}


class DoubleCore(stripe.HTTPClient):
    name = "stripe_double"

    def __init__(self, templates: Templates = minimal_templates, checkout_base: str | None = None):
        super().__init__()
        self.templates = templates
        self.checkout_base = checkout_base
        self.objects: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.failures: list[tuple[str, int, dict]] = []
        # Path prefixes Stripe cannot be reached for (connection errors) until removed.
        self.unreachable: set[str] = set()
        self._idempotent: dict[str, tuple[str, int, str]] = {}
        # payment_intent_data.metadata of each session, given to its PaymentIntent as Stripe does.
        self.intent_metadata: dict[str, dict[str, Any]] = {}
        self._lock = threading.RLock()
        self._counter = itertools.count(1)
        self.subscription_data: dict[str, dict[str, Any]] = {}  # by Checkout Session id
        # Called with (method, path, status, answer) after Stripe has acted, before the app
        # reads the answer: tests make webhooks overtake answers, or the caller die, here.
        self.after_answer: Callable[[str, str, int, dict], None] | None = None
        self.intent_data: dict[str, dict[str, Any]] = {}  # payment_intent_data, by session id
        self.setup_data: dict[str, dict[str, Any]] = {}  # setup_intent_data, by session id

    # --- the HTTPClient interface -------------------------------------------------

    def request(self, method, url, headers, post_data=None, *, _usage=None):
        parts = urlsplit(url)
        raw = post_data if method == "post" else parts.query
        if isinstance(raw, bytes):
            raw = raw.decode()
        params = decode_form(parse_qsl(raw or "", keep_blank_values=True))
        key = (headers or {}).get("Idempotency-Key")
        if any(parts.path.startswith(prefix) for prefix in self.unreachable):
            raise stripe.APIConnectionError("Stripe double: unreachable", should_retry=False)
        with self._lock:
            self.requests.append(
                {
                    "method": method,
                    "url": url,
                    "path": parts.path,
                    "params": params,
                    "idempotency_key": key,
                    "headers": dict(headers or {}),
                }
            )
            signature = json.dumps([method, parts.path, params], sort_keys=True)
            if key and key in self._idempotent:
                return self._replay(key, signature)
            status, obj = self._answer(method, parts.path, params)
            body = json.dumps(obj)
            if key and status < 500:
                self._idempotent[key] = (body, status, signature)
        if self.after_answer is not None:
            # Outside the lock: a test may deliver a webhook here, before the app hears back.
            self.after_answer(method, parts.path, status, obj)
        return body, status, {"Request-Id": f"req_{next(self._counter)}"}

    def _replay(self, key: str, signature: str) -> tuple[str, int, dict[str, str]]:
        """The first answer given under an Idempotency-Key, or Stripe's 400 for other params."""
        body, status, first = self._idempotent[key]
        if first != signature:
            return (
                json.dumps(
                    error(
                        "idempotency_error",
                        "Keys for idempotent requests can only be used "
                        "with the same parameters they were first used with.",
                    )
                ),
                400,
                {},
            )
        return body, status, {"Idempotent-Replayed": "true"}

    def close(self):
        pass

    # --- what tests and the sandbox use -------------------------------------------

    def fail_next(self, path_prefix: str, status: int = 500, error_type: str = "api_error"):
        """The next request under `path_prefix` gets this error instead of an answer."""
        self.failures.append(
            (
                path_prefix,
                status,
                {
                    "error": {
                        "type": error_type,
                        "message": "Injected failure from the Stripe double.",
                    }
                },
            )
        )

    def requests_to(self, method: str, path_prefix: str) -> list[dict[str, Any]]:
        return [
            r for r in self.requests if r["method"] == method and r["path"].startswith(path_prefix)
        ]

    def new_object(self, object_type: str, prefix: str, **fields) -> dict[str, Any]:
        obj = copy.deepcopy(self.templates(object_type))
        obj.update(fields)
        obj.setdefault("id", f"{prefix}_{secrets.token_hex(12)}")
        obj["object"] = object_type
        obj.setdefault("created", int(time.time()))
        with self._lock:
            self.objects[obj["id"]] = obj
        return obj

    # --- routing ------------------------------------------------------------------

    def _answer(self, method: str, path: str, params: dict[str, Any]) -> tuple[int, dict]:
        for index, (prefix, status, failure) in enumerate(self.failures):
            if path.startswith(prefix):
                del self.failures[index]
                return status, failure
        segments = path.strip("/").split("/")[1:]  # drop "v1"
        route = "/".join(segment if not looks_like_id(segment) else "{id}" for segment in segments)
        handler = getattr(self, f"_{method}_{route.replace('/', '_').replace('{id}', 'id')}", None)
        if handler is None:
            return 404, error("invalid_request_error", f"Unknown route {method} {path}")
        try:
            check_request(method, route, params)
        except InvalidParams as exc:
            return 400, error("invalid_request_error", str(exc), param=exc.param)
        object_id = next((s for s in segments if looks_like_id(s)), None)
        return handler(params, object_id) if object_id else handler(params)

    def _stored(self, object_id: str, params: dict[str, Any] | None = None) -> tuple[int, dict]:
        """The object as stored, with the fields named in `expand[]` replaced by their objects."""
        obj = self.objects.get(object_id)
        if obj is None:
            return 404, error(
                "invalid_request_error", f"No such object: '{object_id}'", code="resource_missing"
            )
        obj = copy.deepcopy(obj)
        expand = (params or {}).get("expand") or []
        for field in expand if isinstance(expand, list) else [expand]:
            related = obj.get(field)
            if isinstance(related, str) and related in self.objects:
                obj[field] = copy.deepcopy(self.objects[related])
        return 200, obj

    # --- events Stripe would send on its own (the sandbox delivers them) ---------------

    # None: not recorded (tests deliver events themselves); a list in the sandbox.
    pending_events: list[tuple[str, dict[str, Any]]] | None = None

    def emit(self, event_type: str, obj: dict[str, Any]) -> None:
        """Record an event Stripe would send about `obj` as it is now, when recording."""
        with self._lock:
            if self.pending_events is not None:
                self.pending_events.append((event_type, copy.deepcopy(obj)))

    def take_pending_events(self) -> list[tuple[str, dict[str, Any]]]:
        """The recorded events, oldest first, removed from the double."""
        with self._lock:
            events, self.pending_events = (
                self.pending_events or [],
                ([] if self.pending_events is not None else None),
            )
            return events
