"""CPU per request in one process: the app's WSGI callable against the bare handlers'.

    python -m tests.bench.cpu_per_request [--requests 1500]

No HTTP server and no load generator: each request goes straight to the WSGI callable,
`time.process_time()` around the calls gives the process's CPU, and PostgreSQL's comes
from /proc (every postgres process, so run it on a quiet machine). The throughput figures
of `make bench` compare whole servers; this shows how much of their gap is the app's own
work. Each side runs in a child process of its own with the production settings (the
rate limiter on Redis included), on a database seeded by another child.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

from tests.bench import common

KINDS = ("webhook", "usage")
BASE_DIR = Path(__file__).resolve().parents[2]
APPS = {
    "app": "wsgi",
    "webhook-bare": "tests.bench.bare_webhook",
    "usage-bare": "tests.bench.bare_usage",
}


def postgres_cpu_seconds() -> float:
    """CPU used so far by every postgres process still running."""
    ticks = 0
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)
        except OSError:
            continue
        if fields[0].endswith("(postgres"):
            values = fields[1].split()
            ticks += int(values[11]) + int(values[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


# --- children


def seed_child(kind: str, url: str, requests: int) -> None:
    """Purchases to credit (webhook), or funded accounts with keys (usage): the requests
    to send, printed as JSON."""
    from tests.bench import bench_usage, seed
    from webapp.stripe_double.events import event_payload

    if kind == "webhook":
        purchases = seed.create_schema_and_seed(
            url, max(requests // 2, 1), requests, random.Random(5)
        )
        bodies = [event_payload("checkout.session.completed", p.session()) for p in purchases]
        jobs = [("/webhooks/stripe", body, {}) for body in bodies]
    else:
        keys = bench_usage.seed_accounts(url, 1000)
        jobs = [job for _, job in bench_usage.requests_for(keys, requests)]
    json.dump(jobs, sys.stdout)


def measure_child(module: str, jobs_path: str) -> None:
    """Time the requests in `jobs_path` against `module`'s app; prints JSON."""
    import importlib

    from werkzeug.test import EnvironBuilder

    jobs = json.loads(Path(jobs_path).read_text())
    app = importlib.import_module(module).app
    # Signed now, as Stripe signs each attempt: the 300 s tolerance counts from here.
    jobs = [
        (path, body, common.signed_headers(body) if path == "/webhooks/stripe" else headers)
        for path, body, headers in jobs
    ]
    environs = [
        EnvironBuilder(
            base_url="http://127.0.0.1", path=path, method="POST", data=body, headers=headers
        ).get_environ()
        for path, body, headers in jobs
    ]
    warmup, measured = environs[:100], environs[100:]
    for environ in warmup:
        _call(app, environ)
    postgres, started = postgres_cpu_seconds(), time.process_time()
    for environ in measured:
        _call(app, environ)
    cpu, postgres = time.process_time() - started, postgres_cpu_seconds() - postgres
    json.dump(
        {"python_ms": 1000 * cpu / len(measured), "postgres_ms": 1000 * postgres / len(measured)},
        sys.stdout,
    )


def _call(app, environ) -> None:
    statuses = []
    body = app(environ, lambda status, headers, exc_info=None: statuses.append(status))
    data = b"".join(body)
    getattr(body, "close", lambda: None)()
    if not statuses[0].startswith("200"):
        raise SystemExit(f"{environ['PATH_INFO']} answered {statuses[0]}: {data[:200]!r}")


# --- the run


def run_child(*args: str, env: dict[str, str], requests: int) -> dict:
    done = subprocess.run(
        [
            sys.executable,
            *("-m", "tests.bench.cpu_per_request", "--requests", str(requests)),
            *("--child", *args),
        ],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--child", nargs="+")
    args = parser.parse_args()
    if args.child:
        if args.child[0] == "seed":
            seed_child(args.child[1], args.child[2], args.requests)
        else:
            measure_child(*args.child)
        return

    print(f"CPU per request in one process ({args.requests - 100} requests each, after 100)")
    print(f"  {'request':10} {'app: Python / PostgreSQL':>28} {'bare: Python / PostgreSQL':>28}")
    for kind in KINDS:
        name = common.bench_database_name(f"cpu_{kind}")
        jobs_path = Path(f"/tmp/{name}.json")
        url = common.recreate_database(name)
        try:
            env = common.app_environment(url)
            jobs_path.write_text(
                json.dumps(run_child("seed", kind, url, env=env, requests=args.requests))
            )
            figures = {}
            for side in ("app", f"{kind}-bare"):
                if kind == "webhook":  # the same deliveries, each side from pending purchases
                    reset = f"from tests.bench import seed; seed.reset_money({url!r})"
                    subprocess.run([sys.executable, "-c", reset], cwd=BASE_DIR, env=env, check=True)
                figures[side] = run_child(
                    APPS[side], str(jobs_path), env=env, requests=args.requests
                )
        finally:
            jobs_path.unlink(missing_ok=True)
            common.drop_database(name)
        app, floor = figures["app"], figures[f"{kind}-bare"]
        print(
            f"  {kind:10} {app['python_ms']:17.2f} / {app['postgres_ms']:5.2f} ms"
            f" {floor['python_ms']:17.2f} / {floor['postgres_ms']:5.2f} ms"
        )


if __name__ == "__main__":
    main()
