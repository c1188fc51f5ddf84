"""Usage racing the expiry command on PostgreSQL, in several processes."""

from datetime import timedelta

import sqlalchemy as sa

from tests.concurrency import app_in_process, balance_and_ledger_sum, start_processes
from tests.conftest import requires_postgres
from webapp.extensions import db
from webapp.models import CreditGrant, LedgerEntry
from webapp.models.types import utcnow


def _spend(user_id: int, attempts: int, results) -> None:
    from webapp.domain import ledger
    from webapp.domain.errors import InsufficientCreditsError

    app = app_in_process()
    spent = 0
    with app.app_context():
        for _ in range(attempts):
            try:
                ledger.debit_usage(user_id, 1, "race")
                spent += 1
            except InsufficientCreditsError:
                pass
        db.engine.dispose()
    results.put(("spent", spent))


def _expire(rounds: int, results) -> None:
    from webapp.domain import ledger

    app = app_in_process()
    expired = 0
    with app.app_context():
        for _ in range(rounds):
            expired += sum(credits for _, credits in ledger.expire_due_grants())
        db.engine.dispose()
    results.put(("expired", expired))


@requires_postgres
def test_usage_racing_the_expiry_command_never_spends_expired_credits(app, user):
    from webapp.domain import ledger

    now = utcnow()
    ledger.adjust(user.id, 20, "bought")  # spendable: 20 bought + 80 unexpired < 120 tries
    for index in range(3):
        ledger.grant_plan_credits(
            user.id,
            100,
            invoice_id=f"in_due_{index}",
            plan_code="basic",
            subscription_id=None,
            expires_at=now - timedelta(hours=1),
        )
    for index in range(2):
        ledger.grant_plan_credits(
            user.id,
            40,
            invoice_id=f"in_later_{index}",
            plan_code="basic",
            subscription_id=None,
            expires_at=now + timedelta(days=1),
        )
    user_id = user.id

    def check() -> None:
        balance, total = balance_and_ledger_sum(user_id)
        assert balance == total and 0 <= balance <= 400

    running = start_processes([(_spend, (user_id, 60))] * 2 + [(_expire, (10,))] * 2)
    snapshots = running.watch(check, every=0.02)
    finished = running.finish(answer_timeout=5, join_timeout=60)
    assert finished.exitcodes == [0] * 4
    outcomes = finished.answers
    spent = sum(n for kind, n in outcomes if kind == "spent")

    # Only the 20 bought and the 80 unexpired plan credits could be spent.
    assert spent == 100
    assert balance_and_ledger_sum(user_id) == (0, 0)
    expired = db.session.scalars(
        sa.select(LedgerEntry.credits).where(LedgerEntry.kind == "expiry")
    ).all()
    assert sorted(expired) == [-100, -100, -100]  # one row per due grant, all of it
    grants = db.session.scalars(sa.select(CreditGrant).order_by(CreditGrant.id)).all()
    assert [g.expired_at is not None for g in grants] == [True] * 3 + [False] * 2
    assert sum(g.remaining for g in grants) == 0
    assert snapshots > 0
