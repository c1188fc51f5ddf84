import pytest
import sqlalchemy as sa

from tests.concurrency import app_in_process, run_processes
from tests.conftest import login, requires_postgres
from tests.payments import balance_of, ledger_sum
from webapp.domain import api_keys, ledger, users
from webapp.extensions import db
from webapp.models import LedgerEntry, UsageRequest


@pytest.fixture
def key(user):
    ledger.adjust(user.id, 100, "seed")
    return api_keys.mint(user.id, "test").secret


def spend(client, key, body, idempotency_key=None):
    headers = {"Authorization": f"Bearer {key}"}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    return client.post("/api/v1/usage", json=body, headers=headers)


def usage_rows(user_id):
    return db.session.scalar(
        sa.select(sa.func.count())
        .select_from(LedgerEntry)
        .where(LedgerEntry.user_id == user_id, LedgerEntry.kind == "usage")
    )


def test_usage_debits_and_returns_the_balance(client, user, key):
    response = spend(client, key, {"credits": 30, "description": "render #1"})
    assert response.status_code == 200
    assert response.get_json() == {"balance": 70}
    entry = db.session.scalar(sa.select(LedgerEntry).where(LedgerEntry.kind == "usage"))
    assert entry.credits == -30 and entry.description == "render #1"
    assert balance_of(user.id) == 70 == ledger_sum(user.id)


def test_usage_beyond_the_balance_is_402_and_changes_nothing(client, user, key):
    response = spend(client, key, {"credits": 101})
    assert response.status_code == 402
    assert response.get_json() == {
        "error": "insufficient_credits",
        "balance": 100,
        "available": 100,
    }
    assert balance_of(user.id) == 100 and usage_rows(user.id) == 0


def test_spending_the_exact_balance_reaches_zero(client, user, key):
    assert spend(client, key, {"credits": 100}).get_json() == {"balance": 0}
    assert spend(client, key, {"credits": 1}).status_code == 402


BAD_BODIES = [
    {"credits": 0},
    {"credits": -5},
    {"credits": True},
    {"credits": 2.0},
    {"credits": 2.5},
    {"credits": "3"},
    {"credits": None},
    {},
    {"credits": 1, "description": 7},
    {"credits": 1, "description": "x" * 501},
    [1, 2],
    {"credits": 1, "description": "a\u0000"},
]


def test_bad_usage_bodies_are_400_json(client, user, key):
    for body in BAD_BODIES:
        response = spend(client, key, body)
        assert response.status_code == 400, body
        assert response.is_json and "error" in response.get_json()
    assert spend(client, key, {"credits": 1}, "x" * 256).status_code == 400
    assert balance_of(user.id) == 100 and usage_rows(user.id) == 0


def test_a_body_that_is_not_json_is_400_json(client, key):
    response = client.post(
        "/api/v1/usage", data="credits=3", headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 400 and response.is_json


def test_json_nested_beyond_the_parser_is_400_not_500(client, user, key):
    response = client.post(
        "/api/v1/usage",
        data="[" * 100_000 + "]" * 100_000,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_body"
    assert balance_of(user.id) == 100


def test_usage_without_auth_is_401_json(client):
    response = client.post("/api/v1/usage", json={"credits": 1})
    assert response.status_code == 401
    assert response.get_json()["error"] == "authentication_required"


def test_api_errors_are_json_not_html(client, key):
    assert client.get("/api/v1/nothing-here").is_json
    response = client.delete("/api/v1/usage", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 405 and response.is_json


def test_same_idempotency_key_replays_the_first_answer_and_debits_once(client, user, key):
    first = spend(client, key, {"credits": 10, "description": "job"}, "job-1")
    again = spend(client, key, {"credits": 10, "description": "job"}, "job-1")
    assert first.status_code == again.status_code == 200
    assert first.get_json() == again.get_json() == {"balance": 90}
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert balance_of(user.id) == 90 == ledger_sum(user.id) + 0
    assert usage_rows(user.id) == 1


def test_a_replayed_402_stays_402_even_after_a_top_up(client, user, key):
    first = spend(client, key, {"credits": 500}, "big-job")
    assert first.status_code == 402
    ledger.adjust(user.id, 1000, "top up")
    again = spend(client, key, {"credits": 500}, "big-job")
    assert again.status_code == 402
    assert again.get_json() == {"error": "insufficient_credits", "balance": 100, "available": 100}
    assert balance_of(user.id) == 1100 and usage_rows(user.id) == 0


def test_same_key_with_a_different_body_is_409(client, user, key):
    assert spend(client, key, {"credits": 10}, "k").status_code == 200
    response = spend(client, key, {"credits": 11}, "k")
    assert response.status_code == 409
    assert response.get_json()["error"] == "idempotency_key_reused"
    other_description = spend(client, key, {"credits": 10, "description": "other"}, "k")
    assert other_description.status_code == 409
    assert balance_of(user.id) == 90


def test_different_keys_debit_separately(client, user, key):
    spend(client, key, {"credits": 10}, "a")
    spend(client, key, {"credits": 10}, "b")
    assert balance_of(user.id) == 80 and usage_rows(user.id) == 2


def test_idempotency_keys_belong_to_one_user(client, user, key):
    other = users.create_user("other@example.com", "correct-horse")
    ledger.adjust(other.id, 50, "seed")
    other_key = api_keys.mint(other.id).secret
    assert spend(client, key, {"credits": 10}, "shared").get_json() == {"balance": 90}
    assert spend(client, other_key, {"credits": 10}, "shared").get_json() == {"balance": 40}
    assert db.session.scalar(sa.select(sa.func.count()).select_from(UsageRequest)) == 2


def test_the_usage_row_and_the_debit_commit_together(client, user, key):
    spend(client, key, {"credits": 5, "description": "one"}, "together")
    stored = db.session.scalar(sa.select(UsageRequest))
    assert stored.idempotency_key == "together" and stored.response_status == 200
    assert usage_rows(user.id) == 1


@pytest.mark.parametrize("config_overrides", [{"WTF_CSRF_ENABLED": True}])
def test_session_usage_needs_the_csrf_token_but_bearer_does_not(client, user, key):
    login_page = client.get("/auth/login").get_data(as_text=True)
    token = login_page.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
    response = client.post(
        "/auth/login", data={"email": user.email, "password": "correct-horse", "csrf_token": token}
    )
    assert response.status_code in (302, 303)
    without = client.post("/api/v1/usage", json={"credits": 1})
    assert without.status_code == 400 and without.get_json()["error"] == "csrf_failed"
    page = client.get("/account").get_data(as_text=True)
    token = page.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
    with_token = client.post("/api/v1/usage", json={"credits": 1}, headers={"X-CSRFToken": token})
    assert with_token.status_code == 200 and with_token.get_json() == {"balance": 99}
    bearer = client.application.test_client().post(
        "/api/v1/usage", json={"credits": 1}, headers={"Authorization": f"Bearer {key}"}
    )
    assert bearer.status_code == 200 and bearer.get_json() == {"balance": 98}


def test_session_usage_works_when_logged_in(client, user, key):
    login(client, user.email)
    response = client.post("/api/v1/usage", json={"credits": 4})
    assert response.status_code == 200 and response.get_json() == {"balance": 96}


# --- several processes on PostgreSQL


def _debit_worker(secret, count, credits, keys, results):
    client = app_in_process().test_client()
    outcome = {200: 0, 402: 0, "other": 0}
    balances = []
    for index in range(count):
        headers = {"Authorization": f"Bearer {secret}"}
        if keys:
            headers["Idempotency-Key"] = keys[index % len(keys)]
        response = client.post("/api/v1/usage", json={"credits": credits}, headers=headers)
        outcome[response.status_code if response.status_code in (200, 402) else "other"] += 1
        balances.append(response.get_json().get("balance", -1))
    results.put((outcome, min(balances)))


def _run_workers(secret, processes, count, credits, keys=()):
    arg_lists = [(secret, count, credits, list(keys)) for _ in range(processes)]
    run = run_processes(_debit_worker, arg_lists, join_timeout=30)
    assert run.exitcodes == [0] * processes
    return run.answers


@requires_postgres
def test_many_processes_debiting_one_account_never_overdraw(app, database_url, user):
    user_id = user.id
    ledger.adjust(user_id, 400, "seed")
    secret = api_keys.mint(user_id).secret
    db.session.remove()
    outcomes = _run_workers(secret, processes=4, count=50, credits=3)
    successes = sum(o[200] for o, _ in outcomes)
    refused = sum(o[402] for o, _ in outcomes)
    assert sum(o["other"] for o, _ in outcomes) == 0
    assert successes == 400 // 3 and refused == 200 - 400 // 3
    assert min(low for _, low in outcomes) >= 0
    assert balance_of(user_id) == 400 - 3 * (400 // 3) == ledger_sum(user_id)


@requires_postgres
def test_processes_racing_with_the_same_idempotency_keys_debit_once_per_key(
    app, database_url, user
):
    user_id = user.id
    ledger.adjust(user_id, 1000, "seed")
    secret = api_keys.mint(user_id).secret
    db.session.remove()
    keys = [f"job-{n}" for n in range(20)]
    outcomes = _run_workers(secret, processes=4, count=20, credits=5, keys=keys)
    assert all(o[200] == 20 and o["other"] == 0 for o, _ in outcomes)
    assert usage_rows(user_id) == 20
    assert balance_of(user_id) == 1000 - 20 * 5 == ledger_sum(user_id)
