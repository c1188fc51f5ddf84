"""The migration chain builds the whole schema on an empty database, with no drift."""

import uuid
from datetime import UTC, datetime

import psycopg
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade

from tests.conftest import POSTGRES_URL, make_config
from webapp import create_app
from webapp.domain import ledger
from webapp.extensions import db
from webapp.models import Purchase, User


@pytest.fixture
def empty_database_url(database_url, tmp_path):
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'migrated.db'}"
        return
    url = sa.make_url(POSTGRES_URL)
    name = f"migrations_{uuid.uuid4().hex[:10]}"
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield url.set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_upgrade_builds_the_schema_the_models_describe(empty_database_url):
    app = create_app(make_config(empty_database_url))
    with app.app_context():
        upgrade()
        with db.engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "render_as_batch": True}
            )
            assert compare_metadata(context, db.metadata) == []
        downgrade(revision="base")
        assert sa.inspect(db.engine).get_table_names() == ["alembic_version"]
        db.engine.dispose()


def test_under_review_money_already_waiting_is_counted_on_upgrade(empty_database_url):
    """0009 fills the new `under_review` figure for purchases waiting in needs_review,
    as a rebuild of the totals would."""
    app = create_app(make_config(empty_database_url))
    with app.app_context():
        upgrade(revision="0008_auto_recharge")
        day = datetime(2026, 11, 1, 10, tzinfo=UTC)
        # Core inserts: rows written before this revision, behind the ledger's back.
        db.session.execute(sa.insert(User).values(id=1, email="a@example.com", password_hash="!"))
        db.session.execute(
            sa.insert(Purchase),
            [
                {
                    "user_id": 1,
                    "credits": 500,
                    "value_cents": 500,
                    "amount_cents": 500,
                    "currency": "usd",
                    "status": status,
                    "review_amount_cents": reported,
                    "review_currency": currency,
                    "created_at": day,
                    "updated_at": day,
                }
                for status, reported, currency in (
                    ("needs_review", 999, "usd"),
                    ("needs_review", 1500, "eur"),
                    ("needs_review", 1, "eur"),
                    ("paid", 700, "usd"),  # reviewed and credited: no longer under review
                )
            ],
        )
        db.session.commit()
        upgrade()
        migrated = {k: v for k, v in ledger.totals.all_time().items() if k[0] == "under_review"}
        assert migrated == {("under_review", "usd"): 999, ("under_review", "eur"): 1501}
        ledger.totals_upkeep.rebuild()
        rebuilt = {k: v for k, v in ledger.totals.all_time().items() if k[0] == "under_review"}
        assert rebuilt == migrated
        db.session.rollback()
        db.engine.dispose()


def test_auto_recharge_keys_move_into_the_one_idempotency_key_column(empty_database_url):
    """0010: an auto-recharge attempt keeps the key its PaymentIntent was sent with."""
    app = create_app(make_config(empty_database_url))
    with app.app_context():
        upgrade(revision="0009_under_review_totals")
        db.session.execute(sa.insert(User).values(id=1, email="a@example.com", password_hash="!"))
        db.session.execute(
            sa.text(
                "INSERT INTO purchases (id, user_id, credits, value_cents, fee_cents,"
                " amount_cents, currency, status, source, stripe_idempotency_key,"
                " idempotency_key, created_at, updated_at) VALUES"
                " (1, 1, 500, 500, 0, 500, 'usd', 'pending', 'checkout', 'checkout-a', NULL,"
                " :now, :now),"
                " (2, 1, 500, 500, 0, 500, 'usd', 'pending', 'auto_recharge', NULL,"
                " 'autorecharge-b', :now, :now)"
            ),
            {"now": datetime(2026, 11, 1, 10, tzinfo=UTC)},
        )
        db.session.commit()
        upgrade()
        keys = db.session.execute(
            sa.select(Purchase.id, Purchase.stripe_idempotency_key).order_by(Purchase.id)
        ).all()
        assert [tuple(row) for row in keys] == [(1, "checkout-a"), (2, "autorecharge-b")]
        db.session.rollback()
        db.engine.dispose()


def test_charge_jobs_that_failed_for_good_with_their_attempt_pending_run_again(
    empty_database_url,
):
    """0011: a charge job failed for good while its attempt is still pending goes back in
    line (its attempt would block auto-recharge forever); one whose attempt was settled,
    and other kinds of job, stay as they were."""
    app = create_app(make_config(empty_database_url))
    now = datetime(2026, 11, 1, 10, tzinfo=UTC)
    with app.app_context():
        upgrade(revision="0010_one_idempotency_key")
        db.session.execute(sa.insert(User).values(id=1, email="a@example.com", password_hash="!"))
        db.session.execute(
            sa.text(
                "INSERT INTO purchases (id, user_id, credits, value_cents, fee_cents,"
                " amount_cents, currency, status, source, stripe_idempotency_key,"
                " created_at, updated_at) VALUES"
                " (1, 1, 500, 500, 0, 500, 'usd', 'pending', 'auto_recharge', 'autorecharge-a',"
                " :now, :now),"
                " (2, 1, 500, 500, 0, 500, 'usd', 'failed', 'auto_recharge', 'autorecharge-b',"
                " :now, :now)"
            ),
            {"now": now},
        )
        db.session.execute(
            sa.text(
                "INSERT INTO jobs (id, kind, dedupe_key, payload, user_id, status, attempts,"
                " next_attempt_at, created_at, updated_at) VALUES"
                " (1, 'auto_recharge_charge', 'auto_recharge_charge:autorecharge-a',"
                " '{\"purchase_id\": 1}', 1, 'failed', 8, :now, :now, :now),"
                " (2, 'auto_recharge_charge', 'auto_recharge_charge:autorecharge-b',"
                " '{\"purchase_id\": 2}', 1, 'failed', 8, :now, :now, :now),"
                " (3, 'mail', 'mail:receipt:purchase:9', '{}', 1, 'failed', 8, :now, :now, :now)"
            ),
            {"now": now},
        )
        db.session.commit()
        upgrade()
        statuses = db.session.execute(sa.text("SELECT id, status FROM jobs ORDER BY id")).all()
        assert [tuple(row) for row in statuses] == [(1, "pending"), (2, "failed"), (3, "failed")]
        db.session.rollback()
        db.engine.dispose()
