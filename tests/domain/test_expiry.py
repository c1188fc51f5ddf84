"""Expiring plan credits: spent first (soonest expiry first), never spent or counted once due."""

from datetime import timedelta

import pytest
import sqlalchemy as sa

from tests.payments import checked_books, plan_grant
from tests.subscription_fakes import FEB_1, JAN_1, MAR_1
from webapp.domain import ledger
from webapp.domain.errors import InsufficientCreditsError
from webapp.extensions import db
from webapp.models import CreditAccount, CreditGrant, LedgerEntry

JAN_15 = JAN_1 + timedelta(days=14)


def remaining(grant_id):
    db.session.expire_all()
    return db.session.get(CreditGrant, grant_id).remaining


def balance_and_sum(user_id):
    db.session.expire_all()
    balance = db.session.get(CreditAccount, user_id).balance
    total = db.session.scalar(
        sa.select(sa.func.sum(LedgerEntry.credits)).where(LedgerEntry.user_id == user_id)
    )
    return balance, total


def kinds(user_id):
    return db.session.execute(
        sa.select(LedgerEntry.kind, LedgerEntry.credits)
        .where(LedgerEntry.user_id == user_id)
        .order_by(LedgerEntry.id)
    ).all()


def test_expiring_credits_are_spent_first_soonest_expiry_first(logged_in, user, fixed_clock):
    ledger.adjust(user.id, 500, "bought")
    later = plan_grant(user.id, 100, FEB_1, "in_later")
    sooner = plan_grant(user.id, 200, JAN_15, "in_sooner")
    assert ledger.debit_usage(user.id, 250, "job") == 550
    assert (remaining(sooner), remaining(later)) == (0, 50)
    assert ledger.debit_usage(user.id, 100, "job") == 450
    assert remaining(later) == 0
    account = db.session.get(CreditAccount, user.id)
    assert account.expiring == 0 and account.next_expiry_at is None
    assert balance_and_sum(user.id) == (450, 450)


def test_balance_api_lists_unexpired_grants_with_credits_left_soonest_first(
    logged_in, user, fixed_clock
):
    ledger.adjust(user.id, 10, "bought")
    plan_grant(user.id, 100, FEB_1, "in_feb")
    plan_grant(user.id, 200, JAN_15, "in_jan")
    plan_grant(user.id, 300, None, "in_rollover")
    ledger.debit_usage(user.id, 50, "job")
    body = logged_in.get("/api/v1/balance").get_json()
    assert body["balance"] == 560
    assert body["expiring"] == [
        {"credits": 150, "expires_at": "2030-01-15T00:00:00Z"},
        {"credits": 100, "expires_at": "2030-02-01T00:00:00Z"},
    ]


def test_credits_past_expiry_are_not_counted_or_spendable_before_the_command_runs(
    logged_in, user, fixed_clock
):
    ledger.adjust(user.id, 100, "bought")
    plan_grant(user.id, 1000, FEB_1, "in_1")
    fixed_clock.set(FEB_1 + timedelta(seconds=1))
    body = logged_in.get("/api/v1/balance").get_json()
    assert body["balance"] == 100 and body["expiring"] == []
    assert "1,000 plan credits expire" not in logged_in.get("/credits").get_data(as_text=True)
    with pytest.raises(InsufficientCreditsError) as raised:
        ledger.debit_usage(user.id, 200, "too much")
    assert raised.value.balance == 100
    assert ledger.debit_usage(user.id, 60, "fits") == 40
    assert kinds(user.id) == [
        ("adjustment", 100),
        ("grant", 1000),
        ("expiry", -1000),
        ("usage", -60),
    ]
    assert balance_and_sum(user.id) == (40, 40)


def test_the_meter_shows_what_expires_and_when(logged_in, user, fixed_clock):
    plan_grant(user.id, 1000, FEB_1, "in_1")
    page = logged_in.get("/credits").get_data(as_text=True)
    assert "1,000 plan credits expire on 01 Feb 2030 00:00 UTC" in page


def test_expire_command_writes_one_row_per_remainder_and_is_safe_to_run_twice(
    runner, user, admin, fixed_clock
):
    ledger.adjust(user.id, 5, "bought")
    first, second = (
        plan_grant(user.id, 100, JAN_15, "in_a"),
        plan_grant(user.id, 200, FEB_1, "in_b"),
    )
    plan_grant(admin.id, 300, MAR_1, "in_c")
    ledger.debit_usage(user.id, 130, "job")
    fixed_clock.set(FEB_1)
    result = runner.invoke(args=["credits", "expire"])
    assert result.exit_code == 0, result.output
    assert "expired 170 credits" in result.output
    again = runner.invoke(args=["credits", "expire"])
    assert "expired 0 credits" in again.output
    expiries = db.session.execute(
        sa.select(LedgerEntry.grant_id, LedgerEntry.credits)
        .where(LedgerEntry.kind == "expiry")
        .order_by(LedgerEntry.id)
    ).all()
    assert expiries == [(second, -170)]  # the first grant was spent entirely
    assert remaining(first) == 0 and db.session.get(CreditGrant, first).expired_at == FEB_1
    assert balance_and_sum(user.id) == (5, 5)
    assert balance_and_sum(admin.id) == (300, 300)
    account = db.session.get(CreditAccount, user.id)
    assert account.expiring == 0 and account.next_expiry_at is None


def test_expiry_never_takes_a_balance_below_zero(user, fixed_clock):
    plan_grant(user.id, 100, FEB_1, "in_1")
    ledger.adjust(user.id, -80, "taken back by hand")
    fixed_clock.set(MAR_1)
    assert ledger.expire_account_grants(user.id) == 20
    assert balance_and_sum(user.id) == (0, 0)


def test_a_removal_by_hand_never_spends_plan_credits_already_past_their_expiry(user, fixed_clock):
    """Credits past their expiry are not there to take, even before the expiry command
    runs: a removal by hand first expires the due grant, then takes the bought credits."""
    ledger.adjust(user.id, 500, "bought credits")
    plan_grant(user.id, 1000, JAN_1 + timedelta(days=30), "in_due")
    fixed_clock.set(JAN_1 + timedelta(days=31))  # the grant is due, not yet expired
    assert ledger.adjust(user.id, -500, "chargeback handled by hand") == 0
    assert kinds(user.id)[-2:] == [("expiry", -1000), ("adjustment", -500)]
    ledger.expire_due_grants()
    assert checked_books(user.id) == (0, 0)


def test_a_removal_by_hand_of_more_than_outlives_expiry_is_refused_and_changes_nothing(
    user, fixed_clock
):
    ledger.adjust(user.id, 500, "bought credits")
    plan_grant(user.id, 1000, JAN_15, "in_due")
    fixed_clock.set(JAN_15)
    with pytest.raises(InsufficientCreditsError) as refused:
        ledger.adjust(user.id, -501, "too much")
    assert (refused.value.balance, refused.value.available) == (500, 500)
    assert kinds(user.id) == [("adjustment", 500), ("grant", 1000)]
    assert checked_books(user.id) == (1500, 1000)


def test_usage_on_an_account_without_expiring_grants_is_one_update_and_one_insert(user, app):
    user_id = user.id
    ledger.adjust(user_id, 1000, "bought")
    statements = []

    def record(conn, cursor, statement, *args):
        statements.append(statement.split()[0].upper())

    sa.event.listen(db.engine, "before_cursor_execute", record)
    try:
        ledger.debit_usage(user_id, 10, "job")
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", record)
    # PostgreSQL runs the posting as one statement: WITH moved AS (UPDATE ...), day_moved AS
    # (INSERT INTO credit_days ...), totals_moved AS (INSERT INTO daily_totals ...) INSERT
    # INTO ledger_entries ...; the user's low-balance settings come back with the balance
    # (the alert, if due, joins the debit). SQLite writes the user's day apart and the
    # day's totals at commit.
    if db.engine.dialect.name == "postgresql":
        expected = ["WITH"]
    else:
        expected = ["UPDATE", "INSERT", "INSERT", "INSERT"]
    assert [
        s for s in statements if s in ("SELECT", "UPDATE", "INSERT", "DELETE", "WITH")
    ] == expected
