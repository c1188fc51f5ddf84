"""Usage-API throughput of the app against the bare minimum, over HTTP.

`POST /api/v1/usage` (Bearer key, 1 credit each) from keep-alive clients, once spread
over 1,000 accounts and once all on one hot account. Both the app (gunicorn wsgi:app,
production settings) and the bare handler (tests/bench/bare_usage.py: key hash lookup,
conditional UPDATE, INSERT) run under gunicorn.conf.py on the same database; rounds
alternate bare and app and the medians are compared. Afterwards every account's balance
must equal the sum of its ledger rows.

    python -m tests.bench.bench_usage [--requests 2000] [--rounds 3] [--accounts 1000]
"""

import argparse
import json
import os
import secrets
import statistics
import sys

import sqlalchemy as sa

from tests.bench import common, seed

DB_NAME = common.bench_database_name("usage")
TARGET_RATIO = 0.7
START_BALANCE = 10**9


def seed_accounts(url: str, accounts: int) -> list[str]:
    """`accounts` users with a funded account (one ledger row each) and an API key; the keys."""
    from webapp.domain import api_keys, ledger
    from webapp.extensions import db
    from webapp.models import ApiKey, CreditAccount, LedgerEntry, User
    from webapp.models.types import utcnow

    app = seed.bench_app(url)
    keys = [api_keys.KEY_PREFIX + secrets.token_urlsafe(32) for _ in range(accounts)]
    with app.app_context():
        db.create_all()
        now = utcnow()
        ids = range(1, accounts + 1)
        db.session.execute(
            sa.insert(User),
            [
                {"id": i, "email": f"usage-{i}@bench.test", "password_hash": "!", "created_at": now}
                for i in ids
            ],
        )
        db.session.execute(
            sa.insert(CreditAccount),
            [
                {
                    "user_id": i,
                    "balance": START_BALANCE,
                    "purchased": 0,
                    "granted": 0,
                    "used": 0,
                    "expiring": 0,
                    "updated_at": now,
                }
                for i in ids
            ],
        )
        db.session.execute(
            sa.insert(LedgerEntry),
            [
                {
                    "user_id": i,
                    "kind": "adjustment",
                    "credits": START_BALANCE,
                    "balance_after": START_BALANCE,
                    "description": "bench funds",
                    "created_at": now,
                }
                for i in ids
            ],
        )
        db.session.execute(
            sa.insert(ApiKey),
            [
                {
                    "user_id": i,
                    "label": "bench",
                    "prefix": key[:12],
                    "key_hash": api_keys.hash_key(key),
                    "created_at": now,
                }
                for i, key in zip(ids, keys, strict=True)
            ],
        )
        db.session.execute(
            sa.text(
                "SELECT setval(pg_get_serial_sequence('users', 'id'), (SELECT max(id) FROM users))"
            )
        )
        ledger.totals_upkeep.rebuild()
        db.session.commit()
        db.engine.dispose()
    return keys


def requests_for(keys: list[str], count: int) -> list[tuple[int, tuple[str, str, dict]]]:
    body = json.dumps({"credits": 1, "description": "bench"})
    return [
        (
            i,
            (
                "/api/v1/usage",
                body,
                {
                    "Content-Type": "application/json",
                    "Authorization": f"Bearer {keys[i % len(keys)]}",
                },
            ),
        )
        for i in range(count)
    ]


def check_ledger(url: str) -> None:
    app = seed.bench_app(url)
    with app.app_context():
        from webapp.extensions import db

        wrong = db.session.execute(
            sa.text(
                "SELECT count(*) FROM credit_accounts a WHERE a.balance <> "
                "(SELECT coalesce(sum(credits), 0) FROM ledger_entries e WHERE e.user_id = a.user_id)"
            )
        ).scalar()
        db.engine.dispose()
    if wrong:
        sys.exit(f"{wrong} accounts have a balance that is not the sum of their ledger rows")


def rate(server: common.Server, jobs, args) -> float:
    statuses, seconds = common.send_all(
        server.port, jobs, processes=args.processes, threads=args.clients // args.processes
    )
    failed = sum(1 for status in statuses.values() if status != 200)
    if failed:
        sys.exit(f"{failed} usage requests were not answered 200; see {server.log_path}")
    return len(jobs) / seconds


def verdict(ratio: float) -> str:
    return f"(target >= {TARGET_RATIO}) " + ("PASS" if ratio >= TARGET_RATIO else "FAIL")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--requests", type=int, default=int(os.environ.get("BENCH_USAGE_REQUESTS", 2000))
    )
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=int(os.environ.get("BENCH_WORKERS", 0)))
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    url = common.recreate_database(DB_NAME)
    servers: dict[str, common.Server] = {}
    try:
        keys = seed_accounts(url, args.accounts)
        scenarios = {
            "spread": requests_for(keys, args.requests),
            "hot": requests_for(keys[:1], args.requests),
        }
        env = common.app_environment(url)
        for label, spec in (("bare", "tests.bench.bare_usage:app"), ("app", "wsgi:app")):
            servers[label] = common.start_gunicorn(
                spec, env, f"usage-{label}", workers=args.workers
            )
            rate(servers[label], requests_for(keys, 200), args)  # import, connect, warm up
        figures = {(scenario, label): [] for scenario in scenarios for label in servers}
        for _ in range(args.rounds):
            for scenario, jobs in scenarios.items():
                for label, server in servers.items():
                    figures[(scenario, label)].append(rate(server, jobs, args))
        check_ledger(url)
    finally:
        for server in servers.values():
            server.stop()
        common.drop_database(DB_NAME)

    workers = args.workers or f"default ({2 * (os.cpu_count() or 1) + 1})"
    print(
        f"usage bench: POST /api/v1/usage x {args.requests} per round, {args.clients} "
        f"keep-alive clients, gunicorn workers={workers}, median of {args.rounds} rounds "
        "(bare and app alternate)"
    )
    for scenario, words in (
        ("spread", f"spread over {args.accounts:,} accounts"),
        ("hot", "one hot account"),
    ):
        bare = statistics.median(figures[(scenario, "bare")])
        app = statistics.median(figures[(scenario, "app")])
        rounds = ", ".join(
            f"{a:.0f}/{b:.0f}"
            for a, b in zip(figures[(scenario, "app")], figures[(scenario, "bare")], strict=True)
        )
        print(
            f"  {words:34} app {app:7.1f} debits/s, bare {bare:7.1f} debits/s "
            f"(app/bare rounds: {rounds})"
        )
        print(f"  {'':34} ratio app/bare {app / bare:.2f} {verdict(app / bare)}")


if __name__ == "__main__":
    main()
