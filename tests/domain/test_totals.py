"""The totals the ledger keeps (daily_totals) always equal what every row adds up to."""

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from tests.concurrency import app_in_process, run_processes
from tests.conftest import requires_postgres
from tests.payments import Payment
from tests.stripe_fakes import deliver
from webapp.domain import admin_reports, checkout, ledger
from webapp.domain.errors import InsufficientCreditsError
from webapp.domain.transaction import atomic
from webapp.extensions import db
from webapp.models import CreditAccount, CreditDay, DailyTotal, Purchase, PurchaseStatus

REVENUE = ("paid", "refunded", "partially_refunded", "disputed")


def recomputed() -> dict:
    """The dashboard's figures worked out from every row, as /admin/ used to."""
    account = CreditAccount.__table__.c
    sold, granted, used, outstanding = db.session.execute(
        sa.select(
            *(
                sa.func.coalesce(sa.func.sum(c), 0)
                for c in (account.purchased, account.granted, account.used, account.balance)
            )
        )
    ).one()
    by_status = {status: 0 for status in PurchaseStatus}
    revenue: dict[str, list[int]] = {}
    for status, currency, count, charged, refunded in db.session.execute(
        sa.select(
            Purchase.status,
            Purchase.currency,
            sa.func.count(),
            sa.func.sum(Purchase.amount_cents),
            sa.func.sum(Purchase.amount_refunded_cents),
        ).group_by(Purchase.status, Purchase.currency)
    ):
        by_status[status] += count
        if status in REVENUE:
            money = revenue.setdefault(currency, [0, 0])
            money[0] += int(charged)
            money[1] += int(refunded)
    return {
        "sold": int(sold),
        "granted": int(granted),
        "used": int(used),
        "outstanding": int(outstanding),
        "by_status": by_status,
        "revenue": [(c, *revenue[c]) for c in sorted(revenue)],
    }


def kept() -> dict:
    db.session.expire_all()
    totals = admin_reports.dashboard()
    return {
        "sold": totals.credits_sold,
        "granted": totals.credits_granted,
        "used": totals.credits_used,
        "outstanding": totals.outstanding,
        "by_status": totals.by_status,
        "revenue": [(r.currency, r.charged, r.refunded) for r in totals.revenue],
    }


def credit_days() -> dict[int, tuple[int, int]]:
    """Each user's (bought, spent) summed over their days in credit_days."""
    rows = db.session.execute(
        sa.select(
            CreditDay.user_id, sa.func.sum(CreditDay.bought), sa.func.sum(CreditDay.spent)
        ).group_by(CreditDay.user_id)
    )
    return {user_id: (int(bought), int(spent)) for user_id, bought, spent in rows}


def delivered(client, event) -> int:
    return deliver(client, event).status_code


def test_every_kind_of_change_keeps_the_totals_exact(client, user, admin, stripe_double):
    paid = Payment(stripe_double, user, 1000)
    assert delivered(client, paid.completed()) == 200
    assert delivered(client, paid.completed()) == 200  # a replay counts nothing more

    refunded = Payment(stripe_double, user, 2000)
    assert delivered(client, refunded.completed()) == 200
    assert delivered(client, refunded.refunded(500)) == 200
    assert delivered(client, refunded.refunded(2000)) == 200

    won, lost = Payment(stripe_double, user, 1500), Payment(stripe_double, user, 700)
    for payment, outcome in ((won, "won"), (lost, "lost")):
        assert delivered(client, payment.completed()) == 200
        assert (
            delivered(client, payment.dispute("charge.dispute.created", dispute_id=f"dp_{outcome}"))
            == 200
        )
    assert (
        delivered(client, won.dispute("charge.dispute.closed", status="won", dispute_id="dp_won"))
        == 200
    )
    assert (
        delivered(
            client, lost.dispute("charge.dispute.closed", status="lost", dispute_id="dp_lost")
        )
        == 200
    )

    delayed = Payment(stripe_double, user, 900, paid=False)
    assert delivered(client, delayed.completed("unpaid")) == 200  # processing
    assert delivered(client, delayed.async_failed()) == 200
    late = Payment(stripe_double, user, 800)
    assert delivered(client, late.expired()) == 200
    assert delivered(client, late.completed()) == 200  # paid after it expired: credited
    wrong = Payment(stripe_double, user, 600)
    assert delivered(client, wrong.completed(amount_total=1)) == 200  # needs review
    early = Payment(stripe_double, user, 400)
    assert delivered(client, early.refunded(400)) == 500  # before completion: rolled back

    abandoned = checkout.start_checkout(user, 300, "https://credits.example.test")
    ledger.abandon_checkout(abandoned.id)
    checkout.start_checkout(user, 200, "https://credits.example.test")  # stays pending
    ledger.grant_plan_credits(
        user.id,
        100,
        invoice_id="in_0",
        plan_code="basic",
        subscription_id=None,
        expires_at=datetime.now(UTC) + timedelta(days=30),
    )
    ledger.debit_usage(user.id, 250, "work")  # expiring credits: the grant-aware path
    with pytest.raises(InsufficientCreditsError):
        ledger.debit_usage(user.id, 10**9, "too much")
    ledger.adjust(user.id, -40, "goodwill reversed", actor_id=admin.id)
    ledger.grant_plan_credits(
        admin.id, 5000, invoice_id="in_1", plan_code="pro", subscription_id=None, expires_at=None
    )
    with atomic():  # a currency change through the ORM moves the revenue between currencies
        db.session.get(Purchase, paid.purchase_id).currency = "eur"

    expected = recomputed()
    assert expected["by_status"]["needs_review"] == 1 and expected["by_status"]["failed"] == 2
    assert expected["revenue"] == [("eur", 1000, 0), ("usd", 5000, 2000)]
    assert kept() == expected
    days_kept = credit_days()
    assert days_kept[user.id] == (1000 + 2000 + 1500 + 700 + 800 + 100, 250) and days_kept[
        admin.id
    ] == (
        5000,
        0,
    )
    with atomic():
        ledger.totals_upkeep.rebuild()
    assert kept() == expected
    assert credit_days() == days_kept


def test_changes_that_roll_back_leave_the_totals_alone(user, stripe_double):
    Payment(stripe_double, user, 1000)
    before = kept()
    with pytest.raises(RuntimeError), atomic():
        ledger.adjust(user.id, 500, "about to fail")
        db.session.get(Purchase, 1).status = PurchaseStatus.EXPIRED
        raise RuntimeError("the caller fails after the ledger wrote")
    assert kept() == before == recomputed()


def test_totals_are_per_utc_day_in_the_writing_connections_shard(user):
    for _ in range(12):
        ledger.adjust(user.id, 10, "top-up")
    rows = db.session.scalars(sa.select(DailyTotal)).all()
    assert {row.day for row in rows} == {datetime.now(UTC).date()}
    assert sum(row.amount for row in rows) == 120
    if db.engine.dialect.name == "postgresql":  # the connection's own shard: its server pid
        pid = db.session.connection().connection.dbapi_connection.info.backend_pid
        assert {row.shard for row in rows} == {pid}
    else:
        assert all(0 <= row.shard < ledger.totals.SHARDS for row in rows)


def test_rebuild_puts_each_row_on_its_own_day(user):
    ledger.adjust(user.id, 70, "old")
    with atomic():
        db.session.execute(sa.update(DailyTotal).values(amount=0))  # damaged totals
        entry_day = datetime.now(UTC) - timedelta(days=3)
        db.session.execute(
            sa.text("UPDATE ledger_entries SET created_at = :at"),
            {
                "at": entry_day
                if db.engine.dialect.name == "postgresql"
                else entry_day.replace(tzinfo=None)
            },
        )
        ledger.totals_upkeep.rebuild()
    row = db.session.scalars(sa.select(DailyTotal)).one()
    assert (row.day, row.metric, row.amount) == (entry_day.date(), "credits.adjustment", 70)


def test_compacting_folds_past_days_into_one_shard_and_keeps_every_sum(app, runner):
    today = datetime.now(UTC).date()
    yesterday = today - timedelta(days=1)
    with atomic():  # a busy day's rows spread over shards, and today's
        for day, shard, amount in (
            (yesterday, 1, 20),
            (yesterday, 2, 30),
            (yesterday, 7, -5),
            (today, 5, 7),
        ):
            db.session.add(
                DailyTotal(day=day, metric="credits.usage", currency="", shard=shard, amount=amount)
            )
    result = runner.invoke(args=["credits", "compact-totals"])
    assert result.exit_code == 0 and "folded 3 rows" in result.output
    assert ledger.totals.all_time() == {("credits.usage", ""): 52}
    rows = db.session.scalars(sa.select(DailyTotal).order_by(DailyTotal.day)).all()
    assert [(row.day, row.shard, row.amount) for row in rows] == [(yesterday, 0, 45), (today, 5, 7)]


def _post_many(user_ids: list[int], rounds: int, results) -> None:
    from webapp.domain import ledger as ledger_in_process

    app = app_in_process()
    with app.app_context():
        for index in range(rounds):
            user_id = user_ids[index % len(user_ids)]
            ledger_in_process.debit_usage(user_id, 1, "race")
            if index % 10 == 0:
                ledger_in_process.adjust(user_id, 3, "race top-up")
        db.engine.dispose()
    results.put(rounds)


@requires_postgres
def test_concurrent_writers_keep_the_totals_exact(app, user, admin):
    for account in (user, admin):
        ledger.adjust(account.id, 1000, "funds")
    user_ids = [user.id, admin.id]
    run = run_processes(_post_many, [(user_ids, 60)] * 3, answer_timeout=120, join_timeout=120)
    assert run.exitcodes == [0] * 3
    assert sum(run.answers) == 180
    expected = recomputed()
    assert expected["used"] == 180 and expected["outstanding"] == 2000 - 180 + 3 * 18
    assert kept() == expected
    days_kept = credit_days()
    assert sum(spent for _, spent in days_kept.values()) == 180
    with atomic():
        ledger.totals_upkeep.rebuild()
    assert kept() == expected and credit_days() == days_kept
