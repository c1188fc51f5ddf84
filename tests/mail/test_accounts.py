"""Password reset, email verification and password change, with mail through a real SMTP server."""

import pytest
import sqlalchemy as sa
from itsdangerous import TimestampSigner

from tests.conftest import login, make_config
from tests.mail.conftest import body, link_in, run_jobs
from webapp import create_app
from webapp.domain import users
from webapp.extensions import db
from webapp.models import Job, User


def reload(user_id: int) -> User:
    db.session.expire_all()
    return db.session.get(User, user_id)


def forgot(client, address: str):
    return client.post("/auth/forgot", data={"email": address})


def reset_link(client, smtp_server, address: str) -> str:
    assert forgot(client, address).status_code == 200
    run_jobs()
    return link_in(smtp_server.to(address)[-1], "/auth/reset/")


def test_reset_from_the_mailed_link_sets_the_password_logs_in_and_ends_other_sessions(
    app, client, user, smtp_server
):
    other = app.test_client()
    login(other, user.email)
    assert other.get("/credits").status_code == 200

    path = reset_link(client, smtp_server, user.email)
    [mail] = smtp_server.to(user.email)
    assert mail["Subject"] == "Credits Store: reset your password"
    assert "within 60 minutes" in body(mail) and mail["Message-ID"]
    assert client.get(path).status_code == 200
    response = client.post(path, data={"password": "brand-new-pass", "confirm": "brand-new-pass"})
    assert response.status_code == 302 and response.headers["Location"] == "/credits"
    assert client.get("/credits").status_code == 200  # logged in by the reset

    assert other.get("/credits").status_code == 302  # the other session ended
    fresh = app.test_client()
    assert login(fresh, user.email, "correct-horse").status_code == 400
    assert login(fresh, user.email, "brand-new-pass").status_code == 302
    run_jobs()
    changed = [m for m in smtp_server.to(user.email) if "password was changed" in m["Subject"]]
    assert len(changed) == 1


def test_a_reset_link_works_once(client, user, smtp_server):
    path = reset_link(client, smtp_server, user.email)
    client.post(path, data={"password": "brand-new-pass", "confirm": "brand-new-pass"})
    again = client.post(path, data={"password": "third-password", "confirm": "third-password"})
    assert again.status_code == 400 and b"expired or was already used" in again.data
    assert client.get(path).status_code == 400
    assert reload(user.id).check_password("brand-new-pass")


def test_a_reset_link_dies_when_the_password_changes_another_way(logged_in, user, smtp_server):
    path = reset_link(logged_in, smtp_server, user.email)
    response = logged_in.post(
        "/account/password",
        data={
            "current_password": "correct-horse",
            "password": "changed-by-hand",
            "confirm": "changed-by-hand",
        },
    )
    assert response.status_code == 303
    assert (
        logged_in.post(
            path, data={"password": "from-the-link", "confirm": "from-the-link"}
        ).status_code
        == 400
    )
    assert reload(user.id).check_password("changed-by-hand")


def test_a_reset_link_expires_after_an_hour(client, user, smtp_server, monkeypatch):
    path = reset_link(client, smtp_server, user.email)
    real = TimestampSigner.get_timestamp
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: real(self) + 3601)
    response = client.post(path, data={"password": "too-late-pass", "confirm": "too-late-pass"})
    assert response.status_code == 400 and b"expired" in response.data
    assert reload(user.id).check_password("correct-horse")


@pytest.mark.parametrize("token", ["nonsense", "eyJhbGciOiJIUzI1NiJ9.e30.AAAA"])
def test_a_forged_reset_link_is_refused(client, user, token):
    response = client.post(
        f"/auth/reset/{token}", data={"password": "whatever-pass", "confirm": "whatever-pass"}
    )
    assert response.status_code == 400
    assert reload(user.id).check_password("correct-horse")


def test_reset_refuses_mismatched_or_short_passwords(client, user, smtp_server):
    path = reset_link(client, smtp_server, user.email)
    assert (
        client.post(path, data={"password": "brand-new-pass", "confirm": "other-pass"}).status_code
        == 400
    )
    assert client.post(path, data={"password": "short", "confirm": "short"}).status_code == 400
    assert reload(user.id).check_password("correct-horse")


def test_forgot_answers_the_same_for_known_and_unknown_addresses(client, user, smtp_server):
    known = forgot(client, user.email)
    unknown = forgot(client, "nobody-here@example.com")
    assert known.status_code == unknown.status_code == 200
    assert known.data == unknown.data
    assert b"If that address has an account" in known.data
    # The request did the same work for both; only the worker knows who exists.
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Job)) == 2
    run_jobs()
    assert [m["To"] for m in smtp_server.messages] == [user.email]


def test_forgot_refuses_a_malformed_address(client):
    assert forgot(client, "not-an-address").status_code == 400


@pytest.mark.parametrize("config_overrides", [{"RATELIMIT_ENABLED": True}])
def test_forgot_and_reset_are_rate_limited_like_login(client, config_overrides):
    statuses = [forgot(client, "someone@example.com").status_code for _ in range(11)]
    assert statuses[-1] == 429 and 429 not in statuses[:10]
    statuses = [client.post("/auth/reset/x", data={}).status_code for _ in range(11)]
    assert statuses[-1] == 429 and 429 not in statuses[:10]


# --- verification


def signup(client, address: str = "new@example.com"):
    return client.post("/auth/signup", data={"email": address, "password": "long-enough-pw"})


def test_signup_mails_a_verification_link_that_verifies(client, smtp_server):
    assert signup(client).status_code == 302
    page = client.get("/credits").get_data(as_text=True)
    assert 'id="verify-banner"' in page and "Send the link again" in page
    run_jobs()
    [mail] = smtp_server.to("new@example.com")
    assert mail["Subject"] == "Credits Store: confirm your email address"
    response = client.get(link_in(mail, "/auth/verify/"))
    assert response.status_code == 302
    assert users.find_by_email("new@example.com").email_verified_at is not None
    assert 'id="verify-banner"' not in client.get("/credits").get_data(as_text=True)


def test_the_resend_button_mails_a_new_link_once_a_minute(client, smtp_server):
    signup(client)
    run_jobs()
    assert client.post("/auth/verify/resend", data={"next": "/account"}).status_code == 303
    client.post("/auth/verify/resend")
    run_jobs()
    mails = smtp_server.to("new@example.com")
    assert len(mails) == 2
    assert len({m["Message-ID"] for m in mails}) == 2
    assert client.get(link_in(mails[-1], "/auth/verify/")).status_code == 302


def test_a_verification_link_for_another_address_or_forged_is_refused(client):
    user = users.create_user("unverified@example.com", "long-enough-pw")
    token = users.verification_token(user)
    assert client.get("/auth/verify/forged").status_code == 400
    user_row = reload(user.id)
    user_row.email = "renamed@example.com"
    db.session.commit()
    assert client.get(f"/auth/verify/{token}").status_code == 400
    assert reload(user.id).email_verified_at is None


def test_operator_made_users_are_verified_and_get_no_mail(app, runner, smtp_server):
    runner.invoke(args=["users", "create-admin", "ops@example.com", "--password", "long-enough"])
    run_jobs()
    assert users.find_by_email("ops@example.com").email_verified_at is not None
    assert smtp_server.messages == []


# --- password change


def test_changing_the_password_keeps_this_session_and_ends_the_others(app, logged_in, user):
    other = app.test_client()
    login(other, user.email)
    assert logged_in.get("/account/password").status_code == 200
    response = logged_in.post(
        "/account/password",
        data={
            "current_password": "correct-horse",
            "password": "a-new-password",
            "confirm": "a-new-password",
        },
    )
    assert response.status_code == 303
    assert logged_in.get("/account").status_code == 200
    assert other.get("/account").status_code == 302
    assert reload(user.id).check_password("a-new-password")


@pytest.mark.parametrize(
    "data",
    [
        {
            "current_password": "wrong-horse",
            "password": "a-new-password",
            "confirm": "a-new-password",
        },
        {"current_password": "correct-horse", "password": "a-new-password", "confirm": "different"},
        {"current_password": "correct-horse", "password": "short", "confirm": "short"},
    ],
)
def test_a_password_change_with_bad_input_changes_nothing(app, logged_in, user, data):
    other = app.test_client()
    login(other, user.email)
    assert logged_in.post("/account/password", data=data).status_code == 400
    assert reload(user.id).check_password("correct-horse")
    assert other.get("/account").status_code == 200


def test_a_session_from_before_the_version_existed_still_works_until_sessions_end(
    app, client, user
):
    with client.session_transaction() as session:
        session["_user_id"] = str(user.id)  # what Flask-Login stored before session versions
        session["_fresh"] = True
    assert client.get("/account").status_code == 200
    users.end_sessions(reload(user.id))
    db.session.commit()
    assert client.get("/account").status_code == 302


# --- notification settings


def test_notification_settings_are_saved(logged_in, user, app):
    page = logged_in.get("/account/notifications").get_data(as_text=True)
    assert 'name="low_balance_threshold"' in page and 'value="100"' in page
    response = logged_in.post(
        "/account/notifications",
        data={"low_balance": "y", "renewals": "y", "low_balance_threshold": "250"},
    )
    assert response.status_code == 303
    prefs = users.preferences(reload(user.id))
    assert prefs == users.Preferences(True, False, True, 250)


@pytest.mark.parametrize("threshold", ["-1", "lots", ""])
def test_a_bad_threshold_changes_nothing(logged_in, user, threshold):
    response = logged_in.post(
        "/account/notifications", data={"low_balance": "y", "low_balance_threshold": threshold}
    )
    assert response.status_code == 400
    assert users.preferences(reload(user.id)) == users.Preferences(True, True, True, 100)


# --- the development outbox


@pytest.fixture
def dev_outbox(tmp_path):
    return {
        "APP_ENV": "development",
        "MAIL_BACKEND": "file",
        "MAIL_FILE_PATH": str(tmp_path / "mail"),
    }


def test_dev_mail_shows_the_outbox_in_development(app, client, user, dev_outbox):
    address = user.email
    db.session.rollback()  # SQLite: leave the write lock to the development app
    development = create_app(make_config(app.config["SQLALCHEMY_DATABASE_URI"], **dev_outbox))
    with development.app_context():
        dev_client = development.test_client()
        assert dev_client.get("/dev/mail").status_code == 200
        dev_client.post("/auth/forgot", data={"email": address})
        run_jobs()
        page = dev_client.get("/dev/mail").get_data(as_text=True)
    assert "Credits Store: reset your password" in page and "/auth/reset/" in page
    assert client.get("/dev/mail").status_code == 404  # the testing app has no outbox


@pytest.mark.parametrize("config_overrides", [{"RATELIMIT_ENABLED": True}])
def test_password_change_is_rate_limited_like_login(logged_in, user, config_overrides):
    wrong = {
        "current_password": "guess-guess",
        "password": "a-new-password",
        "confirm": "a-new-password",
    }
    statuses = [logged_in.post("/account/password", data=wrong).status_code for _ in range(11)]
    assert statuses[:10] == [400] * 10 and statuses[10] == 429
    assert reload(user.id).check_password("correct-horse")
