"""Production hardening: security headers and one structured JSON log line per request."""

import json
import logging
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from urllib.parse import urlsplit

from flask import Flask, Response, abort, g, request
from werkzeug.routing import IntegerConverter

from webapp.domain.text import has_nul


def content_security_policy(form_targets: str) -> str:
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "object-src 'none'",
            "frame-ancestors 'none'",
            # Buy, subscribe and the portal are form POSTs answered with a redirect to Stripe,
            # and browsers apply form-action to every hop of that redirect. Stripe's host is
            # not known in advance (checkout.stripe.com, a custom Checkout or portal domain set
            # up in Stripe, a test double's host), so any https origin may receive the redirect;
            # forms themselves all post to this app (the templates' own actions).
            f"form-action {form_targets}",
            "base-uri 'self'",
        )
    )


CONTENT_SECURITY_POLICY = content_security_policy("'self' https:")

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
HSTS = "max-age=63072000; includeSubDomains"


def form_targets(config) -> str:
    """'self', any https origin, and outside production also the origin of STRIPE_API_BASE
    (a local double or stripe-mock on plain http)."""
    targets = ["'self'", "https:"]
    base = config.get("STRIPE_API_BASE") or ""
    if config["APP_ENV"] != "production" and base.startswith("http://"):
        parts = urlsplit(base)
        targets.append(f"http://{parts.netloc}")
    return " ".join(targets)


def register_security(app: Flask) -> None:
    production = app.config["APP_ENV"] == "production"

    security = {
        **SECURITY_HEADERS,
        "Content-Security-Policy": content_security_policy(form_targets(app.config)),
    }
    headers = list(security.items()) + ([("Strict-Transport-Security", HSTS)] if production else [])
    lowered = [(name.lower(), name, value) for name, value in headers]

    @app.after_request
    def security_headers(response: Response) -> Response:
        # A view may set its own, stricter value. (One pass over the response's headers:
        # Headers.setdefault scans them once per name, on every request.)
        present = {name.lower() for name, _ in response.headers}
        for key, name, value in lowered:
            if key not in present:
                response.headers.add(name, value)
        return response


# --- input every view can trust: ids in range, no NUL characters

# The largest id an INTEGER / a BIGINT column holds; larger numbers name nothing, and
# PostgreSQL refuses to compare them with the column ("integer out of range").
MAX_ID = 2**31 - 1
MAX_BIG_ID = 2**63 - 1


class IdConverter(IntegerConverter):
    """`<int:...>` in URLs: a number beyond any id is a 404, not a database error.

    Every id in a URL names a row of an INTEGER-keyed table (users, purchases, keys)."""

    def __init__(self, map, *args, **kwargs):
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)


def cursor_arg(name: str = "before", largest: int = MAX_ID) -> int | None:
    """A keyset cursor from the query string: None when absent, 400 when it is not an id
    of the paged table (`largest`: MAX_BIG_ID for BIGINT-keyed ones)."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit() and 0 < int(raw) <= largest):
        abort(400, description=f"`{name}` must be a whole number from 1 to {largest}.")
    return int(raw)


def register_input_rules(app: Flask) -> None:
    """Before any blueprint: the bounded id converter, and NUL characters refused."""
    app.url_map.converters["int"] = IdConverter

    @app.before_request
    def refuse_nul_characters() -> None:
        fields = request.args.items(multi=True) if request.query_string else []
        if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            fields = [*fields, *request.form.items(multi=True)]
        if any(has_nul(key) or has_nul(value) for key, value in fields):
            abort(400, description="Text may not contain NUL characters (%00).")


# --- structured logs

REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Whatever slips into a message: Stripe keys and webhook secrets, bearer tokens, API keys,
# password fields, and card-number-like digit runs.
_SECRET_PATTERNS = (
    (re.compile(r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]+"), "[redacted]"),
    (re.compile(r"\bwhsec_[A-Za-z0-9_]+"), "[redacted]"),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 [redacted]"),
    (
        re.compile(
            r"(?i)\b(password|passwd|secret|api[_-]?key|authorization)"
            r"(['\"]?\s*[:=]\s*['\"]?)[^\s'\",&]+"
        ),
        r"\1\2[redacted]",
    ),
)
_CARD_LIKE = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")
REDACTED = "[redacted]"


def _luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def redact(text: str) -> str:
    """The text with anything that looks like a secret or a card number replaced."""
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)

    def card(match: re.Match) -> str:
        digits = re.sub(r"[ -]", "", match.group(0))
        return REDACTED if 13 <= len(digits) <= 19 and _luhn_valid(digits) else match.group(0)

    return _CARD_LIKE.sub(card, text)


class JsonFormatter(logging.Formatter):
    """One JSON object per line; extra fields come from `record.fields`."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        entry.update(getattr(record, "fields", {}))
        request_id = _current_request_id()
        if request_id and "request_id" not in entry:
            entry["request_id"] = request_id
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


def _current_request_id() -> str | None:
    try:
        return g.get("request_id")
    except RuntimeError:  # outside a request
        return None


def register_logging(app: Flask) -> None:
    """JSON logs on stderr for the app's loggers, and one `request` line per request."""
    logger = logging.getLogger("webapp")
    if not any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
    if logger.level == logging.NOTSET:
        logger.setLevel(app.config.get("LOG_LEVEL", "INFO"))
    request_log = logging.getLogger("webapp.request")
    # The logging HOWTO's "Optimization": the JSON lines use none of the caller, thread or
    # process fields, and gathering them cost more than writing the request's line.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False

    @app.before_request
    def start_request() -> None:
        g.request_started = time.perf_counter()
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if REQUEST_ID.match(incoming) else uuid.uuid4().hex

    @app.after_request
    def log_request(response: Response) -> Response:
        started = g.get("request_started")
        fields = {
            "method": request.method,
            "path": request.path,  # never the query string
            "status": response.status_code,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2) if started else None,
            "request_id": g.get("request_id"),
            "remote_addr": request.remote_addr,
        }
        event_id = request.environ.get("stripe.event_id")
        if event_id:
            fields["stripe_event_id"] = event_id
        if g.get("request_id"):
            response.headers["X-Request-ID"] = g.request_id
        request_log.info("request", extra={"fields": fields})
        return response
