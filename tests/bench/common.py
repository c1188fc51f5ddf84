"""Shared pieces of the benchmarks and the load test: databases, gunicorn, a load generator.

Everything stays on 127.0.0.1: a PostgreSQL database of its own per script, gunicorn
started with the project's gunicorn.conf.py, and clients that keep their connections alive.
"""

import http.client
import multiprocessing
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import psycopg

from webapp.stripe_double.events import signature_header

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "bench"
ADMIN_URL = os.environ.get(
    "BENCH_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
WEBHOOK_SECRET = "whsec_bench_only_secret"


# --- databases


def bench_database_name(suffix: str) -> str:
    """`<BENCH_DATABASE_URL's database>_<suffix>` (credits_bench_<suffix> without it)."""
    url = os.environ.get("BENCH_DATABASE_URL", "postgresql://localhost/credits_bench")
    return f"{url.rsplit('/', 1)[1].split('?')[0]}_{suffix}"


def database_url(name: str) -> str:
    base = ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/{name}"


def recreate_database(name: str) -> str:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return database_url(name)


def drop_database(name: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def psycopg_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def terminate_connections(name: str) -> int:
    """pg_terminate_backend on every connection to database `name`; returns how many."""
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchall()
    return sum(1 for (done,) in rows if done)


def app_environment(url: str, **extra: str) -> dict[str, str]:
    """The environment of a production app on `url` (never the sandbox, never Stripe)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("STRIPE_", "APP_", "DATABASE_", "REDIS_"))
    }
    env.update(
        {
            "APP_ENV": "production",
            "DATABASE_URL": url,
            "SECRET_KEY": "bench-secret",
            "STRIPE_SECRET_KEY": "sk_test_bench_never_used",
            "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            # Production refuses to start without these; the bench runs no worker, so no
            # mail leaves, and the rate limits sit far above what a bench sends.
            "PUBLIC_BASE_URL": "http://127.0.0.1",
            "REDIS_URL": "redis://127.0.0.1:6379/14",
            "MAIL_SERVER": "127.0.0.1",
            "MAIL_DEFAULT_SENDER": "Bench <bench@example.test>",
            "USAGE_RATE_LIMIT": "1000000 per minute",
            "CHECKOUT_RATE_LIMIT": "1000000 per minute",
            "PYTHONUNBUFFERED": "1",
            **extra,
        }
    )
    return env


# --- gunicorn


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    process: subprocess.Popen
    port: int
    log_path: Path

    def worker_pids(self) -> list[int]:
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in path.read_text().split()] if path.exists() else []

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_gunicorn(
    app_spec: str, env: dict[str, str], label: str, *, workers: int | None = None
) -> Server:
    """gunicorn -c gunicorn.conf.py APP on a free local port; waits until /healthz answers."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {**env, "GUNICORN_BIND": f"127.0.0.1:{port}", "FORWARDED_ALLOW_IPS": "127.0.0.1"}
    if workers:
        env["WEB_CONCURRENCY"] = str(workers)
    log_path = ARTIFACTS / f"{label}.log"
    log = log_path.open("w")
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    process = subprocess.Popen(
        [gunicorn, "-c", str(ROOT / "gunicorn.conf.py"), app_spec],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = Server(process, port, log_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn ({label}) exited; see {log_path}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return server
        except OSError:
            pass
        time.sleep(0.2)
    server.stop()
    raise SystemExit(f"gunicorn ({label}) did not answer /healthz; see {log_path}")


# --- load generator


def signed_headers(payload: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "Stripe-Signature": signature_header(payload, WEBHOOK_SECRET),
    }


def _client_thread(
    port: int, jobs: queue.Queue, results: list, timeout: float, progress=None
) -> None:
    conn = None
    while True:
        try:
            index, payload = jobs.get_nowait()
        except queue.Empty:
            break
        status = 0
        if isinstance(payload, tuple):  # (path, body, headers): any other POST
            path, body, headers = payload
        else:  # a webhook delivery, signed as it is sent
            path, body, headers = "/webhooks/stripe", payload, signed_headers(payload)
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
            conn.request("POST", path, body=body.encode(), headers=headers)
            response = conn.getresponse()
            response.read()
            status = response.status
            if response.will_close:
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException):
            if conn is not None:
                conn.close()
            conn = None
        results.append((index, status))
        if progress is not None:
            with progress.get_lock():
                progress.value += 1
    if conn is not None:
        conn.close()


def _client_process(
    port: int, batch: list[tuple[int, str]], threads: int, timeout: float, out, progress=None
) -> None:
    jobs: queue.Queue = queue.Queue()
    for job in batch:
        jobs.put(job)
    results: list[tuple[int, int]] = []
    workers = [
        threading.Thread(target=_client_thread, args=(port, jobs, results, timeout, progress))
        for _ in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    out.put(results)


def send_all(
    port: int,
    payloads: Iterable[tuple[int, str]],
    *,
    processes: int = 4,
    threads: int = 8,
    timeout: float = 30.0,
    progress=None,
) -> tuple[dict[int, int], float]:
    """POST every (index, payload) signed to /webhooks/stripe from processes × threads
    keep-alive clients; returns ({index: status (0 = connection error)}, seconds).
    A payload that is a (path, body, headers) tuple is POSTed as it is instead.

    Each delivery is signed when it is sent, as Stripe signs every attempt; `progress`
    (a multiprocessing Value) counts answered deliveries as they come.
    """
    jobs = list(payloads)
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    batches = [jobs[i::processes] for i in range(processes)]
    started = time.perf_counter()
    children = [
        context.Process(target=_client_process, args=(port, batch, threads, timeout, out, progress))
        for batch in batches
        if batch
    ]
    for child in children:
        child.start()
    statuses: dict[int, int] = {}
    for _ in children:
        statuses.update(out.get())
    elapsed = time.perf_counter() - started
    for child in children:
        child.join()
    return statuses, elapsed
