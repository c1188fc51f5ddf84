"""Production hardening: headers, cookies, rate limits, body size, proxies, logs, startup."""

import io
import json
import logging
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests import stripe_fakes
from tests.conftest import login
from webapp import create_app
from webapp.config import BASE_DIR, ProductionConfig
from webapp.extensions import db
from webapp.hardening import JsonFormatter, redact
from webapp.models import StripeEvent

TEMPLATES = BASE_DIR / "webapp" / "templates"


def production_app(**overrides):
    attrs = {
        "SQLALCHEMY_DATABASE_URI": "sqlite://",
        "SECRET_KEY": "prod-secret",
        "STRIPE_SECRET_KEY": "sk_test_prod",
        "STRIPE_WEBHOOK_SECRET": "whsec_prod",
        "STRIPE_HTTP_CLIENT": stripe_fakes.new_double(),
        "PROXY_COUNT": 0,
        "RATELIMIT_ENABLED": False,
        "REDIS_URL": "",
        **overrides,
    }
    return create_app(type("ProductionTestConfig", (ProductionConfig,), attrs))


# --- headers and cookies


@pytest.mark.parametrize("path", ["/", "/auth/login", "/healthz", "/no-such-page"])
def test_every_response_carries_the_security_headers(client, path):
    response = client.get(path)
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp
    assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert "Strict-Transport-Security" not in response.headers


def test_webhook_answers_carry_the_security_headers_too(client):
    response = client.post("/webhooks/stripe", data="{}", content_type="application/json")
    assert response.status_code == 400
    assert response.headers["X-Frame-Options"] == "DENY"


def test_templates_have_no_inline_script_or_style():
    offenders = []
    for template in TEMPLATES.rglob("*.html"):
        text = template.read_text()
        if (
            re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text)
            or re.search(r"<style\b", text)
            or re.search(r"\sstyle\s*=", text)
            or re.search(r"\son[a-z]+\s*=", text)
            or "javascript:" in text
        ):
            offenders.append(str(template.relative_to(TEMPLATES)))
    assert offenders == []


def test_production_adds_hsts_and_secure_session_cookies():
    app = production_app()
    response = app.test_client().get("/auth/login")  # the CSRF token starts a session
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    cookie = response.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_development_session_cookie_is_http_only_and_same_site(client):
    with client.session_transaction() as session:
        session["probe"] = 1
    response = client.get("/auth/login")
    cookie = response.headers.get("Set-Cookie") or ""
    if cookie:  # only set when the session changed
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_production_never_serves_the_sandbox_even_when_asked_to():
    app = production_app(SANDBOX_ENABLED=True)
    assert not [rule for rule in app.url_map.iter_rules() if rule.rule.startswith("/sandbox")]
    assert app.test_client().get("/sandbox/checkout/cs_test_1").status_code == 404


# --- rate limits


@pytest.fixture
def limited_app(app):
    return app


def _hammer_login(client, times: int) -> list[int]:
    return [login(client, "nobody@example.com", "wrong").status_code for _ in range(times)]


@pytest.mark.parametrize("config_overrides", [{"RATELIMIT_ENABLED": True}])
def test_login_is_rate_limited_with_a_page(client, config_overrides):
    statuses = _hammer_login(client, 11)
    assert statuses[:10] == [400] * 10
    assert statuses[10] == 429
    response = login(client, "nobody@example.com", "wrong")
    assert response.status_code == 429 and b"Too Many Requests" in response.data
    assert response.mimetype == "text/html"


@pytest.mark.parametrize("config_overrides", [{"RATELIMIT_ENABLED": True}])
def test_signup_is_rate_limited(client, config_overrides):
    statuses = [
        client.post("/auth/signup", data={"email": "x", "password": "y"}).status_code
        for _ in range(11)
    ]
    assert statuses[-1] == 429 and 429 not in statuses[:10]


def _redis():
    """The local Redis (CI and this project's machines run one on 127.0.0.1:6379)."""
    import redis

    client = redis.Redis.from_url("redis://127.0.0.1:6379/15", socket_connect_timeout=1)
    client.ping()  # no Redis is a failure, not a skip: the shared limit must be proven
    return client


REDIS_PREFIX = f"credits-test-{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize(
    "config_overrides",
    [
        {
            "RATELIMIT_ENABLED": True,
            "REDIS_URL": "redis://127.0.0.1:6379/15",
            "RATELIMIT_KEY_PREFIX": REDIS_PREFIX,
        }
    ],
)
def test_rate_limits_are_kept_in_redis_when_redis_url_is_set(client, config_overrides):
    redis = _redis()
    try:
        statuses = _hammer_login(client, 11)
        assert statuses[-1] == 429 and 429 not in statuses[:10]
        assert redis.keys(f"*{REDIS_PREFIX}*")
    finally:
        for key in redis.keys(f"*{REDIS_PREFIX}*"):
            redis.delete(key)


# --- body size


def _event_count() -> int:
    return db.session.query(StripeEvent).count()


def test_webhook_body_over_one_mebibyte_is_refused(client):
    evt = stripe_fakes.event("checkout.session.completed", {"id": "cs_x", "object": "x"})
    evt["padding"] = "x" * (1024 * 1024)
    payload = json.dumps(evt)
    response = client.post(
        "/webhooks/stripe",
        data=payload,
        content_type="application/json",
        headers={"Stripe-Signature": stripe_fakes.sign(payload)},
    )
    assert response.status_code in (400, 413)
    assert _event_count() == 0


class CountingStream(io.RawIOBase):
    """A request body that never ends, counting what the app reads of it."""

    def __init__(self):
        self.read_bytes = 0

    def readable(self):
        return True

    def readinto(self, buffer):
        self.read_bytes += len(buffer)
        buffer[:] = b"x" * len(buffer)
        return len(buffer)


@pytest.mark.parametrize("declared", ["10485760", None])
def test_webhook_never_reads_past_the_limit(client, declared):
    stream = CountingStream()
    environ = {"wsgi.input": stream, "wsgi.input_terminated": declared is None}
    headers = {"Stripe-Signature": "t=1,v1=00"}
    if declared:
        environ["CONTENT_LENGTH"] = declared
    response = client.post(
        "/webhooks/stripe",
        environ_overrides=environ,
        headers=headers,
        content_type="application/json",
    )
    assert response.status_code in (400, 413)
    assert stream.read_bytes <= 1024 * 1024


# --- proxies


def _probe(app):
    from flask import jsonify, request

    @app.get("/_probe")
    def probe():
        return jsonify(addr=request.remote_addr, scheme=request.scheme, host=request.host)

    return app.test_client()


FORWARDED = {
    "X-Forwarded-For": "203.0.113.9, 198.51.100.7",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "credits.example.com",
}


@pytest.mark.parametrize("config_overrides", [{"PROXY_COUNT": 1}])
def test_one_trusted_proxy_supplies_client_address_and_scheme(app, config_overrides):
    answer = _probe(app).get("/_probe", headers=FORWARDED).get_json()
    assert answer == {"addr": "198.51.100.7", "scheme": "https", "host": "credits.example.com"}


@pytest.mark.parametrize("config_overrides", [{"PROXY_COUNT": 2}])
def test_two_trusted_proxies_take_the_second_address_from_the_end(app, config_overrides):
    assert _probe(app).get("/_probe", headers=FORWARDED).get_json()["addr"] == "203.0.113.9"


def test_without_proxy_count_forwarded_headers_are_ignored(app):
    answer = _probe(app).get("/_probe", headers=FORWARDED).get_json()
    assert answer["addr"] == "127.0.0.1" and answer["scheme"] == "http"


# --- logs


@pytest.fixture
def log_lines():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("webapp")
    logger.addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logger.removeHandler(handler)


def _request_lines(lines):
    return [line for line in lines if line["msg"] == "request"]


def test_each_request_logs_one_json_line_with_its_request_id(client, log_lines):
    response = client.get("/healthz", headers={"X-Request-ID": "req-abc.123"})
    assert response.headers["X-Request-ID"] == "req-abc.123"
    [line] = _request_lines(log_lines())
    assert line["method"] == "GET" and line["path"] == "/healthz" and line["status"] == 200
    assert line["request_id"] == "req-abc.123" and line["duration_ms"] >= 0


def test_a_missing_or_odd_request_id_is_replaced_by_a_generated_one(client, log_lines):
    client.get("/healthz")
    client.get("/healthz", headers={"X-Request-ID": "bad id <script>" + "x" * 200})
    ids = [line["request_id"] for line in _request_lines(log_lines())]
    assert all(re.fullmatch(r"[0-9a-f]{32}", value) for value in ids) and ids[0] != ids[1]


def test_webhook_log_line_names_the_stripe_event(client, user, log_lines):
    evt = stripe_fakes.event("customer.created", stripe_fakes.fixture("customer"))
    assert stripe_fakes.deliver(client, evt).status_code == 200
    [line] = _request_lines(log_lines())
    assert line["stripe_event_id"] == evt["id"] and line["path"] == "/webhooks/stripe"


def test_logs_never_contain_secrets_or_card_data(app, client, user, log_lines):
    card = "4242424242424242"
    secrets_seen = [
        app.config["STRIPE_SECRET_KEY"],
        app.config["STRIPE_WEBHOOK_SECRET"],
        app.config["SECRET_KEY"],
        "correct-horse",
        "sk_live_abcdef123",
        card,
    ]
    client.post(
        "/auth/login?password=correct-horse",
        data={"email": user.email, "password": "correct-horse"},
        headers={"Authorization": "Bearer sk_live_abcdef123"},
    )
    evt = stripe_fakes.event("charge.succeeded", stripe_fakes.fixture("charge", number=card))
    stripe_fakes.deliver(client, evt)
    client.get("/api/v1/balance", headers={"Authorization": "Bearer sk_live_abcdef123"})
    # A careless message anywhere in the app is still scrubbed.
    logging.getLogger("webapp.somewhere").warning(
        "calling with key %s secret=%s card %s header Authorization: Bearer tok_123",
        "sk_live_abcdef123",
        app.config["STRIPE_WEBHOOK_SECRET"],
        "4242 4242 4242 4242",
    )
    text = json.dumps(log_lines())
    assert len(_request_lines(log_lines())) == 3
    for secret in secrets_seen + ["4242 4242 4242 4242", "tok_123"]:
        assert secret not in text


def test_redaction_keeps_ordinary_numbers_and_ids():
    text = "event evt_1Nxyz purchase 1234567890123 took 12 ms at 1732341234"
    assert redact(text) == text


# --- production start-up

REQUIRED_ENV = {
    "SECRET_KEY": "s3cret-for-test",
    "STRIPE_SECRET_KEY": "sk_test_startup",
    "STRIPE_WEBHOOK_SECRET": "whsec_startup",
    "DATABASE_URL": "sqlite:////tmp/credits-startup-check.db",
    "MAIL_SERVER": "smtp.example.test",
    "MAIL_DEFAULT_SENDER": "Credits <b@example.test>",
    "REDIS_URL": "redis://127.0.0.1:6379/15",
}


def _import_wsgi(env_overrides: dict[str, str | None]) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in REQUIRED_ENV}
    env.update({"APP_ENV": "production", **REQUIRED_ENV})
    for key, value in env_overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    code = (
        "import wsgi; rules = [r.rule for r in wsgi.app.url_map.iter_rules()]; "
        "print('sandbox' if any(r.startswith('/sandbox') for r in rules) else 'no-sandbox',"
        " 'dev' if any(r.startswith('/dev') for r in rules) else 'no-dev')"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("missing", sorted(REQUIRED_ENV))
@pytest.mark.parametrize("how", ["unset", "empty"])
def test_production_refuses_to_start_without_each_required_variable(missing, how):
    result = _import_wsgi({missing: None if how == "unset" else "  "})
    assert result.returncode != 0
    assert missing in result.stderr
    assert "Traceback" not in result.stderr


def test_production_starts_when_configured_and_has_no_sandbox():
    result = _import_wsgi({})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "no-sandbox no-dev"


def test_gunicorn_config_reads_its_settings_from_the_environment(monkeypatch):
    import runpy

    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    monkeypatch.setenv("PORT", "8123")
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.0.0.1")
    settings = runpy.run_path(str(Path(BASE_DIR) / "gunicorn.conf.py"))
    assert settings["workers"] == 3 and settings["bind"].endswith(":8123")
    assert settings["forwarded_allow_ips"] == "10.0.0.1"
    assert settings["accesslog"] is None and settings["timeout"] > 0
    monkeypatch.delenv("WEB_CONCURRENCY")
    settings = runpy.run_path(str(Path(BASE_DIR) / "gunicorn.conf.py"))
    assert settings["workers"] == 2 * (os.cpu_count() or 1) + 1
