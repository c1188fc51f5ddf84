import pytest
import sqlalchemy as sa

from tests.conftest import login
from webapp.extensions import db
from webapp.models import CreditAccount, Job, User


def test_signup_creates_user_with_empty_account_and_logs_in(client):
    response = client.post(
        "/auth/signup", data={"email": " New@Example.COM ", "password": "long-enough"}
    )
    assert response.status_code == 302 and response.headers["Location"] == "/credits"
    user = db.session.scalar(sa.select(User))
    assert user.email == "new@example.com"
    assert user.password_hash != "long-enough" and user.check_password("long-enough")
    assert db.session.get(CreditAccount, user.id).balance == 0
    assert client.get("/credits").status_code == 200


def test_email_is_unique_whatever_its_case(client, user):
    response = client.post(
        "/auth/signup", data={"email": "BUYER@example.com", "password": "long-enough"}
    )
    assert response.status_code == 400
    assert b"already exists" in response.data
    assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 1
    # Only the fixture user's own verification mail: the refused form recorded nothing.
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Job)) == 1


@pytest.mark.parametrize(
    "data",
    [
        {"email": "not-an-email", "password": "long-enough"},
        {"email": "a@example.com", "password": "short"},
        {"email": "", "password": ""},
    ],
)
def test_signup_rejects_bad_input_and_creates_nothing(client, data):
    assert client.post("/auth/signup", data=data).status_code == 400
    assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 0


def test_login_with_wrong_password_fails(client, user):
    response = login(client, user.email, "wrong-password")
    assert response.status_code == 400 and b"Wrong email or password" in response.data
    assert client.get("/credits").status_code == 302


def test_login_is_case_insensitive_on_email(client, user):
    assert login(client, "Buyer@Example.com").status_code == 302


@pytest.mark.parametrize(
    "next_url, expected",
    [
        ("/credits/history", "/credits/history"),
        ("https://evil.example/steal", "/credits"),
        ("//evil.example/steal", "/credits"),
        ("/\\evil.example", "/credits"),
        ("javascript:alert(1)", "/credits"),
    ],
)
def test_login_follows_only_same_site_next(client, user, next_url, expected):
    response = client.post(
        "/auth/login", data={"email": user.email, "password": "correct-horse", "next": next_url}
    )
    assert response.headers["Location"] == expected


def test_logout_needs_post_and_ends_the_session(logged_in):
    assert logged_in.get("/auth/logout").status_code == 405
    assert logged_in.post("/auth/logout").status_code == 302
    assert logged_in.get("/credits").status_code == 302


@pytest.mark.parametrize("config_overrides", [{"WTF_CSRF_ENABLED": True}])
@pytest.mark.parametrize(
    "url, data",
    [
        ("/auth/signup", {"email": "x@example.com", "password": "long-enough"}),
        ("/auth/login", {"email": "buyer@example.com", "password": "correct-horse"}),
        ("/credits/checkout", {"credits": "1000"}),
        ("/auth/forgot", {"email": "buyer@example.com"}),
        (
            "/account/password",
            {
                "current_password": "correct-horse",
                "password": "new-password",
                "confirm": "new-password",
            },
        ),
        ("/account/notifications", {"low_balance_threshold": "5"}),
    ],
)
def test_every_form_refuses_a_missing_csrf_token(client, user, stripe_double, url, data):
    response = client.post(url, data=data)
    assert response.status_code == 400
    assert stripe_double.requests == []
    assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 1


def test_healthz_reports_the_database(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


def test_healthz_is_503_when_the_database_is_down(app, client, monkeypatch):
    def broken(*args, **kwargs):
        raise sa.exc.OperationalError("SELECT 1", {}, Exception("connection refused"))

    monkeypatch.setattr(db.session, "execute", broken)
    assert client.get("/healthz").status_code == 503
