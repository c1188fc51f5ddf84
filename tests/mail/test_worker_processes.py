"""Real worker processes on PostgreSQL and Redis: a worker killed mid-run loses and doubles nothing."""

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import POSTGRES_URL, requires_postgres
from tests.mail.conftest import Inbox, free_port, serving, smtp_settings
from webapp import worker
from webapp.config import TestConfig
from webapp.domain import jobs, mailer
from webapp.domain.transaction import atomic
from webapp.extensions import db
from webapp.models import Job, JobStatus

BASE_DIR = Path(__file__).resolve().parents[2]
REDIS_URL = "redis://127.0.0.1:6379/15"
QUEUE_NAME = f"credits-test-issue12-{uuid.uuid4().hex[:8]}"
MAILS = 200


class SlowInbox(Inbox):
    """Takes a little time per message, as real servers do, so a kill lands mid-run."""

    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(0.02)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def smtp_server():
    with serving(SlowInbox(free_port())) as inbox:
        yield inbox


@pytest.fixture
def config_overrides(smtp_server):
    return {
        **smtp_settings(smtp_server),
        "QUEUE_BACKEND": "redis",
        "REDIS_URL": REDIS_URL,
        "QUEUE_NAME": QUEUE_NAME,
        "JOB_SWEEP_AFTER_SECONDS": 0,
    }


def start_worker(smtp_port: int, log_path: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "APP_ENV": "development",
        "DATABASE_URL": POSTGRES_URL,
        "REDIS_URL": REDIS_URL,
        "QUEUE_NAME": QUEUE_NAME,
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_PORT": str(smtp_port),
        "MAIL_USE_TLS": "false",
        "JOB_LEASE_SECONDS": "3",
        "STRIPE_SECRET_KEY": "",
        # Outside production only a loopback address is accepted (config.refuse_live_settings).
        "PUBLIC_BASE_URL": "http://127.0.0.1:5000",
        "MAIL_DEFAULT_SENDER": TestConfig.MAIL_DEFAULT_SENDER,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "worker", "--threads", "1"],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log_path.open("wb"),
    )


def wait_for(condition, timeout: float, every: float = 0.2, then=None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if then:
            then()
        time.sleep(every)
    return condition()


def statuses() -> Counter:
    db.session.rollback()
    return Counter(db.session.scalars(sa.select(Job.status).where(Job.kind == "mail")))


@requires_postgres
def test_two_workers_one_killed_half_way_every_mail_arrives_and_none_twice_but_one(
    app, user, smtp_server, tmp_path
):
    assert app.config["SQLALCHEMY_DATABASE_URI"] == POSTGRES_URL
    with atomic():
        for n in range(MAILS):
            mailer.queue("password_changed", f"bulk:{n}", user_id=user.id)
    db.session.close()
    workers = [start_worker(smtp_server.port, tmp_path / f"worker{n}.log") for n in range(2)]
    try:
        assert wait_for(lambda: len(smtp_server.messages) >= MAILS // 2, timeout=120)
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait(timeout=30)
        # The sweep (periodic in the worker, every minute) rings again for what is left:
        # run here at once so the test does not wait for the clock.
        with app.app_context():
            done = wait_for(
                lambda: statuses() == Counter({JobStatus.DONE: MAILS}),
                timeout=180,
                every=1.0,
                then=jobs.sweep,
            )
        assert done, (statuses(), (tmp_path / "worker1.log").read_text()[-3000:])
        workers[1].send_signal(signal.SIGTERM)  # graceful: finishes and exits
        assert workers[1].wait(timeout=60) == 0
    finally:
        for process in workers:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)
        worker.huey.storage.flush_all()

    ids = Counter(m["Message-ID"] for m in smtp_server.messages)
    expected = {mailer.message_id(f"mail:password_changed:bulk:{n}") for n in range(MAILS)}
    assert set(ids) == expected
    assert sum(count - 1 for count in ids.values()) <= 1  # at most the one in flight
