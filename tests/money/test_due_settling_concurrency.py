"""PostgreSQL, several processes at once: take-backs that settle what is due first racing
usage, expiry, holds and fulfilment; holds placed at once on the fast and the slow path."""

import time
from datetime import timedelta

import sqlalchemy as sa

from tests.concurrency import app_in_process, run_processes
from tests.conftest import requires_postgres
from tests.payments import Payment, checked_books, ledger_sum, plan_grant
from tests.stripe_fakes import deliver
from webapp.domain import api_keys, ledger
from webapp.domain.errors import InsufficientCreditsError
from webapp.domain.ledger import holds
from webapp.domain.ledger.hold_expiry import release_stale_holds
from webapp.extensions import db
from webapp.models import CreditAccount, Hold, HoldStatus
from webapp.models.types import utcnow


def _open_holds(user_id, now):
    return db.session.execute(
        sa.select(Hold.expires_at, Hold.credits).where(
            Hold.user_id == user_id, Hold.status == HoldStatus.HELD, Hold.expires_at > now
        )
    ).all()


def _race_worker(kind, payload, secret, user_id, barrier, results):
    app = app_in_process()
    client = app.test_client()
    headers = {"Authorization": f"Bearer {secret}"}
    barrier.wait(timeout=60)
    out = []
    with app.app_context():
        for _ in range(3):
            try:
                if kind == "deliver":
                    for evt in payload:
                        out.append(deliver(client, evt).status_code)
                elif kind == "usage":
                    out.append(
                        client.post(
                            "/api/v1/usage", json={"credits": 50}, headers=headers
                        ).status_code
                    )
                elif kind == "hold":
                    r = client.post(
                        "/api/v1/holds", json={"credits": 50, "expires_in": 7200}, headers=headers
                    )
                    out.append(r.status_code)
                elif kind == "expire":
                    ledger.expire_due_grants()
                    release_stale_holds()
                    out.append(200)
            except Exception as exc:  # a deadlock or anything else
                db.session.rollback()
                out.append(repr(exc)[:200])
            time.sleep(0.01)
    results.put((kind, out))


@requires_postgres
def test_refunds_settling_due_grants_race_usage_expiry_holds_and_fulfilment(
    app, client, user, stripe_double, database_url
):
    bought = Payment(stripe_double, user, 1000)
    assert deliver(client, bought.completed()).status_code == 200
    later = Payment(stripe_double, user, 300)
    plan_grant(user.id, 400, utcnow() + timedelta(seconds=2), "in_due1")
    plan_grant(user.id, 200, utcnow() + timedelta(seconds=2), "in_due2")
    plan_grant(user.id, 300, utcnow() + timedelta(hours=1), "in_live")
    secret = api_keys.mint(user.id, "race").secret
    holds.place_hold(user.id, 100, expires_in=60)
    time.sleep(2.5)  # the first two grants are due, nobody expired them
    jobs = [
        ("deliver", [bought.refunded(bought.amount // 2), bought.refunded(bought.amount)]),
        ("deliver", [bought.refunded(bought.amount)]),
        ("deliver", [later.completed()]),
        ("usage", None),
        ("hold", None),
        ("expire", None),
    ]
    run = run_processes(
        _race_worker, [(kind, payload, secret, user.id) for kind, payload in jobs], together=True
    )
    assert run.exitcodes == [0] * len(jobs)
    for kind, out in run.answers:
        assert all(status in (200, 201, 402) for status in out), (kind, out)
    db.session.expire_all()
    checked_books(user.id)
    account = db.session.get(CreditAccount, user.id)
    assert account.balance == ledger_sum(user.id)
    refunded = -sum(
        c
        for (c,) in db.session.execute(
            sa.text("SELECT credits FROM ledger_entries WHERE user_id=:u AND kind='refund'"),
            {"u": user.id},
        )
    )
    assert refunded == 1000


def _place_worker(user_id, credits, expires_in, barrier, results):
    app = app_in_process()
    with app.app_context():
        barrier.wait(timeout=60)
        try:
            holds.place_hold(user_id, credits, expires_in=expires_in)
            results.put("placed")
        except InsufficientCreditsError:
            db.session.rollback()
            results.put("refused")
        except Exception as exc:
            db.session.rollback()
            results.put(repr(exc)[:200])


@requires_postgres
def test_holds_placed_at_once_on_both_paths_never_both_pass_one_room(app, user, database_url):
    ledger.adjust(user.id, 100, "lasting")
    plan_grant(user.id, 100, utcnow() + timedelta(hours=1), "in_soon")
    jobs = [(user.id, 100, 7200), (user.id, 100, 7200), (user.id, 150, 60), (user.id, 150, 60)]
    run = run_processes(_place_worker, jobs, together=True)
    assert run.exitcodes == [0] * len(jobs)
    assert set(run.answers) <= {"placed", "refused"}, run.answers
    db.session.expire_all()
    account = db.session.get(CreditAccount, user.id)
    now = utcnow()
    open_ = _open_holds(user.id, now)
    assert account.held == sum(c for _, c in open_) <= account.balance
    expiry = utcnow() + timedelta(hours=1)
    assert sum(c for ends, c in open_ if ends > expiry - timedelta(seconds=5)) <= 100
