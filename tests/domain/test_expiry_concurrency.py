"""Usage racing the expiry command on PostgreSQL, in several processes."""

import multiprocessing
import time
from datetime import timedelta

import sqlalchemy as sa

from tests.conftest import POSTGRES_URL, make_config, requires_postgres
from webapp.extensions import db
from webapp.models import CreditGrant, LedgerEntry
from webapp.models.types import utcnow


def _spend(url: str, user_id: int, attempts: int, results) -> None:
    from webapp import create_app
    from webapp.domain import ledger
    from webapp.domain.errors import InsufficientCreditsError

    app = create_app(make_config(url))
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


def _expire(url: str, rounds: int, results) -> None:
    from webapp import create_app
    from webapp.domain import ledger

    app = create_app(make_config(url))
    expired = 0
    with app.app_context():
        for _ in range(rounds):
            expired += sum(credits for _, credits in ledger.expire_due_grants())
        db.engine.dispose()
    results.put(("expired", expired))


def _snapshot(user_id: int) -> tuple[int, int]:
    """Balance and ledger sum read in one statement, hence from one snapshot."""
    row = db.session.execute(
        sa.text(
            "SELECT a.balance, (SELECT COALESCE(SUM(credits), 0) FROM ledger_entries "
            "WHERE user_id = a.user_id) FROM credit_accounts a WHERE a.user_id = :u"
        ),
        {"u": user_id},
    ).one()
    db.session.rollback()
    return int(row[0]), int(row[1])


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
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    workers = [
        context.Process(target=_spend, args=(POSTGRES_URL, user_id, 60, results)) for _ in range(2)
    ]
    workers += [context.Process(target=_expire, args=(POSTGRES_URL, 10, results)) for _ in range(2)]
    for worker in workers:
        worker.start()
    snapshots = 0
    while any(worker.is_alive() for worker in workers):
        balance, total = _snapshot(user_id)
        assert balance == total and 0 <= balance <= 400
        snapshots += 1
        time.sleep(0.02)
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    outcomes = [results.get(timeout=5) for _ in workers]
    spent = sum(n for kind, n in outcomes if kind == "spent")

    # Only the 20 bought and the 80 unexpired plan credits could be spent.
    assert spent == 100
    assert _snapshot(user_id) == (0, 0)
    expired = db.session.scalars(
        sa.select(LedgerEntry.credits).where(LedgerEntry.kind == "expiry")
    ).all()
    assert sorted(expired) == [-100, -100, -100]  # one row per due grant, all of it
    grants = db.session.scalars(sa.select(CreditGrant).order_by(CreditGrant.id)).all()
    assert [g.expired_at is not None for g in grants] == [True] * 3 + [False] * 2
    assert sum(g.remaining for g in grants) == 0
    assert snapshots > 0
