"""Which API key spent what: ledger rows, GET /api/v1/usage, /account, and holds on the pages."""

from datetime import timedelta

import sqlalchemy as sa

from tests.conftest import login
from webapp.domain import api_keys, ledger, users
from webapp.extensions import db
from webapp.models import AdminAction, Hold, LedgerEntry
from webapp.models.types import utcnow


def auth(secret):
    return {"Authorization": f"Bearer {secret}"}


def test_each_debit_and_capture_records_its_api_key(client, user):
    ledger.adjust(user.id, 100, "seed")
    build = api_keys.mint(user.id, "build")
    render = api_keys.mint(user.id, "render")
    client.post("/api/v1/usage", json={"credits": 5}, headers=auth(build.secret))
    placed = client.post("/api/v1/holds", json={"credits": 20}, headers=auth(render.secret))
    hold_id = placed.get_json()["id"]
    client.post(
        f"/api/v1/holds/{hold_id}/capture", json={"credits": 7}, headers=auth(render.secret)
    )
    rows = db.session.execute(
        sa.select(LedgerEntry.credits, LedgerEntry.api_key_id)
        .where(LedgerEntry.kind == "usage")
        .order_by(LedgerEntry.id)
    ).all()
    assert rows == [(-5, build.api_key.id), (-7, render.api_key.id)]
    assert db.session.scalar(sa.select(Hold.api_key_id)) == render.api_key.id


def test_usage_list_pages_newest_first_with_key_labels(client, user):
    ledger.adjust(user.id, 100, "seed")
    build = api_keys.mint(user.id, "build")
    for credits in (1, 2, 3, 4, 5):
        client.post(
            "/api/v1/usage",
            json={"credits": credits, "description": f"job {credits}"},
            headers=auth(build.secret),
        )
    first = client.get("/api/v1/usage?limit=2", headers=auth(build.secret)).get_json()
    assert [item["credits"] for item in first["data"]] == [5, 4]
    assert first["data"][0]["description"] == "job 5"
    assert first["data"][0]["api_key"] == {
        "id": build.api_key.id,
        "label": "build",
        "prefix": build.api_key.prefix,
    }
    second = client.get(
        f"/api/v1/usage?limit=2&before={first['next_before']}", headers=auth(build.secret)
    ).get_json()
    third = client.get(
        f"/api/v1/usage?limit=2&before={second['next_before']}", headers=auth(build.secret)
    ).get_json()
    assert [item["credits"] for item in second["data"] + third["data"]] == [3, 2, 1]
    assert third["next_before"] is None


def test_usage_list_filters_by_time_and_shows_only_the_callers_debits(client, user):
    ledger.adjust(user.id, 100, "seed")
    secret = api_keys.mint(user.id, "k").secret
    ledger.debit_usage(user.id, 9, "old")
    old = db.session.scalar(sa.select(LedgerEntry).where(LedgerEntry.description == "old"))
    old.created_at = utcnow() - timedelta(days=40)
    db.session.commit()
    client.post("/api/v1/usage", json={"credits": 3}, headers=auth(secret))
    since = (utcnow() - timedelta(days=1)).strftime("%Y-%m-%d")
    recent = client.get(f"/api/v1/usage?from={since}", headers=auth(secret)).get_json()
    assert [item["credits"] for item in recent["data"]] == [3]
    until = (utcnow() - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    older = client.get(f"/api/v1/usage?to={until}", headers=auth(secret)).get_json()
    assert [(i["credits"], i["api_key"]) for i in older["data"]] == [(9, None)]
    stranger = api_keys.mint(users.create_user("other@example.com", "correct-horse").id)
    assert client.get("/api/v1/usage", headers=auth(stranger.secret)).get_json() == {
        "data": [],
        "next_before": None,
    }
    odd = (
        "from=yesterday",
        "to=2026-13-01",
        "to=9999-12-31T23:00:00-14:00",
        "limit=0",
        "limit=101",
        "before=-1",
        f"before={2**63}",
    )
    for bad in odd:
        response = client.get(f"/api/v1/usage?{bad}", headers=auth(secret))
        assert response.status_code == 400 and response.is_json, bad


def test_account_shows_credits_spent_per_key_over_30_days(client, user):
    ledger.adjust(user.id, 100, "seed")
    build = api_keys.mint(user.id, "build-server")
    client.post("/api/v1/usage", json={"credits": 12}, headers=auth(build.secret))
    client.post("/api/v1/usage", json={"credits": 30}, headers=auth(build.secret))
    ledger.debit_usage(user.id, 4, "by hand")
    login(client, user.email)
    page = client.get("/account").get_data(as_text=True)
    section = page[page.index('id="spend-by-key"') :]
    assert "build-server" in section and ">42<" in section
    assert "Browser session or operator" in section and ">4<" in section
    assert 'href="/api/docs"' in page


def test_credits_page_shows_credits_on_hold_and_history_shows_captures(client, user):
    ledger.adjust(user.id, 100, "seed")
    placed = ledger.place_hold(user.id, 30, description="long render")
    login(client, user.email)
    page = client.get("/credits").get_data(as_text=True)
    assert "30 credits on hold" in page and "70 available" in page
    ledger.capture_hold(user.id, placed["id"], 25)
    history = client.get("/credits/history").get_data(as_text=True)
    assert placed["id"] in history and "long render" in history
    assert "on hold" not in client.get("/credits").get_data(as_text=True)


def test_an_admin_releases_a_users_hold_and_it_is_audited(client, user, admin):
    ledger.adjust(user.id, 100, "seed")
    placed = ledger.place_hold(user.id, 30)
    login(client, admin.email)
    page = client.get(f"/admin/users/{user.id}").get_data(as_text=True)
    assert placed["id"] in page
    response = client.post(f"/admin/users/{user.id}/holds/{placed['id']}/release")
    assert response.status_code == 303
    assert db.session.scalar(sa.select(Hold.status)) == "released"
    action = db.session.scalar(sa.select(AdminAction))
    assert (action.action, action.admin_id, action.target_id) == ("release_hold", admin.id, user.id)
    again = client.post(
        f"/admin/users/{user.id}/holds/{placed['id']}/release", follow_redirects=True
    )
    assert "was not released" not in again.get_data(as_text=True)  # a repeat is the same
    assert client.post(f"/admin/users/{user.id}/holds/hold_nope/release").status_code == 404
    # ...and is audited once: the repeat released nothing.
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AdminAction)) == 1
