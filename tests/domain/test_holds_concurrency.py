"""Holds, captures, releases, usage and expiry racing on one account, in many processes."""

import os
import random
import time
from collections import Counter
from datetime import timedelta

import sqlalchemy as sa

from tests.concurrency import app_in_process, start_processes
from tests.conftest import requires_postgres
from tests.payments import plan_grant
from webapp.domain import clock, ledger
from webapp.extensions import db
from webapp.models import CreditAccount, Hold, LedgerEntry
from webapp.models.types import utcnow

WORKERS = 16
# Seconds each worker races; kept short on a shared machine (HOLDS_RACE_SECONDS to change).
RACE_SECONDS = float(os.environ.get("HOLDS_RACE_SECONDS", "8"))
SEED = 1313


def _open_hold(rng: random.Random, user_id: int) -> tuple[str, int] | None:
    rows = db.session.execute(
        sa.select(Hold.public_id, Hold.credits)
        .where(Hold.user_id == user_id, Hold.status == "held")
        .order_by(Hold.id.desc())
        .limit(8)
    ).all()
    db.session.rollback()
    return tuple(rng.choice(rows)) if rows else None


def _race(user_id: int, index: int, seconds: float, results) -> None:
    """One worker's seeded random schedule; reports what it saw succeed."""
    from webapp.domain.errors import HoldNotOpenError, InsufficientCreditsError

    rng = random.Random(SEED + index)
    app = app_in_process()
    seen = {"used": 0, "added": 0, "captures": {}}
    with app.app_context():
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            roll = rng.random()
            try:
                if roll < 0.30:
                    ledger.place_hold(user_id, rng.randint(1, 40), expires_in=600)
                elif roll < 0.60 and (found := _open_hold(rng, user_id)):
                    hold_id, credits = found
                    # Several workers often pick the same hold; half capture all of it,
                    # so the same capture repeats and must answer the same.
                    amount = credits if rng.random() < 0.5 else rng.randint(0, credits)
                    answer = ledger.capture_hold(user_id, hold_id, amount)
                    seen["captures"][hold_id] = answer["captured"]
                elif roll < 0.72 and (found := _open_hold(rng, user_id)):
                    ledger.release_hold(user_id, found[0])
                elif roll < 0.96:
                    credits = rng.randint(1, 25)
                    ledger.debit_usage(user_id, credits, "race")
                    seen["used"] += credits
                else:
                    ledger.adjust(user_id, 60, "top-up")
                    seen["added"] += 60
            except (InsufficientCreditsError, HoldNotOpenError):
                pass  # refusals change nothing; the final checks show it
        db.engine.dispose()
    results.put(seen)


def _snapshot(user_id: int) -> tuple[int, int, int, int]:
    """balance, held, ledger sum and credits of open holds, from one statement's snapshot."""
    row = db.session.execute(
        sa.text(
            "SELECT a.balance, a.held, "
            "(SELECT COALESCE(SUM(credits), 0) FROM ledger_entries WHERE user_id = a.user_id), "
            "(SELECT COALESCE(SUM(credits), 0) FROM holds "
            " WHERE user_id = a.user_id AND status = 'held') "
            "FROM credit_accounts a WHERE a.user_id = :u"
        ),
        {"u": user_id},
    ).one()
    db.session.rollback()
    return tuple(int(value) for value in row)


@requires_postgres
def test_sixteen_workers_racing_holds_captures_releases_and_usage(app, user):
    ledger.adjust(user.id, 300, "seed")
    user_id = user.id

    def check() -> None:
        balance, held, total, open_credits = _snapshot(user_id)
        assert balance - held >= 0, "available went below zero"
        assert balance == total and held == open_credits

    running = start_processes([(_race, (user_id, i, RACE_SECONDS)) for i in range(WORKERS)])
    snapshots = running.watch(check, every=0.05)
    finished = running.finish(answer_timeout=60, join_timeout=60)
    assert finished.exitcodes == [0] * WORKERS
    seen = finished.answers

    balance, held, total, open_credits = _snapshot(user_id)
    assert balance == total and held == open_credits and balance - held >= 0
    holds = {h.public_id: h for h in db.session.scalars(sa.select(Hold))}
    captured = {hid: h.captured for hid, h in holds.items() if h.status == "captured"}
    # Every capture a worker was told of is the hold's one capture (replays agree).
    for report in seen:
        for hold_id, amount in report["captures"].items():
            assert captured[hold_id] == amount
    assert set(captured) == {hid for report in seen for hid in report["captures"]}
    # Each capture is taken once: one usage row per hold captured with credits.
    rows = Counter(
        db.session.scalars(
            sa.select(LedgerEntry.reference).where(LedgerEntry.reference.like("hold_%"))
        )
    )
    assert rows == Counter({hid: 1 for hid, amount in captured.items() if amount})
    capture_sum = -db.session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(LedgerEntry.credits), 0)).where(
            LedgerEntry.reference.like("hold_%")
        )
    )
    assert capture_sum == sum(captured.values())
    # What left the balance is exactly the captures plus the usage debits.
    used = sum(report["used"] for report in seen)
    added = sum(report["added"] for report in seen)
    assert 300 + added - balance == capture_sum + used
    assert db.session.get(CreditAccount, user_id).used == capture_sum + used
    # The race really raced (how much depends on the machine's load): holds were placed
    # and captured while the others ran.
    assert holds and captured and snapshots > 0


def _capture_until_settled(user_id: int, hold_ids: list[str], index: int, results):
    """Capture every hold (half of each), in a shuffled order, until none is held."""
    from webapp.domain.errors import HoldNotOpenError

    rng = random.Random(SEED + index)
    app = app_in_process()
    captured, expired = {}, set()
    with app.app_context():
        pending = list(hold_ids)
        while pending:
            rng.shuffle(pending)
            for hold_id in list(pending):
                try:
                    answer = ledger.capture_hold(user_id, hold_id, 5)
                    captured[hold_id] = answer["captured"]
                    pending.remove(hold_id)
                except HoldNotOpenError as exc:
                    assert exc.error == "hold_expired"
                    expired.add(hold_id)
                    pending.remove(hold_id)
            time.sleep(0.01)
        db.engine.dispose()
    results.put((captured, expired))


def _sweep(seconds: float, results) -> None:
    app = app_in_process()
    released = 0
    with app.app_context():
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            released += sum(credits for _, credits in ledger.release_stale_holds())
        db.engine.dispose()
    results.put(released)


@requires_postgres
def test_a_hold_expiring_while_its_capture_is_in_flight_ends_captured_or_expired(app, user):
    ledger.adjust(user.id, 1000, "seed")
    start = utcnow()
    hold_ids = []
    # Expiries spread over the seconds the capture workers run through them.
    for index in range(40):
        expires_at = start + timedelta(seconds=2.5) + timedelta(milliseconds=75 * index)
        clock.fix(expires_at - timedelta(seconds=60))
        hold_ids.append(ledger.place_hold(user.id, 10, expires_in=60)["id"])
    clock.fix(None)
    user_id = user.id
    capturers = [(_capture_until_settled, (user_id, hold_ids, i)) for i in range(4)]
    sweepers = [(_sweep, (8,))] * 2
    finished = start_processes(capturers + sweepers).finish(answer_timeout=120, join_timeout=60)
    assert finished.exitcodes == [0] * 6
    answers = finished.answers
    ledger.release_stale_holds()

    statuses = dict(db.session.execute(sa.select(Hold.public_id, Hold.status)).all())
    assert set(statuses.values()) <= {"captured", "expired"}
    usage = Counter(
        db.session.scalars(sa.select(LedgerEntry.reference).where(LedgerEntry.kind == "usage"))
    )
    for hold_id, status in statuses.items():
        # Captured: exactly one usage row and no expiry; expired: no row at all.
        assert usage[hold_id] == (1 if status == "captured" else 0)
    for answer in answers:
        if isinstance(answer, tuple):
            captured, expired = answer
            assert all(statuses[hold_id] == "captured" for hold_id in captured)
            assert all(statuses[hold_id] == "expired" for hold_id in expired)
    taken = 5 * sum(1 for status in statuses.values() if status == "captured")
    balance, held, total, open_credits = _snapshot(user_id)
    assert (balance, held, total, open_credits) == (1000 - taken, 0, 1000 - taken, 0)


def _race_around_expiring_credits(user_id: int, index: int, seconds: float, results) -> None:
    """Holds outliving the plan grant or not, captures, releases and usage, seeded."""
    from webapp.domain.errors import HoldNotOpenError, InsufficientCreditsError

    rng = random.Random(SEED + 100 + index)
    app = app_in_process()
    placed = 0
    with app.app_context():
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            roll = rng.random()
            try:
                if roll < 0.7:
                    expires_in = rng.choice([600, 3600])  # ends before the grant, or after
                    ledger.place_hold(user_id, rng.randint(1, 60), expires_in=expires_in)
                    placed += 1
                elif roll < 0.78 and (found := _open_hold(rng, user_id)):
                    ledger.capture_hold(user_id, found[0], rng.randint(0, found[1]))
                elif roll < 0.85 and (found := _open_hold(rng, user_id)):
                    ledger.release_hold(user_id, found[0])
                else:
                    ledger.debit_usage(user_id, rng.randint(1, 10), "race")
            except (InsufficientCreditsError, HoldNotOpenError):
                pass
        db.engine.dispose()
    results.put(placed)


@requires_postgres
def test_holds_placed_while_plan_credits_run_out_are_still_covered_after_they_expire(app, user):
    """Racing workers place holds on an account whose plan credits expire in 30 minutes;
    once they have, every hold still open is covered by the balance and captured whole."""
    ledger.adjust(user.id, 300, "seed")
    start = utcnow()
    plan_grant(user.id, 1000, start + timedelta(minutes=30), "in_race")
    user_id = user.id
    jobs = [(_race_around_expiring_credits, (user_id, i, RACE_SECONDS / 2)) for i in range(8)]
    finished = start_processes(jobs).finish(answer_timeout=60, join_timeout=60)
    assert finished.exitcodes == [0] * 8 and sum(finished.answers) > 0

    clock.fix(start + timedelta(minutes=31))  # the grant is due, the hour-long holds open
    try:
        ledger.expire_due_grants()
        ledger.release_stale_holds()
        balance, held, total, open_credits = _snapshot(user_id)
        assert balance == total and held == open_credits and 0 <= held <= balance
        open_ids = db.session.scalars(
            sa.select(Hold.public_id).where(Hold.user_id == user_id, Hold.status == "held")
        ).all()
        for hold_id in open_ids:
            assert ledger.capture_hold(user_id, hold_id)["available"] >= 0
        assert _snapshot(user_id) == (balance - held, 0, balance - held, 0)
    finally:
        clock.fix(None)
