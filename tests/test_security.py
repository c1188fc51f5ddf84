"""What an attacker tried against a local instance: forged cookies, copied cookies, Host
headers, login timing, spreadsheet formulas, odd input, misleading text."""

import csv
import io
import os
import statistics
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa
from flask import Flask, g
from werkzeug.security import check_password_hash, generate_password_hash

from tests import stripe_fakes
from tests.conftest import login
from tests.test_hardening import production_app
from webapp import config as config_module
from webapp import create_app
from webapp.config import BASE_DIR, DevelopmentConfig, prepare
from webapp.domain import api_keys, ledger, users
from webapp.extensions import db
from webapp.models import ApiKey, LedgerEntry, Purchase, User

# The constant development signed sessions with before this change: public in git history.
OLD_PUBLIC_DEV_KEY = "dev-only-secret-key-not-for-production"


def session_cookie(secret_key: str, data: dict) -> str:
    """A Flask session cookie for `data`, signed with `secret_key`, as an attacker makes one."""
    signer = Flask(__name__)
    signer.secret_key = secret_key
    return signer.session_interface.get_signing_serializer(signer).dumps(data)


# --- development's secret key


@pytest.fixture
def development_app(tmp_path, monkeypatch, database_url, schema_ready, app):
    """The app with development's settings and its own instance folder (no SECRET_KEY set)."""
    monkeypatch.setattr(config_module, "INSTANCE_DIR", tmp_path)
    attrs = {
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SECRET_KEY": "",
        "STRIPE_WEBHOOK_SECRET": "",
        "STRIPE_SECRET_KEY": "sk_test_dev",
        "SANDBOX_ENABLED": False,
        "STRIPE_HTTP_CLIENT": stripe_fakes.new_double(),
        "RATELIMIT_ENABLED": False,
        "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000",
    }
    return create_app(type("DevTestConfig", (DevelopmentConfig,), attrs))


def test_development_generates_its_secret_key_once_into_the_instance_folder(tmp_path):
    first, second = {"APP_ENV": "development"}, {"APP_ENV": "development"}
    prepare(first, tmp_path)
    prepare(second, tmp_path)
    key_file = tmp_path / "secret_key"
    assert first["SECRET_KEY"] == second["SECRET_KEY"] == key_file.read_text().strip()
    assert len(first["SECRET_KEY"]) >= 40 and first["SECRET_KEY"] != OLD_PUBLIC_DEV_KEY
    assert key_file.stat().st_mode & 0o077 == 0  # readable by its owner only
    assert first["STRIPE_WEBHOOK_SECRET"].startswith("whsec_")
    other = {"APP_ENV": "development"}
    prepare(other, tmp_path / "elsewhere")
    assert other["SECRET_KEY"] != first["SECRET_KEY"]


def test_a_cookie_forged_with_the_old_public_dev_key_opens_nothing(development_app):
    with development_app.app_context():
        admin = users.create_user("boss@example.com", "correct-horse", is_admin=True)
        session_id = admin.get_id()
    client = development_app.test_client()
    client.set_cookie(
        "session", session_cookie(OLD_PUBLIC_DEV_KEY, {"_user_id": session_id, "_fresh": True})
    )
    response = client.get("/admin/users")
    assert response.status_code == 302 and "/auth/login" in response.headers["Location"]
    # The same cookie signed with the key the app made for itself does open it.
    client.set_cookie(
        "session",
        session_cookie(development_app.secret_key, {"_user_id": session_id, "_fresh": True}),
    )
    assert client.get("/admin/users").status_code == 200


def _start(env_overrides: dict[str, str]) -> subprocess.CompletedProcess:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("STRIPE_", "PUBLIC_BASE_URL", "APP_ENV", "SECRET_KEY"))
    }
    env.update({"DATABASE_URL": "sqlite:////tmp/credits-startup-check.db", **env_overrides})
    return subprocess.run(
        [sys.executable, "-c", "import wsgi"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "env, named",
    [
        ({"STRIPE_SECRET_KEY": "sk_live_51Abc"}, "STRIPE_SECRET_KEY"),
        ({"PUBLIC_BASE_URL": "https://credits.example.com"}, "PUBLIC_BASE_URL"),
        ({"PUBLIC_BASE_URL": "http://10.0.0.5:5000"}, "PUBLIC_BASE_URL"),
        (
            {"APP_ENV": "testing", "PUBLIC_BASE_URL": "https://credits.example.com"},
            "PUBLIC_BASE_URL",
        ),
    ],
)
def test_outside_production_live_settings_refuse_to_start(env, named):
    result = _start(env)
    assert result.returncode != 0 and named in result.stderr
    assert "APP_ENV=production" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "base", ["", "http://127.0.0.1:5000", "http://localhost:8000", "http://[::1]:5000"]
)
def test_development_starts_on_a_loopback_address(base):
    result = _start(
        {"APP_ENV": "development", "PUBLIC_BASE_URL": base, "STRIPE_SECRET_KEY": "sk_test_local"}
    )
    assert result.returncode == 0, result.stderr


# --- sessions end for real


def test_a_copied_cookie_stops_working_after_logout(app, client, user):
    login(client, user.email)
    copied = app.test_client()
    copied.set_cookie("session", client.get_cookie("session").value)
    assert copied.get("/credits").status_code == 200
    client.post("/auth/logout")
    assert copied.get("/credits").status_code == 302
    assert client.get("/credits").status_code == 302
    assert login(client, user.email).status_code == 302  # logging in again works
    assert client.get("/credits").status_code == 200


def _credits_status(app, client) -> int:
    """GET /credits as a fresh request: Flask-Login caches the user in `g`, which the
    test's shared app context would otherwise carry from one request to the next."""
    g.pop("_login_user", None)
    return client.get("/credits").status_code


def test_ending_sessions_keeps_only_a_session_made_afterwards(app, client, user):
    """What a password change does: end_sessions, then log the changing browser in again."""
    login(client, user.email)
    other = app.test_client()
    login(other, user.email)
    assert _credits_status(app, client) == 200 and _credits_status(app, other) == 200
    users.end_sessions(user)
    assert _credits_status(app, client) == 302 and _credits_status(app, other) == 302
    assert login(client, user.email).status_code == 302
    assert _credits_status(app, client) == 200 and _credits_status(app, other) == 302


# A bare "1" is a session from before versions existed: valid until the user's sessions end
# (tests/mail/test_accounts.py); anything else not "<id>.<version>" is nobody.
@pytest.mark.parametrize("session_id", ["1.x", "x.0", "1.0.0", "99999999999999999999.0", "1."])
def test_malformed_session_ids_are_anonymous(app, user, session_id):
    client = app.test_client()
    client.set_cookie("session", session_cookie(app.secret_key, {"_user_id": session_id}))
    assert client.get("/credits").status_code == 302


# --- Host header


def test_production_trusts_only_the_public_host():
    app = production_app(PUBLIC_BASE_URL="https://credits.example.com")
    client = app.test_client()
    assert client.get("/healthz", headers={"Host": "credits.example.com"}).status_code in (200, 503)
    assert client.get("/auth/login", headers={"Host": "credits.example.com"}).status_code == 200
    assert client.get("/auth/login", headers={"Host": "evil.example"}).status_code == 400


def test_production_checkout_urls_use_the_public_base_url_whatever_the_host(database_url):
    double = stripe_fakes.new_double()
    app = production_app(
        PUBLIC_BASE_URL="https://credits.example.com",
        SQLALCHEMY_DATABASE_URI=database_url,
        STRIPE_HTTP_CLIENT=double,
        EXTRA_TRUSTED_HOSTS=("internal.example",),
        PASSWORD_HASH_METHOD="pbkdf2:sha256:1000",
        WTF_CSRF_ENABLED=False,
    )
    with app.app_context():
        db.create_all()
        from tests.conftest import empty_all_tables

        empty_all_tables()
        users.create_user("buyer@example.com", "correct-horse")
        client = app.test_client()
        headers = {"Host": "internal.example"}
        client.post(
            "/auth/login",
            data={"email": "buyer@example.com", "password": "correct-horse"},
            headers=headers,
        )
        response = client.post("/credits/checkout", data={"credits": "500"}, headers=headers)
        assert response.status_code == 303
        sent = double.requests_to("post", "/v1/checkout/sessions")[-1]["params"]
        assert sent["success_url"].startswith("https://credits.example.com/credits/success")
        assert sent["cancel_url"].startswith("https://credits.example.com/credits/cancel")
        db.session.remove()


# --- login timing


_HASH_METHOD = "pbkdf2:sha256:100000"


@pytest.mark.parametrize("config_overrides", [{"PASSWORD_HASH_METHOD": _HASH_METHOD}])
def test_a_wrong_password_takes_as_long_for_unknown_emails_as_for_known_ones(
    client, config_overrides
):
    users.create_user("known@example.com", "correct-horse")

    def attempt_ms(email: str) -> float:
        started = time.perf_counter()
        response = login(client, email, "wrong-password-here")
        assert response.status_code == 400
        return (time.perf_counter() - started) * 1000

    def medians() -> tuple[float, float]:
        """Median of 20 each, interleaved and taking turns to go first, so the machine's
        other load falls on both sides alike."""
        times: dict[str, list[float]] = {"known@example.com": [], "nobody@example.com": []}
        for round_ in range(20):
            for email in sorted(times, reverse=bool(round_ % 2)):
                times[email].append(attempt_ms(email))
        return (
            statistics.median(times["known@example.com"]),
            statistics.median(times["nobody@example.com"]),
        )

    attempt_ms("known@example.com")  # warm up
    # What one password check costs on this machine: a login that skips it is faster by
    # that much, whatever the machine's speed.
    one_check = _password_check_ms()
    # A real gap (a hash for one side only) shows in every measurement; a busy machine's
    # noise rarely in three running, so up to three measurements are taken.
    results = []
    for _ in range(3):
        known, unknown = medians()
        assert known > one_check / 2  # a real password check ran: the comparison means something
        results.append((known, unknown))
        if abs(known - unknown) < one_check / 2:
            break
    else:
        pytest.fail(
            f"known vs unknown email medians (ms) differ by half a password check "
            f"({one_check:.1f} ms) or more: {results}"
        )


def _password_check_ms() -> float:
    """Median time of checking a wrong password against a hash made with _HASH_METHOD."""
    hashed = generate_password_hash("correct-horse", method=_HASH_METHOD)
    times = []
    for _ in range(5):
        started = time.perf_counter()
        assert not check_password_hash(hashed, "wrong-password-here")
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


# --- passwords


@pytest.mark.parametrize(
    "password, problem",
    [
        ("short-pw", "at least 10"),
        ("qwertyuiop", "too common"),
        ("password123", "too common"),
        ("new@example.com", "email"),
        ("NEW@example.com", "email"),
    ],
)
def test_signup_refuses_weak_passwords_with_a_reason(client, password, problem):
    response = client.post("/auth/signup", data={"email": "new@example.com", "password": password})
    assert response.status_code == 400 and problem in response.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 0


def test_signup_shows_the_password_rule_before_any_error(client):
    page = client.get("/auth/signup").get_data(as_text=True)
    assert users.PASSWORD_RULE in page and 'aria-describedby="password-hint"' in page


# --- spreadsheets


def test_purchases_csv_escapes_cells_a_spreadsheet_would_run(client, admin, app):
    evil = users.create_user("=cmd|'/Ccalc'!A0@example.com", "correct-horse")
    db.session.add(
        Purchase(
            user_id=evil.id,
            credits=500,
            value_cents=500,
            fee_cents=0,
            amount_cents=500,
            currency="usd",
            status="needs_review",
            review_reason="+SUM(1,2)",
            stripe_checkout_session_id="@cs_x",
        )
    )
    db.session.commit()
    login(client, admin.email)
    text = client.get("/admin/purchases.csv").get_data(as_text=True)
    header, row = list(csv.reader(io.StringIO(text)))[:2]
    cells = dict(zip(header, row, strict=True))
    assert cells["email"] == "'=cmd|'/ccalc'!a0@example.com"  # stored lower-cased
    assert cells["review_reason"] == "'+SUM(1,2)"
    assert cells["stripe_checkout_session_id"] == "'@cs_x"
    assert cells["amount"] == "5.00" and cells["credits"] == "500"


def test_negative_numbers_stay_numbers_in_the_csv():
    from webapp.admin.purchases import spreadsheet_safe

    assert spreadsheet_safe("-2.50") == "-2.50" and spreadsheet_safe(-3) == -3
    assert spreadsheet_safe("-2+3") == "'-2+3" and spreadsheet_safe("\tx") == "'\tx"


# --- odd input: 400/404 with a message, nothing written


def _rows() -> tuple[int, int, int]:
    count = sa.select(sa.func.count())
    return (
        db.session.scalar(count.select_from(LedgerEntry)),
        db.session.scalar(count.select_from(ApiKey)),
        db.session.scalar(count.select_from(User)),
    )


@pytest.mark.parametrize(
    "method, path, data",
    [
        ("get", "/admin/users?q=a%00b", None),
        ("get", "/admin/purchases?q=a%00b", None),
        ("post", "/account/api-keys", {"label": "a\x00b"}),
        ("post", "/admin/users/{user_id}/adjust", {"credits": "5", "reason": "a\x00b"}),
        ("post", "/auth/login", {"email": "a\x00b@example.com", "password": "x"}),
        ("get", "/credits/history?before=99999999999999999999", None),
        ("get", "/credits/history?before=-1", None),
        ("get", "/admin/users?before=99999999999999999999", None),
        ("get", "/admin/events?before=1e400", None),
        ("get", "/admin/users?before=2147483648", None),  # users.id is an INTEGER
        ("get", "/admin/purchases?before=2147483648", None),
        ("get", "/admin/subscriptions?before=2147483648", None),
        ("get", "/credits/history?tab=payments&before=2147483648", None),
    ],
)
def test_nul_bytes_and_out_of_range_cursors_are_a_400(client, admin, user, method, path, data):
    login(client, admin.email)
    before = _rows()
    response = getattr(client, method)(path.format(user_id=user.id), data=data)
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert "NUL" in text or "whole number" in text
    assert _rows() == before


@pytest.mark.parametrize(
    "path",
    [
        "/admin/users/99999999999999999999",
        "/admin/purchases/9223372036854775808",
        "/admin/users/2147483648",
        "/admin/purchases/2147483648",
    ],
)
def test_ids_beyond_any_row_are_a_404(client, admin, path):
    login(client, admin.email)
    assert client.get(path).status_code == 404


def test_a_ledger_cursor_may_be_a_big_id(logged_in, client, admin):
    """Ledger entries and events have BIGINT ids: a cursor past 2^31 is a real position."""
    assert logged_in.get("/credits/history?before=2147483648").status_code == 200
    login(client, admin.email)
    assert client.get("/admin/events?before=2147483648").status_code == 200


def test_usage_description_with_nul_is_a_400_and_debits_nothing(client, user):
    ledger.adjust(user.id, 100, "seed")
    secret = api_keys.mint(user.id).secret
    response = client.post(
        "/api/v1/usage",
        json={"credits": 5, "description": "a\x00b"},
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_description"
    assert ledger.current_balance(user.id) == 100


# --- text that could mislead an admin

BIDI = "\u202etxt.exe\u202c"


def test_bidi_and_control_characters_are_stripped_from_labels_and_descriptions(client, user, admin):
    login(client, user.email)
    client.post("/account/api-keys", data={"label": f"build{BIDI}\x07"})
    label = db.session.scalar(sa.select(ApiKey.label))
    assert label == "buildtxt.exe"
    secret = api_keys.mint(user.id).secret
    ledger.adjust(user.id, 100, "seed")
    client.post(
        "/api/v1/usage",
        json={"credits": 5, "description": f"job {BIDI}\u2066x"},
        headers={"Authorization": f"Bearer {secret}"},
    )
    description = db.session.scalar(
        sa.select(LedgerEntry.description).order_by(LedgerEntry.id.desc()).limit(1)
    )
    assert description == "job txt.exex"


def test_pages_never_print_bidi_controls_even_from_old_rows(client, user, admin):
    ledger.adjust(user.id, 100, f"old{BIDI}row")  # stored before input was cleaned
    login(client, admin.email)
    page = client.get(f"/admin/users/{user.id}").get_data(as_text=True)
    assert "oldtxt.exerow" in page and "\u202e" not in page


# --- pages that hold a secret, and rate limits in words


def test_the_new_key_page_is_reached_by_redirect_and_a_reload_mints_nothing(client, user):
    login(client, user.email)
    posted = client.post("/account/api-keys", data={"label": "ci"})
    assert posted.status_code == 303
    shown = client.get("/account")
    assert 'id="new-api-key"' in shown.get_data(as_text=True)
    assert shown.headers["Cache-Control"] == "no-store"
    reloaded = client.get("/account").get_data(as_text=True)
    assert 'id="new-api-key"' not in reloaded
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ApiKey)) == 1


@pytest.mark.parametrize("config_overrides", [{"RATELIMIT_ENABLED": True}])
def test_a_429_page_says_when_to_try_again(client, config_overrides):
    for _ in range(10):
        login(client, "nobody@example.com", "wrong")
    response = login(client, "nobody@example.com", "wrong")
    assert response.status_code == 429
    seconds = int(response.headers["Retry-After"])
    assert 0 < seconds <= 61  # the one-minute window, rounded up
    text = response.get_data(as_text=True)
    assert "try again in" in text and ("second" in text or "minute" in text)


def test_an_oversized_webhook_gets_a_json_413(client):
    response = client.post(
        "/webhooks/stripe",
        data=b"{" + b" " * (1024 * 1024 + 10) + b"}",
        content_type="application/json",
        headers={"Stripe-Signature": "t=1,v1=00"},
    )
    assert response.status_code == 413
    assert response.is_json and response.get_json()["error"] == "request_entity_too_large"


# --- the way to Stripe


def _form_action(response) -> str:
    policy = response.headers["Content-Security-Policy"]
    return next(p for p in policy.split("; ") if p.startswith("form-action "))


def test_form_action_lets_a_redirect_reach_any_https_stripe_host(client):
    assert _form_action(client.get("/auth/login")) == "form-action 'self' https:"


@pytest.mark.parametrize("config_overrides", [{"STRIPE_API_BASE": "http://127.0.0.1:12111"}])
def test_outside_production_a_local_stripe_double_on_http_is_allowed_too(client, config_overrides):
    assert _form_action(client.get("/auth/login")) == (
        "form-action 'self' https: http://127.0.0.1:12111"
    )


def test_production_never_allows_plain_http_form_targets():
    app = production_app(STRIPE_API_BASE="http://127.0.0.1:12111")
    assert _form_action(app.test_client().get("/healthz")) == "form-action 'self' https:"
