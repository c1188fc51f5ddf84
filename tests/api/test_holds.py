"""Holds through the API: reserve, capture, release, expiry, replays and every refusal."""

from datetime import timedelta

import pytest
import sqlalchemy as sa

from tests.payments import Payment, balance_of, checked_books, ledger_sum, plan_grant
from tests.stripe_fakes import deliver
from tests.subscription_fakes import FEB_1, JAN_1
from webapp.domain import api_keys, ledger, users
from webapp.extensions import db
from webapp.models import CreditAccount, CreditGrant, Hold, LedgerEntry


@pytest.fixture
def key(user):
    ledger.adjust(user.id, 100, "seed")
    return api_keys.mint(user.id, "worker").secret


def call(client, key, path, body=None, idempotency_key=None, method="post"):
    headers = {"Authorization": f"Bearer {key}"}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    if method == "get":
        return client.get(f"/api/v1{path}", headers=headers)
    return client.post(f"/api/v1{path}", json=body, headers=headers)


def hold(client, key, credits, **fields):
    response = call(client, key, "/holds", {"credits": credits, **fields})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def usage_rows(user_id):
    return db.session.execute(
        sa.select(LedgerEntry.credits, LedgerEntry.reference)
        .where(LedgerEntry.user_id == user_id, LedgerEntry.kind == "usage")
        .order_by(LedgerEntry.id)
    ).all()


def figures(client, key):
    body = call(client, key, "/balance", method="get").get_json()
    return body["balance"], body["held"], body["available"]


def test_a_hold_reserves_credits_without_moving_the_balance(client, user, key, fixed_clock):
    body = hold(client, key, 30, description="render", expires_in=120)
    assert body["id"].startswith("hold_") and body["status"] == "held"
    assert body["credits"] == 30 and body["expires_at"] == "2030-01-01T00:02:00Z"
    assert (body["balance"], body["held"], body["available"]) == (100, 30, 70)
    assert figures(client, key) == (100, 30, 70)
    assert usage_rows(user.id) == [] and balance_of(user.id) == 100 == ledger_sum(user.id)
    shown = call(client, key, f"/holds/{body['id']}", method="get").get_json()
    assert shown["status"] == "held" and shown["description"] == "render"


def test_expires_in_defaults_to_900_seconds(client, key, fixed_clock):
    assert hold(client, key, 1)["expires_at"] == "2030-01-01T00:15:00Z"


def test_a_hold_beyond_the_available_credits_is_402_and_changes_nothing(client, user, key):
    hold(client, key, 60)
    response = call(client, key, "/holds", {"credits": 41})
    assert response.status_code == 402
    assert response.get_json() == {"error": "insufficient_credits", "available": 40}
    assert figures(client, key) == (100, 60, 40)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Hold)) == 1
    assert hold(client, key, 40)["available"] == 0


def test_usage_may_take_only_the_available_credits(client, user, key):
    hold(client, key, 80)
    response = call(client, key, "/usage", {"credits": 21})
    assert response.status_code == 402
    assert response.get_json() == {"error": "insufficient_credits", "balance": 100, "available": 20}
    assert call(client, key, "/usage", {"credits": 20}).get_json() == {"balance": 80}
    assert figures(client, key) == (80, 80, 0)


def test_a_capture_takes_what_was_used_and_releases_the_rest(client, user, key):
    placed = hold(client, key, 50)
    response = call(client, key, f"/holds/{placed['id']}/capture", {"credits": 35})
    assert response.status_code == 200
    assert response.get_json() == {
        "id": placed["id"],
        "status": "captured",
        "captured": 35,
        "released": 15,
        "balance": 65,
        "held": 0,
        "available": 65,
    }
    assert usage_rows(user.id) == [(-35, placed["id"])]
    assert balance_of(user.id) == 65 == ledger_sum(user.id)
    shown = call(client, key, f"/holds/{placed['id']}", method="get").get_json()
    assert (shown["status"], shown["captured"], shown["released"]) == ("captured", 35, 15)
    account = db.session.get(CreditAccount, user.id)
    assert account.used == 35


def test_the_same_capture_again_answers_the_same_and_takes_nothing_more(client, user, key):
    placed = hold(client, key, 50)
    first = call(client, key, f"/holds/{placed['id']}/capture", {"credits": 20}).get_json()
    call(client, key, "/usage", {"credits": 10})  # the figures move on meanwhile
    again = call(client, key, f"/holds/{placed['id']}/capture", {"credits": 20})
    assert again.status_code == 200 and again.get_json() == first
    assert first["balance"] == 80 and figures(client, key) == (70, 0, 70)
    assert usage_rows(user.id) == [(-20, placed["id"]), (-10, "csk_" + key[4:12])]


def test_a_different_capture_after_capture_is_409_and_more_than_held_is_400(client, user, key):
    placed = hold(client, key, 50)
    call(client, key, f"/holds/{placed['id']}/capture", {"credits": 20})
    other = call(client, key, f"/holds/{placed['id']}/capture", {"credits": 21})
    assert other.status_code == 409 and other.get_json()["error"] == "hold_already_settled"
    whole = call(client, key, f"/holds/{placed['id']}/capture", {})
    assert whole.status_code == 409 and whole.get_json()["error"] == "hold_already_settled"
    second = hold(client, key, 10)
    too_much = call(client, key, f"/holds/{second['id']}/capture", {"credits": 11})
    assert too_much.status_code == 400 and too_much.get_json()["error"] == "capture_exceeds_hold"
    assert usage_rows(user.id) == [(-20, placed["id"])] and figures(client, key) == (80, 10, 70)


def test_a_capture_without_credits_takes_the_whole_hold(client, user, key):
    placed = hold(client, key, 45)
    response = client.post(
        f"/api/v1/holds/{placed['id']}/capture", headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 200
    assert (response.get_json()["captured"], response.get_json()["released"]) == (45, 0)
    assert figures(client, key) == (55, 0, 55)


def test_a_capture_of_zero_releases_everything_and_writes_no_ledger_row(client, user, key):
    placed = hold(client, key, 45)
    body = call(client, key, f"/holds/{placed['id']}/capture", {"credits": 0}).get_json()
    assert (body["status"], body["captured"], body["released"]) == ("captured", 0, 45)
    assert usage_rows(user.id) == [] and figures(client, key) == (100, 0, 100)


def test_release_gives_everything_back_once(client, user, key):
    placed = hold(client, key, 45)
    first = call(client, key, f"/holds/{placed['id']}/release")
    assert first.status_code == 200
    assert first.get_json() == {
        "id": placed["id"],
        "status": "released",
        "captured": 0,
        "released": 45,
        "balance": 100,
        "held": 0,
        "available": 100,
    }
    again = call(client, key, f"/holds/{placed['id']}/release")
    assert again.status_code == 200 and again.get_json() == first.get_json()
    capture = call(client, key, f"/holds/{placed['id']}/capture", {"credits": 1})
    assert capture.status_code == 409 and capture.get_json()["error"] == "hold_released"
    assert usage_rows(user.id) == [] and figures(client, key) == (100, 0, 100)


def test_releasing_a_captured_hold_is_409(client, key):
    placed = hold(client, key, 45)
    call(client, key, f"/holds/{placed['id']}/capture", {"credits": 5})
    response = call(client, key, f"/holds/{placed['id']}/release")
    assert response.status_code == 409
    assert response.get_json()["error"] == "hold_already_settled"
    assert figures(client, key) == (95, 0, 95)


def test_an_expired_hold_stops_counting_at_once_and_cannot_be_settled(
    client, user, key, fixed_clock
):
    placed = hold(client, key, 70, expires_in=60)
    fixed_clock.set(JAN_1 + timedelta(seconds=59))
    assert figures(client, key) == (100, 70, 30)
    fixed_clock.set(JAN_1 + timedelta(seconds=60))
    assert figures(client, key) == (100, 0, 100)  # before any job has run
    shown = call(client, key, f"/holds/{placed['id']}", method="get").get_json()
    assert shown["status"] == "expired"
    for action, body in (("capture", {"credits": 10}), ("release", None)):
        response = call(client, key, f"/holds/{placed['id']}/{action}", body)
        assert response.status_code == 409 and response.get_json()["error"] == "hold_expired"
    # Its credits are available again to usage and to new holds.
    assert call(client, key, "/usage", {"credits": 60}).get_json() == {"balance": 40}
    assert hold(client, key, 40)["available"] == 0
    assert db.session.scalar(sa.select(Hold.status).where(Hold.public_id == placed["id"])) == (
        "expired"
    )
    assert usage_rows(user.id) == [(-60, "csk_" + key[4:12])]


def test_the_release_holds_command_tidies_expired_holds(runner, client, user, key, fixed_clock):
    stale = hold(client, key, 30, expires_in=60)
    fresh = hold(client, key, 20, expires_in=600)
    fixed_clock.set(JAN_1 + timedelta(seconds=61))
    result = runner.invoke(args=["credits", "release-holds"])
    assert result.exit_code == 0, result.output
    assert "released 30 credits from 1 accounts" in result.output
    db.session.expire_all()
    statuses = dict(db.session.execute(sa.select(Hold.public_id, Hold.status)).all())
    assert statuses == {stale["id"]: "expired", fresh["id"]: "held"}
    account = db.session.get(CreditAccount, user.id)
    assert account.held == 20 and account.next_hold_expiry_at == JAN_1 + timedelta(seconds=600)
    again = runner.invoke(args=["credits", "release-holds"])
    assert "released 0 credits from 0 accounts" in again.output
    assert figures(client, key) == (100, 20, 80)


def test_a_capture_spends_expiring_credits_first(client, user, key, fixed_clock):
    grant_id = ledger.grant_plan_credits(
        user.id, 40, invoice_id="in_1", plan_code="basic", subscription_id=None, expires_at=FEB_1
    )
    placed = hold(client, key, 100)
    call(client, key, f"/holds/{placed['id']}/capture", {"credits": 60})
    db.session.expire_all()
    assert db.session.get(CreditGrant, grant_id).remaining == 0
    assert balance_of(user.id) == 80 == ledger_sum(user.id)


def test_credits_of_a_due_grant_cannot_be_held(client, user, key, fixed_clock):
    ledger.grant_plan_credits(
        user.id,
        40,
        invoice_id="in_1",
        plan_code="basic",
        subscription_id=None,
        expires_at=JAN_1 + timedelta(hours=1),
    )
    fixed_clock.set(JAN_1 + timedelta(hours=1))
    response = call(client, key, "/holds", {"credits": 101})
    assert response.status_code == 402 and response.get_json()["available"] == 100
    assert figures(client, key) == (100, 0, 100)
    assert hold(client, key, 100)["available"] == 0
    assert balance_of(user.id) == 100 == ledger_sum(user.id)  # the hold wrote the expiry


def test_a_hold_on_plan_credits_that_expire_before_the_hold_is_refused(client, user, fixed_clock):
    """Credits gone before the hold ends cannot pay for it: a hold lasting until or past
    the grant's expiry is 402; a shorter one is placed and captured as usual."""
    key = api_keys.mint(user.id, "worker").secret
    plan_grant(user.id, 100, JAN_1 + timedelta(minutes=5))
    for expires_in in (3600, 300):  # past the grant's expiry, then exactly at it
        response = call(client, key, "/holds", {"credits": 100, "expires_in": expires_in})
        assert response.status_code == 402
        assert response.get_json() == {"error": "insufficient_credits", "available": 0}
    assert figures(client, key) == (100, 0, 100)
    placed = hold(client, key, 100, expires_in=299)
    captured = call(client, key, f"/holds/{placed['id']}/capture", {"credits": 100})
    assert captured.status_code == 200 and captured.get_json()["balance"] == 0
    assert checked_books(user.id) == (0, 0)


def test_available_never_goes_below_zero_when_held_credits_expire(client, user, key, fixed_clock):
    """100 bought + 100 plan credits expiring in 5 minutes: an hour's hold may reserve only
    the 100 that outlive it; once the plan credits expire under it, it is still whole."""
    plan_grant(user.id, 100, JAN_1 + timedelta(minutes=5))
    refused = call(client, key, "/holds", {"credits": 200, "expires_in": 3600})
    assert refused.status_code == 402
    assert refused.get_json() == {"error": "insufficient_credits", "available": 100}
    placed = hold(client, key, 100, expires_in=3600)
    assert (placed["balance"], placed["held"], placed["available"]) == (200, 100, 100)

    fixed_clock.set(JAN_1 + timedelta(minutes=10))
    assert figures(client, key) == (100, 100, 0)
    captured = call(client, key, f"/holds/{placed['id']}/capture", {"credits": 100})
    assert captured.status_code == 200, captured.get_json()
    assert checked_books(user.id) == (0, 0)


def test_a_refused_hold_never_reports_negative_available(client, user, key, fixed_clock):
    """100 lasting + 100 plan credits expiring in an hour, 150 held for 30 minutes: a
    2-hour hold of 60 is refused (210 while both run), and its 402 says how much such a
    hold could take (50: 200 while both run, 100 after the expiry), never a negative
    number; a hold of that much is then placed."""
    plan_grant(user.id, 100, JAN_1 + timedelta(hours=1))
    hold(client, key, 150, expires_in=1800)
    assert figures(client, key) == (200, 150, 50)
    refused = call(client, key, "/holds", {"credits": 60, "expires_in": 7200})
    assert refused.status_code == 402
    assert refused.get_json() == {"error": "insufficient_credits", "available": 50}
    assert figures(client, key) == (200, 150, 50)
    assert hold(client, key, 50, expires_in=7200)["available"] == 0


def test_a_hold_covered_at_every_moment_of_its_life_is_placed(client, user, key, fixed_clock):
    """100 lasting + 100 plan credits expiring in an hour. Hold A of 100 ends in 30
    minutes, before the plan credits; hold B of 100 for 2 hours is covered at every
    moment (200 for both while A runs, the 100 lasting for B after the expiry), so it is
    placed, and both are captured in full: B after the plan credits expired."""
    plan_grant(user.id, 100, JAN_1 + timedelta(hours=1))
    first = hold(client, key, 100, expires_in=1800)
    second = hold(client, key, 100, expires_in=7200)
    assert (second["balance"], second["held"], second["available"]) == (200, 200, 0)
    refused = call(client, key, "/holds", {"credits": 1, "expires_in": 7200})
    assert refused.get_json() == {"error": "insufficient_credits", "available": 0}
    captured = call(client, key, f"/holds/{first['id']}/capture", {"credits": 100})
    assert captured.status_code == 200, captured.get_json()
    fixed_clock.set(JAN_1 + timedelta(minutes=90))
    captured = call(client, key, f"/holds/{second['id']}/capture", {"credits": 100})
    assert captured.status_code == 200, captured.get_json()
    assert checked_books(user.id) == (0, 0)


def test_plan_credits_expiring_under_open_holds_never_take_held_credits(
    client, user, key, fixed_clock
):
    """100 bought + 40 plan credits expiring in 10 minutes: holding all 140 for an hour is
    refused; 100 for an hour and the plan's 40 for 5 minutes are placed. When the short
    hold and then the grant expire, the long hold is still covered and captured."""
    plan_grant(user.id, 40, JAN_1 + timedelta(minutes=10))
    assert call(client, key, "/holds", {"credits": 140, "expires_in": 3600}).status_code == 402
    long = hold(client, key, 100, expires_in=3600)
    short = hold(client, key, 40, expires_in=300)
    assert (short["balance"], short["held"], short["available"]) == (140, 140, 0)

    fixed_clock.set(JAN_1 + timedelta(minutes=20))
    assert figures(client, key) == (100, 100, 0)
    assert call(client, key, f"/holds/{short['id']}", method="get").get_json()["status"] == (
        "expired"
    )
    captured = call(client, key, f"/holds/{long['id']}/capture", {"credits": 100})
    assert captured.status_code == 200, captured.get_json()
    assert checked_books(user.id) == (0, 0)


@pytest.mark.parametrize("debit", ["usage", "removal", "capture"])
def test_a_debit_between_placing_a_hold_and_the_expiry_never_leaves_held_above_balance(
    client, user, key, fixed_clock, debit
):
    """Debits spend the soonest-expiring credits first, so what they take between a hold's
    placement and the plan credits' expiry comes out of the credits that expire, never
    out of those the hold reserved."""
    plan_grant(user.id, 100, JAN_1 + timedelta(minutes=5))
    placed = hold(client, key, 100, expires_in=3600)
    if debit == "usage":
        assert call(client, key, "/usage", {"credits": 60}).get_json() == {"balance": 140}
    elif debit == "removal":
        assert ledger.adjust(user.id, -60, "taken back by hand") == 140
    else:
        other = hold(client, key, 60, expires_in=240)
        path = f"/holds/{other['id']}/capture"
        assert call(client, key, path, {"credits": 60}).get_json()["balance"] == 140
    assert figures(client, key) == (140, 100, 40)

    fixed_clock.set(JAN_1 + timedelta(minutes=10))
    assert figures(client, key) == (100, 100, 0)
    captured = call(client, key, f"/holds/{placed['id']}/capture", {"credits": 100})
    assert captured.status_code == 200, captured.get_json()
    assert checked_books(user.id) == (0, 0)


def test_an_expired_hold_does_not_block_an_admin_removal(client, user, key, fixed_clock):
    """A hold past expires_at counts for nothing even before any job runs, so a removal by
    hand may take the credits it held."""
    placed = hold(client, key, 80, expires_in=60)
    fixed_clock.set(JAN_1 + timedelta(seconds=61))
    assert figures(client, key) == (100, 0, 100)
    assert ledger.adjust(user.id, -50, "goodwill reversed") == 50 == ledger_sum(user.id)
    assert call(client, key, f"/holds/{placed['id']}", method="get").get_json()["status"] == (
        "expired"
    )
    db.session.expire_all()
    assert db.session.get(CreditAccount, user.id).held == 0  # the removal released it


def test_a_refused_capture_reports_what_the_capture_could_take(client, stripe_double, user):
    """100 bought, holds of 50 and 20, then 70 refunded (balance 30, 20 of it held by the
    other hold): capturing 40 of the first is 402 with "available": 10, what a capture of
    it can take; capturing those 10 succeeds."""
    paid = Payment(stripe_double, user, 100)
    assert deliver(client, paid.completed()).status_code == 200
    key = api_keys.mint(user.id, "worker").secret
    first = hold(client, key, 50)
    hold(client, key, 20)
    assert deliver(client, paid.refunded(70)).status_code == 200
    assert figures(client, key) == (30, 70, -40)
    refused = call(client, key, f"/holds/{first['id']}/capture", {"credits": 40})
    assert refused.status_code == 402
    assert refused.get_json() == {"error": "insufficient_credits", "available": 10}
    assert figures(client, key) == (30, 70, -40)  # the refusal changed nothing
    refused = call(client, key, "/holds", {"credits": 1})
    assert refused.get_json() == {"error": "insufficient_credits", "available": 0}
    as_told = call(client, key, f"/holds/{first['id']}/capture", {"credits": 10})
    assert as_told.status_code == 200, as_told.get_json()
    assert (as_told.get_json()["balance"], as_told.get_json()["held"]) == (20, 20)


def test_idempotent_create_replays_the_first_hold(client, user, key):
    first = call(client, key, "/holds", {"credits": 10}, idempotency_key="job-7")
    again = call(client, key, "/holds", {"credits": 10}, idempotency_key="job-7")
    assert first.status_code == again.status_code == 201
    assert again.get_json() == first.get_json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Hold)) == 1
    reused = call(client, key, "/holds", {"credits": 11}, idempotency_key="job-7")
    assert reused.status_code == 409 and reused.get_json()["error"] == "idempotency_key_reused"
    as_usage = call(client, key, "/usage", {"credits": 10}, idempotency_key="job-7")
    assert as_usage.status_code == 409
    odd_key = call(client, key, "/holds", {"credits": 10}, idempotency_key="job\x00")
    assert odd_key.status_code == 400
    assert odd_key.get_json()["error"] == "invalid_idempotency_key"
    assert figures(client, key) == (100, 10, 90)


def test_a_refused_create_is_replayed_too(client, key):
    first = call(client, key, "/holds", {"credits": 500}, idempotency_key="big")
    ledger.adjust(db.session.scalar(sa.select(CreditAccount.user_id)), 1000, "top-up")
    again = call(client, key, "/holds", {"credits": 500}, idempotency_key="big")
    assert first.status_code == again.status_code == 402
    assert again.get_json() == first.get_json()


def test_idempotent_capture_replays_and_a_changed_body_is_409(client, user, key):
    placed = hold(client, key, 50)
    path = f"/holds/{placed['id']}/capture"
    first = call(client, key, path, {"credits": 30}, idempotency_key="cap-1")
    again = call(client, key, path, {"credits": 30}, idempotency_key="cap-1")
    assert again.get_json() == first.get_json() and first.status_code == 200
    changed = call(client, key, path, {"credits": 31}, idempotency_key="cap-1")
    assert changed.status_code == 409
    assert changed.get_json()["error"] == "idempotency_key_reused"
    assert usage_rows(user.id) == [(-30, placed["id"])]


def test_a_refused_capture_under_a_key_writes_nothing(client, user, key):
    """A capture the balance no longer covers (a refund took credits) rolls back whole,
    though the refusal is stored for the key."""
    placed = hold(client, key, 50)
    db.session.execute(sa.update(CreditAccount).values(balance=CreditAccount.balance - 90))
    db.session.execute(
        sa.insert(LedgerEntry).values(user_id=user.id, kind="refund", credits=-90, balance_after=10)
    )
    db.session.commit()
    response = call(
        client, key, f"/holds/{placed['id']}/capture", {"credits": 30}, idempotency_key="short"
    )
    assert response.status_code == 402
    db.session.expire_all()
    assert db.session.scalar(sa.select(Hold.status)) == "held"
    assert db.session.get(CreditAccount, user.id).held == 50
    assert usage_rows(user.id) == [] and balance_of(user.id) == 10 == ledger_sum(user.id)


def test_another_users_hold_is_404(client, user, key):
    placed = hold(client, key, 10)
    other = users.create_user("other@example.com", "correct-horse")
    ledger.adjust(other.id, 100, "seed")
    other_key = api_keys.mint(other.id).secret
    for action in ("capture", "release"):
        response = call(client, other_key, f"/holds/{placed['id']}/{action}", {})
        assert response.status_code == 404 and response.get_json()["error"] == "not_found"
    assert call(client, other_key, f"/holds/{placed['id']}", method="get").status_code == 404
    assert call(client, key, "/holds/hold_nope", method="get").status_code == 404
    assert call(client, key, "/holds/hold_%00x", method="get").status_code == 404
    assert figures(client, key) == (100, 10, 90)


BAD_HOLDS = [
    {"credits": 0},
    {"credits": -1},
    {"credits": "3"},
    {"credits": True},
    {"credits": 2.5},
    {"credits": 10**13},
    {"credits": 2**70},
    {},
    {"credits": 1, "expires_in": 59},
    {"credits": 1, "expires_in": 86401},
    {"credits": 1, "expires_in": "60"},
    {"credits": 1, "description": "x" * 501},
    {"credits": 1, "description": 5},
    [1],
]


def test_bad_hold_bodies_are_400_and_change_nothing(client, user, key):
    for body in BAD_HOLDS:
        response = call(client, key, "/holds", body)
        assert response.status_code == 400, body
        assert response.is_json and isinstance(response.get_json()["error"], str)
    placed = hold(client, key, 10)
    for body in ({"credits": -1}, {"credits": "1"}, {"credits": 10**13}, {"credits": 1.5}):
        response = call(client, key, f"/holds/{placed['id']}/capture", body)
        assert response.status_code == 400, body
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Hold)) == 1
    assert figures(client, key) == (100, 10, 90) and usage_rows(user.id) == []


def test_holds_need_authentication(client):
    response = client.post("/api/v1/holds", json={"credits": 1})
    assert response.status_code == 401 and response.is_json


def test_a_session_may_hold_with_its_csrf_token(app, logged_in, user):
    ledger.adjust(user.id, 10, "seed")
    response = logged_in.post("/api/v1/holds", json={"credits": 4})
    assert response.status_code == 201
    assert db.session.scalar(sa.select(Hold.api_key_id)) is None


def test_answers_leave_out_holds_that_expired_before_any_job_ran(client, key, fixed_clock):
    hold(client, key, 30, expires_in=60)
    fixed_clock.set(JAN_1 + timedelta(seconds=61))
    placed = hold(client, key, 10)
    assert (placed["balance"], placed["held"], placed["available"]) == (100, 10, 90)
    settled = call(client, key, f"/holds/{placed['id']}/capture", {"credits": 4}).get_json()
    assert (settled["balance"], settled["held"], settled["available"]) == (96, 0, 96)
