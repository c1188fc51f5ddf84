"""`make loadtest`: Stripe-like deliveries under load and faults leave every balance exact.

gunicorn (several workers, gunicorn.conf.py) serves the app on a PostgreSQL database of
its own. Seeded users and purchases get at least 10,000 signed deliveries from many
concurrent clients: every `checkout.session.completed` 2-3 times, shuffled; for delayed
payments an unpaid completion and `async_payment_succeeded` (1-2 times); and
`charge.refunded` events for one purchase in ten (`--no-refunds` leaves them out). A refund
that overtakes its purchase's completion is answered 500 and retried, as Stripe would. In the middle one gunicorn worker is SIGKILLed and every
database connection of the app is terminated. Failed deliveries (non-2xx or no answer) are
retried as Stripe would until all are accepted. Then every balance is checked against the
expected value and against its ledger.

    python -m tests.bench.loadtest [--purchases 4200] [--users 400] [--no-refunds]
"""

import argparse
import multiprocessing
import os
import random
import secrets
import signal
import sys
import threading
import time
from collections import defaultdict

import psycopg

from tests import stripe_fakes
from tests.bench import common, seed
from tests.bench.seed import SeededPurchase
from webapp.stripe_double.events import event_payload

DB_NAME = "credits_loadtest"
MIN_DELIVERIES = 10_000


def charge_refunded(purchase: SeededPurchase, amount_refunded: int) -> dict:
    metadata = {
        "purpose": "credits_topup",
        "purchase_id": str(purchase.purchase_id),
        "user_id": str(purchase.user_id),
        "credits": str(purchase.credits),
    }
    return stripe_fakes.fixture(
        "charge",
        id=f"ch_{secrets.token_hex(12)}",
        amount=purchase.credits,
        amount_captured=purchase.credits,
        amount_refunded=amount_refunded,
        refunded=amount_refunded == purchase.credits,
        currency="usd",
        paid=True,
        payment_intent=purchase.payment_intent,
        metadata=metadata,
    )


def build_deliveries(purchases: list[SeededPurchase], rng: random.Random, refunds: bool):
    """[(payload)] shuffled, and {user_id: expected balance}."""
    payloads: list[str] = []
    expected: dict[int, int] = defaultdict(int)

    def add(event_type: str, obj: dict, times: int) -> None:
        payload = event_payload(event_type, obj)
        payloads.extend([payload] * times)

    for purchase in purchases:
        expected[purchase.user_id] += purchase.credits
        if rng.random() < 0.15:  # a delayed method: completes unpaid, then succeeds
            add("checkout.session.completed", purchase.session(paid=False), rng.randint(2, 3))
            add("checkout.session.async_payment_succeeded", purchase.session(), rng.randint(1, 2))
        else:
            add("checkout.session.completed", purchase.session(), rng.randint(2, 3))
        if refunds and rng.random() < 0.1:
            refunded = rng.choice([purchase.credits // 4, purchase.credits // 2, purchase.credits])
            amount_total = purchase.credits  # seeded at 1 cent a credit
            expected[purchase.user_id] -= purchase.credits * refunded // amount_total
            add("charge.refunded", charge_refunded(purchase, refunded), rng.randint(1, 2))
    rng.shuffle(payloads)
    return payloads, expected


def chaos(server: common.Server, progress, total: int, log: list[str]) -> None:
    """At 30% SIGKILL one worker; at 60% terminate the app's database connections."""

    def wait_for(fraction: float) -> bool:
        deadline = time.monotonic() + 600
        while progress.value < total * fraction:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    if wait_for(0.3):
        workers = server.worker_pids()
        if workers:
            os.kill(workers[0], signal.SIGKILL)
            log.append(f"SIGKILLed gunicorn worker {workers[0]} after {progress.value} answers")
    if wait_for(0.6):
        killed = common.terminate_connections(DB_NAME)
        log.append(
            f"pg_terminate_backend on {killed} app connections after {progress.value} answers"
        )


def deliver_until_accepted(server, payloads, args, progress):
    """Send everything, then retry what failed, like Stripe; returns figures."""
    chaos_log: list[str] = []
    jobs = list(enumerate(payloads))
    monkey = threading.Thread(target=chaos, args=(server, progress, len(jobs), chaos_log))
    monkey.start()
    statuses, seconds = common.send_all(
        server.port,
        jobs,
        processes=args.processes,
        threads=args.clients // args.processes,
        timeout=30,
        progress=progress,
    )
    monkey.join()
    first = {
        "5xx": sum(1 for s in statuses.values() if s >= 500),
        "no answer": sum(1 for s in statuses.values() if s == 0),
        "4xx": sum(1 for s in statuses.values() if 400 <= s < 500),
    }
    failed = [i for i, status in statuses.items() if not 200 <= status < 300]
    retries, attempt = 0, 0
    deadline = time.monotonic() + args.max_seconds
    while failed and time.monotonic() < deadline:
        attempt += 1
        time.sleep(min(2**attempt * 0.25, 5))
        retries += len(failed)
        statuses, _ = common.send_all(
            server.port, [(i, payloads[i]) for i in failed], processes=1, threads=4, timeout=30
        )
        failed = [i for i, status in statuses.items() if not 200 <= status < 300]
    return {
        "seconds": seconds,
        "first": first,
        "retries": retries,
        "unaccepted": len(failed),
        "chaos": chaos_log,
    }


def verify(url: str, purchases: list[SeededPurchase], expected: dict[int, int]) -> dict:
    with psycopg.connect(common.psycopg_url(url)) as conn:
        balances = dict(conn.execute("SELECT user_id, balance FROM credit_accounts"))
        ledger = dict(
            conn.execute("SELECT user_id, sum(credits) FROM ledger_entries GROUP BY user_id")
        )
        credits_per_purchase = dict(
            conn.execute(
                "SELECT purchase_id, count(*) FROM ledger_entries WHERE kind = 'purchase' "
                "GROUP BY purchase_id"
            )
        )
        unpaid = conn.execute(
            "SELECT count(*) FROM purchases WHERE credited_at IS NULL"
        ).fetchone()[0]
    lost = sum(1 for p in purchases if p.purchase_id not in credits_per_purchase)
    doubled = sum(1 for count in credits_per_purchase.values() if count > 1)
    wrong = [uid for uid, want in expected.items() if balances.get(uid, 0) != want]
    off_ledger = [uid for uid, balance in balances.items() if balance != ledger.get(uid, 0)]
    return {
        "lost": lost,
        "doubled": doubled,
        "wrong_balances": len(wrong),
        "balance_not_ledger_sum": len(off_ledger),
        "uncredited_purchases": unpaid,
        "balance_over": sum(1 for uid in wrong if balances.get(uid, 0) > expected[uid]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--purchases", type=int, default=4200)
    parser.add_argument("--users", type=int, default=400)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--clients", type=int, default=48)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=300,
        help="how long retries may go on before the run fails",
    )
    parser.add_argument(
        "--no-refunds",
        dest="refunds",
        action="store_false",
        help="leave out the charge.refunded events",
    )
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()

    rng = random.Random(20261123)
    url = common.recreate_database(DB_NAME)
    server = None
    try:
        purchases = seed.create_schema_and_seed(url, args.users, args.purchases, rng)
        payloads, expected = build_deliveries(purchases, rng, args.refunds)
        if len(payloads) < MIN_DELIVERIES:
            sys.exit(f"only {len(payloads)} deliveries; raise --purchases")
        server = common.start_gunicorn(
            "wsgi:app", common.app_environment(url), "loadtest", workers=args.workers
        )
        progress = multiprocessing.get_context("fork").Value("i", 0)
        figures = deliver_until_accepted(server, payloads, args, progress)
        server.stop()
        server = None
        checks = verify(url, purchases, expected)
    finally:
        if server is not None:
            server.stop()
        if not args.keep_db:
            common.drop_database(DB_NAME)

    first = figures["first"]
    print(
        f"load test: {len(payloads)} signed deliveries of {len(purchases)} purchases for "
        f"{args.users} users; gunicorn workers={args.workers}, {args.clients} clients"
        + ("; refunds mixed in" if args.refunds else "; refund events off")
    )
    for line in figures["chaos"]:
        print(f"  fault: {line}")
    print(f"  events/s (first pass, faults included): {len(payloads) / figures['seconds']:.1f}")
    print(
        f"  5xx before retries: {first['5xx']}   no answer: {first['no answer']}   "
        f"4xx: {first['4xx']}   retried deliveries: {figures['retries']}   "
        f"never accepted: {figures['unaccepted']}"
    )
    print(
        f"  lost = {checks['lost']}, doubled = {checks['doubled']}, "
        f"wrong balances = {checks['wrong_balances']}, "
        f"balance != ledger sum = {checks['balance_not_ledger_sum']}"
    )
    ok = (
        figures["unaccepted"] == 0
        and first["4xx"] == 0
        and checks["lost"] == 0
        and checks["doubled"] == 0
        and checks["wrong_balances"] == 0
        and checks["balance_not_ledger_sum"] == 0
        and len(figures["chaos"]) == 2
    )
    print("  OK" if ok else "  FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
