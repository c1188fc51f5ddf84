"""Seeding a benchmark database: users, empty accounts and pending purchases with session ids.

Rows are bulk-inserted (no password hashing, no Stripe calls) so tens of thousands take
seconds; they look exactly like purchases whose Checkout Session was opened.
"""

import random
import secrets
from dataclasses import dataclass

import sqlalchemy as sa

from tests import stripe_fakes
from tests.conftest import make_config
from webapp import create_app
from webapp.extensions import db
from webapp.models import CreditAccount, Purchase, User
from webapp.models.types import utcnow

PACKS = (500, 1000, 2500, 10000)


@dataclass(frozen=True)
class SeededPurchase:
    purchase_id: int
    user_id: int
    credits: int
    session_id: str
    payment_intent: str

    def session(self, *, paid: bool = True) -> dict:
        """The Checkout Session as Stripe reports it on completion."""
        session = stripe_fakes.checkout_session(
            self.purchase_id,
            self.user_id,
            amount=self.credits,
            session_id=self.session_id,
            payment_status="paid" if paid else "unpaid",
            payment_intent=self.payment_intent,
        )
        session["metadata"]["credits"] = str(self.credits)
        return session


def bench_app(url: str):
    return create_app(make_config(url))


def create_schema_and_seed(
    url: str, users: int, purchases: int, rng: random.Random
) -> list[SeededPurchase]:
    app = bench_app(url)
    with app.app_context():
        db.create_all()
        now = utcnow()
        db.session.execute(
            sa.insert(User),
            [
                {
                    "id": i,
                    "email": f"bench-{i}@example.com",
                    "password_hash": "!",
                    "created_at": now,
                }
                for i in range(1, users + 1)
            ],
        )
        db.session.execute(
            sa.insert(CreditAccount),
            [{"user_id": i, "balance": 0, "updated_at": now} for i in range(1, users + 1)],
        )
        seeded = [
            SeededPurchase(
                i,
                rng.randint(1, users),
                rng.choice(PACKS),
                f"cs_test_{secrets.token_hex(16)}",
                f"pi_{secrets.token_hex(12)}",
            )
            for i in range(1, purchases + 1)
        ]
        db.session.execute(
            sa.insert(Purchase),
            [
                {
                    "id": p.purchase_id,
                    "user_id": p.user_id,
                    "credits": p.credits,
                    "value_cents": p.credits,
                    "fee_cents": 0,
                    "amount_cents": p.credits,
                    "currency": "usd",
                    "status": "pending",
                    "stripe_checkout_session_id": p.session_id,
                    "created_at": now,
                    "updated_at": now,
                }
                for p in seeded
            ],
        )
        for table in ("users", "purchases"):
            db.session.execute(
                sa.text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT max(id) FROM {table}))"
                )
            )
        db.session.commit()
        db.engine.dispose()
    return seeded


def reset_money(url: str) -> None:
    """Back to the freshly seeded state: no ledger, no events, empty balances, all pending."""
    app = bench_app(url)
    with app.app_context():
        db.session.execute(sa.text("TRUNCATE ledger_entries, stripe_events"))
        db.session.execute(
            sa.text("UPDATE credit_accounts SET balance = 0, purchased = 0, granted = 0, used = 0")
        )
        db.session.execute(
            sa.text(
                "UPDATE purchases SET status = 'pending', credited_at = NULL, "
                "stripe_payment_intent_id = NULL"
            )
        )
        db.session.commit()
        # Every round starts from the same physical state: without this, the dead rows of
        # the UPDATE above (and of the previous round) slow whichever run comes next.
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql(
                "VACUUM ANALYZE purchases, credit_accounts, ledger_entries, stripe_events"
            )
        db.engine.dispose()


def totals(url: str) -> dict[str, int]:
    app = bench_app(url)
    with app.app_context():
        row = db.session.execute(
            sa.text(
                "SELECT (SELECT coalesce(sum(balance), 0) FROM credit_accounts), "
                "(SELECT coalesce(sum(credits), 0) FROM ledger_entries), "
                "(SELECT count(*) FROM ledger_entries)"
            )
        ).one()
        db.engine.dispose()
    return {"balance": row[0], "ledger": row[1], "entries": row[2]}
