import re

import sqlalchemy as sa

from webapp.domain import api_keys, ledger
from webapp.extensions import db
from webapp.models import ApiKey

NEW_KEY = re.compile(r'<code id="new-api-key">(csk_[^<]+)</code>')


def create_key(client, label="build server"):
    """POST the form, then follow its redirect to the page that shows the key once."""
    posted = client.post("/account/api-keys", data={"label": label})
    assert posted.status_code == 303 and posted.headers["Location"] == "/account"
    response = client.get("/account")
    match = NEW_KEY.search(response.get_data(as_text=True))
    return response, match.group(1) if match else None


def test_account_page_requires_login(client):
    response = client.get("/account")
    assert response.status_code == 302
    assert "/auth/login" in response.headers["Location"]


def test_creating_a_key_shows_it_once_and_stores_only_its_hash(logged_in, user):
    response, secret = create_key(logged_in)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    assert secret.startswith("csk_") and len(secret) > 40
    stored = db.session.scalar(sa.select(ApiKey).where(ApiKey.user_id == user.id))
    assert stored.label == "build server"
    assert stored.key_hash == api_keys.hash_key(secret) and secret not in stored.key_hash
    assert secret.startswith(stored.prefix) and len(stored.prefix) < len(secret)
    page = logged_in.get("/account").get_data(as_text=True)
    assert secret not in page and 'id="new-api-key"' not in page
    assert "build server" in page and stored.prefix in page and "Never" in page


def test_a_key_authenticates_the_api_and_records_last_use(client, user):
    ledger.adjust(user.id, 70, "seed")
    secret = api_keys.mint(user.id, "ci").secret
    response = client.get("/api/v1/balance", headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 200
    assert response.get_json() == {
        "balance": 70,
        "purchased": 0,
        "used": 0,
        "held": 0,
        "available": 70,
        "expiring": [],
        "auto_recharge": {"enabled": False, "threshold": 0, "amount": 0},
    }
    assert db.session.scalar(sa.select(ApiKey.last_used_at)) is not None


def test_a_revoked_key_gets_401(logged_in, user):
    _, secret = create_key(logged_in)
    key_id = db.session.scalar(sa.select(ApiKey.id))
    response = logged_in.post(f"/account/api-keys/{key_id}/revoke")
    assert response.status_code == 303
    assert "Revoked" in logged_in.get("/account").get_data(as_text=True)
    anonymous = logged_in.application.test_client()
    for method, path in (("get", "/api/v1/balance"), ("post", "/api/v1/usage")):
        answer = getattr(anonymous, method)(
            path, json={"credits": 1}, headers={"Authorization": f"Bearer {secret}"}
        )
        assert answer.status_code == 401
        assert answer.get_json()["error"] == "invalid_api_key"


def test_nobody_can_revoke_someone_elses_key(logged_in, app):
    from webapp.domain import users

    other = users.create_user("other@example.com", "correct-horse")
    key = api_keys.mint(other.id, "theirs").api_key
    assert logged_in.post(f"/account/api-keys/{key.id}/revoke").status_code == 404
    db.session.expire_all()
    assert db.session.get(ApiKey, key.id).revoked_at is None


def test_unknown_or_malformed_bearer_keys_get_json_401(client):
    for header in ("Bearer csk_nope", "Bearer ", "Basic abc", "Bearer sk_live_x"):
        response = client.get("/api/v1/balance", headers={"Authorization": header})
        assert response.status_code == 401
        assert response.is_json and response.get_json()["error"] == "invalid_api_key"


def test_cli_prints_a_working_key(runner, client, user):
    result = runner.invoke(args=["users", "api-key", user.email, "--label", "cron"])
    assert result.exit_code == 0, result.output
    secret = result.output.strip()
    assert secret.startswith("csk_")
    assert db.session.scalar(sa.select(ApiKey.label)) == "cron"
    response = client.get("/api/v1/balance", headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 200


def test_cli_refuses_an_unknown_email(runner, app):
    result = runner.invoke(args=["users", "api-key", "ghost@example.com"])
    assert result.exit_code != 0 and "No user" in result.output


def test_account_page_shows_when_a_key_was_last_used(logged_in, user):
    _, secret = create_key(logged_in, "reporting")
    logged_in.application.test_client().get(
        "/api/v1/balance", headers={"Authorization": f"Bearer {secret}"}
    )
    page = logged_in.get("/account").get_data(as_text=True)
    row = page.split("reporting</td>")[1].split("</tr>")[0]
    assert "Never" not in row and " UTC" in row


def test_nav_shows_the_account_link(logged_in):
    assert 'href="/account"' in logged_in.get("/credits").get_data(as_text=True)


def _commits_during(action) -> tuple[int, object]:
    commits = []

    def count(conn):
        commits.append(conn)

    sa.event.listen(db.engine, "commit", count)
    try:
        result = action()
    finally:
        sa.event.remove(db.engine, "commit", count)
    return len(commits), result


def test_a_spend_records_the_keys_use_in_its_own_single_commit(client, user):
    ledger.adjust(user.id, 10, "seed")
    secret = api_keys.mint(user.id, "ci").secret
    commits, response = _commits_during(
        lambda: client.post(
            "/api/v1/usage",
            json={"credits": 3, "description": "job"},
            headers={"Authorization": f"Bearer {secret}"},
        )
    )
    assert response.status_code == 200 and response.get_json() == {"balance": 7}
    assert commits == 1  # the debit and the key's last use together
    db.session.expire_all()
    assert db.session.scalar(sa.select(ApiKey.last_used_at)) is not None


def test_a_refused_spend_still_records_the_keys_use(client, user):
    secret = api_keys.mint(user.id, "ci").secret
    response = client.post(
        "/api/v1/usage",
        json={"credits": 5, "description": "job"},
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert response.status_code == 402
    db.session.expire_all()
    assert db.session.scalar(sa.select(ApiKey.last_used_at)) is not None


def test_a_key_used_again_within_the_resolution_is_not_written_again(client, user):
    ledger.adjust(user.id, 10, "seed")
    secret = api_keys.mint(user.id, "ci").secret
    headers = {"Authorization": f"Bearer {secret}"}
    client.get("/api/v1/balance", headers=headers)
    first = db.session.scalar(sa.select(ApiKey.last_used_at))
    commits, response = _commits_during(lambda: client.get("/api/v1/balance", headers=headers))
    assert response.status_code == 200 and commits == 0
    db.session.expire_all()
    assert db.session.scalar(sa.select(ApiKey.last_used_at)) == first
