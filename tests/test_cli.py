"""Operator commands: create-admin, demo users, grant."""

import pytest
import sqlalchemy as sa

from tests.payments import balance_of, ledger_sum
from webapp.domain import users
from webapp.extensions import db
from webapp.models import LedgerEntry, User


def test_create_admin_makes_a_new_admin_with_a_password(runner):
    result = runner.invoke(
        args=["users", "create-admin", "Ops@Example.com", "--password", "long-enough"]
    )
    assert result.exit_code == 0 and "Created admin ops@example.com" in result.output
    admin = db.session.scalar(sa.select(User))
    assert admin.is_admin and admin.check_password("long-enough")


def test_create_admin_promotes_an_existing_user(runner, user):
    result = runner.invoke(args=["users", "create-admin", user.email])
    assert result.exit_code == 0 and "Updated admin" in result.output
    db.session.expire_all()
    assert db.session.get(User, user.id).is_admin


def test_create_admin_without_password_for_an_unknown_email_fails(runner):
    result = runner.invoke(args=["users", "create-admin", "ghost@example.com"])
    assert result.exit_code != 0 and "--password" in result.output
    assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 0


def test_demo_users_are_created_once_and_printed(runner):
    for _ in range(2):
        result = runner.invoke(args=["users", "demo"])
        assert result.exit_code == 0
    assert "Demo login: demo@example.com / demo-password" in result.output
    assert "Demo admin login: admin@example.com / admin-password" in result.output
    assert users.find_by_email("admin@example.com").is_admin
    assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 2


def test_grant_adds_credits_with_the_reason_on_the_ledger(runner, user):
    result = runner.invoke(
        args=["credits", "grant", user.email, "300", "--reason", "apology for the outage"]
    )
    assert result.exit_code == 0 and "balance now 300" in result.output
    entry = db.session.scalar(sa.select(LedgerEntry))
    assert (entry.kind, entry.credits, entry.description) == (
        "adjustment",
        300,
        "apology for the outage",
    )
    assert balance_of(user.id) == 300 == ledger_sum(user.id)


@pytest.mark.parametrize(
    "args, message",
    [
        (["ghost@example.com", "10", "--reason", "x"], "No user"),
        (["buyer@example.com", "-10", "--reason", "x"], "insufficient"),
        (["buyer@example.com", "0", "--reason", "x"], "non-zero"),
        (["buyer@example.com", "10"], "--reason"),
    ],
)
def test_grant_refuses_bad_input_and_changes_nothing(runner, user, args, message):
    result = runner.invoke(args=["credits", "grant", *args])
    assert result.exit_code != 0 and message in result.output
    assert balance_of(user.id) == 0 == ledger_sum(user.id)


@pytest.mark.parametrize("config_overrides", [{"STRIPE_API_BASE": "http://stripe-mock:12111"}])
def test_stripe_api_base_redirects_the_client(logged_in, stripe_double):
    logged_in.post("/credits/checkout", data={"credits": "1000"})
    assert stripe_double.requests
    assert all(r["url"].startswith("http://stripe-mock:12111/v1/") for r in stripe_double.requests)
