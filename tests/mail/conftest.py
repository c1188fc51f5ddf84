"""A real SMTP server (aiosmtpd on 127.0.0.1) the app sends to, and helpers to read what arrived."""

import email
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from email import policy

import pytest
from aiosmtpd.controller import Controller
from flask import g

from webapp.domain import jobs, users


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Inbox:
    """The SMTP server's handler: keeps accepted messages; can refuse on demand."""

    def __init__(self, port: int):
        self.port = port
        self.messages: list[email.message.EmailMessage] = []
        self.refuse_next = 0  # answer DATA with 451 (temporary) this many times
        self.refuse_all = False  # answer DATA with 554 (the server is broken)
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            if self.refuse_all:
                return "554 5.3.0 Mail system broken for the test"
            if self.refuse_next:
                self.refuse_next -= 1
                return "451 4.3.0 Try again later"
            self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"

    def to(self, address: str) -> list[email.message.EmailMessage]:
        return [m for m in self.messages if m["To"] == address]

    def subjects(self) -> list[str]:
        return [m["Subject"] for m in self.messages]


@contextmanager
def serving(inbox: Inbox) -> Iterator[Inbox]:
    """An SMTP server on 127.0.0.1 at the inbox's port, handing what arrives to `inbox`."""
    controller = Controller(inbox, hostname="127.0.0.1", port=inbox.port)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()


def smtp_settings(inbox: Inbox) -> dict:
    """The app's settings for sending mail to the test SMTP server of `inbox`."""
    return {
        "MAIL_BACKEND": "smtp",
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_PORT": inbox.port,
        "MAIL_USE_TLS": False,
    }


@pytest.fixture
def smtp_server():
    with serving(Inbox(free_port())) as inbox:
        yield inbox


@pytest.fixture
def config_overrides(smtp_server):
    return {**smtp_settings(smtp_server), "MAIL_TIMEOUT": 5}


@pytest.fixture(autouse=True)
def user_loaded_per_request(app):
    """The tests keep one app context open, so Flask-Login's cached user (on `g`) would
    outlive a request; in production each request has its own. Load it per request here
    too, so a test with two clients sees each session's own user."""

    @app.before_request
    def forget_cached_user() -> None:
        g.pop("_login_user", None)


def run_jobs() -> int:
    """What a worker would do now: every due job, each claimed and settled as it would be."""
    return jobs.run_due()


def body(message) -> str:
    return message.get_body(("plain",)).get_content()


def link_in(message, path: str) -> str:
    """The path of the first link in the mail starting with `path` (e.g. /auth/reset/)."""
    match = re.search(r"https?://[^/\s]+(" + re.escape(path) + r"\S+)", body(message))
    assert match, body(message)
    return match.group(1)


@pytest.fixture
def user(app):
    """A user whose address is verified already (signup's own mail is tested on its own)."""
    return users.create_user("buyer@example.com", "correct-horse", verified=True)


@pytest.fixture
def admin(app):
    return users.create_user("boss@example.com", "correct-horse", is_admin=True, verified=True)
