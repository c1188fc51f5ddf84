"""`make bench`: holds placed and captured per second, beside plain usage debits.

Worker processes call the ledger directly (ledger.place_hold + ledger.capture_hold, or
ledger.debit_usage) on a PostgreSQL database of their own: once all on one hot account
(every change queues on its row), once spread over 1,000 accounts. After each run the
books must balance: balance == ledger sum and nothing left on hold.

    python -m tests.bench.bench_holds [--ops 400] [--processes 4] [--accounts 1000]
"""

import argparse
import multiprocessing
import os
import random
import sys
import time

import sqlalchemy as sa

from tests.bench import common, seed

DB_NAME = "credits_bench_holds"
SEED_CREDITS = 10**9


def _seed(url: str, accounts: int) -> None:
    from webapp.extensions import db
    from webapp.models import CreditAccount, LedgerEntry, User
    from webapp.models.types import utcnow

    app = seed.bench_app(url)
    with app.app_context():
        db.create_all()
        now = utcnow()
        ids = range(1, accounts + 1)
        db.session.execute(
            sa.insert(User),
            [
                {
                    "id": i,
                    "email": f"bench-{i}@example.com",
                    "password_hash": "!",
                    "created_at": now,
                }
                for i in ids
            ],
        )
        db.session.execute(
            sa.insert(CreditAccount),
            [{"user_id": i, "balance": SEED_CREDITS, "updated_at": now} for i in ids],
        )
        db.session.execute(
            sa.insert(LedgerEntry),
            [
                {
                    "user_id": i,
                    "kind": "adjustment",
                    "credits": SEED_CREDITS,
                    "balance_after": SEED_CREDITS,
                    "description": "bench seed",
                    "created_at": now,
                }
                for i in ids
            ],
        )
        db.session.execute(
            sa.text(
                "SELECT setval(pg_get_serial_sequence('users', 'id'), (SELECT max(id) FROM users))"
            )
        )
        db.session.commit()
        db.engine.dispose()


def _worker(url: str, kind: str, accounts: int, ops: int, index: int, start, out) -> None:
    import logging

    from webapp.domain import ledger
    from webapp.extensions import db

    logging.getLogger("webapp.request").setLevel(logging.WARNING)
    rng = random.Random(index)
    app = seed.bench_app(url)
    with app.app_context():
        ledger.current_balance(1)  # connect before the clock starts
        db.session.rollback()
        start.wait()
        began = time.perf_counter()
        for _ in range(ops):
            user_id = rng.randint(1, accounts)
            if kind == "usage":
                ledger.debit_usage(user_id, 3, "bench")
            else:
                placed = ledger.place_hold(user_id, 5, expires_in=600)
                ledger.capture_hold(user_id, placed["id"], 3)
        out.put(time.perf_counter() - began)
        db.engine.dispose()


def run(url: str, kind: str, accounts: int, args, used_before: int) -> float:
    """Operations per second (a usage debit, or a hold placed and captured, is one)."""
    context = multiprocessing.get_context("fork")
    start = context.Barrier(args.processes)
    out = context.Queue()
    workers = [
        context.Process(target=_worker, args=(url, kind, accounts, args.ops, i, start, out))
        for i in range(args.processes)
    ]
    for worker in workers:
        worker.start()
    seconds = max(out.get(timeout=600) for _ in workers)
    for worker in workers:
        worker.join()
        if worker.exitcode != 0:
            sys.exit(f"{kind} on {accounts} accounts: a worker failed")
    _check_books(url, kind, used_before + args.ops * args.processes * 3)
    return args.ops * args.processes / seconds


def _check_books(url: str, kind: str, expected_used: int) -> None:
    from webapp.extensions import db

    app = seed.bench_app(url)
    with app.app_context():
        balance, ledger_sum, held, used = db.session.execute(
            sa.text(
                "SELECT sum(balance), (SELECT sum(credits) FROM ledger_entries), sum(held), "
                "sum(used) FROM credit_accounts"
            )
        ).one()
        db.engine.dispose()
    if balance != ledger_sum or held != 0:
        sys.exit(f"{kind}: balance {balance} != ledger {ledger_sum} or held {held} != 0")
    if used != expected_used:
        sys.exit(f"{kind}: used {used}, expected {expected_used} (3 credits per operation)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--ops",
        type=int,
        default=int(os.environ.get("BENCH_HOLD_OPS", 400)),
        help="operations per worker process and run",
    )
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()

    url = common.recreate_database(DB_NAME)
    figures = {}
    try:
        _seed(url, args.accounts)
        used = 0
        for accounts in (1, args.accounts):
            for kind in ("usage", "hold+capture"):
                figures[(kind, accounts)] = run(url, kind, accounts, args, used)
                used += args.ops * args.processes * 3
    finally:
        if not args.keep_db:
            common.drop_database(DB_NAME)

    print(
        f"holds bench: {args.processes} processes x {args.ops} operations each, "
        "ledger calls on PostgreSQL (no HTTP)"
    )
    for accounts in (1, args.accounts):
        where = "one hot account" if accounts == 1 else f"{accounts:,} accounts"
        usage, holds = figures[("usage", accounts)], figures[("hold+capture", accounts)]
        print(
            f"  {where:<16} usage debits {usage:8.1f}/s   holds placed+captured "
            f"{holds:8.1f}/s   ratio {holds / usage:.2f}"
        )


if __name__ == "__main__":
    main()
