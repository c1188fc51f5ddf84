"""`make bench-webhook`: webhook throughput of the app against the bare minimum.

Both run under gunicorn with gunicorn.conf.py (same workers and threads) on the same
PostgreSQL database, receiving the same signed `checkout.session.completed` deliveries
from the same concurrent keep-alive clients. The app does everything it does in
production (event recording, row lock, ledger, JSON log line); the bare handler
(tests/bench/bare_webhook.py) verifies the signature and does one UPDATE and one INSERT.

    python -m tests.bench.bench_webhook [--events 3000] [--workers N] [--clients 32]
"""

import argparse
import os
import random
import statistics
import sys

from tests.bench import common, seed
from webapp.stripe_double.events import event_payload

# Its own database, named after BENCH_DATABASE_URL's so parallel checkouts never collide.
DB_NAME = common.bench_database_name("webhook")
TARGET_RATIO = 0.8


def run_once(label: str, app_spec: str, url: str, payloads, warmup, args) -> float:
    server = common.start_gunicorn(
        app_spec, common.app_environment(url), label, workers=args.workers
    )
    try:
        common.send_all(
            server.port, warmup, processes=args.processes, threads=args.clients // args.processes
        )
        statuses, seconds = common.send_all(
            server.port, payloads, processes=args.processes, threads=args.clients // args.processes
        )
    finally:
        server.stop()
    failed = sum(1 for status in statuses.values() if status != 200)
    if failed:
        sys.exit(f"{label}: {failed} deliveries were not answered 200; see {server.log_path}")
    return len(payloads) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=int(os.environ.get("BENCH_EVENTS", 3000)))
    parser.add_argument("--workers", type=int, default=int(os.environ.get("BENCH_WORKERS", 0)))
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()

    rng = random.Random(5)
    url = common.recreate_database(DB_NAME)
    try:
        purchases = seed.create_schema_and_seed(url, max(args.events // 2, 1), args.events, rng)
        payloads = [
            (
                p.purchase_id,
                event_payload("checkout.session.completed", p.session()),
            )
            for p in purchases
        ]
        expected = sum(p.credits for p in purchases)
        # Warm-up: events both handlers accept and ignore, so every worker has imported
        # and connected before the clock starts.
        warmup = [
            (
                i,
                event_payload("customer.created", {"id": f"cus_{i}"}),
            )
            for i in range(200)
        ]
        figures: dict[str, list[float]] = {"bare": [], "app": []}
        for _ in range(args.rounds):
            for label, spec in (("bare", "tests.bench.bare_webhook:app"), ("app", "wsgi:app")):
                seed.reset_money(url)
                figures[label].append(run_once(label, spec, url, payloads, warmup, args))
                got = seed.totals(url)
                if not (
                    got["balance"] == got["ledger"] == expected and got["entries"] == len(purchases)
                ):
                    sys.exit(f"{label}: balances {got} do not match the {expected} credits sent")
    finally:
        if not args.keep_db:
            common.drop_database(DB_NAME)

    bare, app = statistics.median(figures["bare"]), statistics.median(figures["app"])
    workers = args.workers or f"default ({2 * (os.cpu_count() or 1) + 1})"
    print(
        f"webhook bench: {args.events} checkout.session.completed deliveries, "
        f"{args.clients} keep-alive clients, gunicorn workers={workers}, "
        f"median of {args.rounds} rounds (bare and app alternate)"
    )
    print(
        f"  bare handler (verify + UPDATE + INSERT): {bare:8.1f} events/s  "
        f"(rounds: {', '.join(f'{x:.0f}' for x in figures['bare'])})"
    )
    print(
        f"  app webhook  (full fulfilment path):     {app:8.1f} events/s  "
        f"(rounds: {', '.join(f'{x:.0f}' for x in figures['app'])})"
    )
    pairs = [a / b for a, b in zip(figures["app"], figures["bare"], strict=True)]
    print(f"  ratio per round: {', '.join(f'{r:.2f}' for r in pairs)}")
    ratio = app / bare
    print(
        f"  ratio app/bare: {ratio:.2f} (target >= {TARGET_RATIO}) "
        + ("PASS" if ratio >= TARGET_RATIO else "FAIL")
    )


if __name__ == "__main__":
    main()
