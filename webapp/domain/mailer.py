"""Sending mail: the worker renders a plain-text template and hands it to Flask-Mailman.

A mail is a job of kind "mail" whose payload names a message (a builder registered
with @letter) and its data; its dedupe key becomes a stable Message-ID, so a mail the
SMTP server accepted just before a crash and is sent again reads as the same message.
"""

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parseaddr
from typing import Any

from flask import current_app, has_request_context, render_template, request
from flask_mailman import EmailMessage

from webapp.domain import jobs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Letter:
    to: str
    subject: str  # the product name is put in front
    template: str  # templates/mail/<template>.txt
    context: dict[str, Any] = field(default_factory=dict)


Builder = Callable[[dict[str, Any]], Letter | None]
BUILDERS: dict[str, Builder] = {}


def letter(name: str):
    """Register the builder of message `name`: payload -> Letter, or None to send nothing."""

    def register(func: Builder) -> Builder:
        BUILDERS[name] = func
        return func

    return register


def queue(message: str, cause: str, *, user_id: int | None, **data: Any) -> bool:
    """Record mail `message` once for `cause`; joins the caller's transaction.

    False when this message for this cause was recorded before (a redelivered webhook).
    """
    return jobs.record_job(mail_job(message, cause, user_id=user_id, **data))


def mail_job(message: str, cause: str, *, user_id: int | None, **data: Any) -> jobs.NewJob:
    """The job that sends mail `message` once for `cause`."""
    payload = {"message": message, "base_url": base_url(), "user_id": user_id, **data}
    return jobs.NewJob("mail", f"mail:{message}:{cause}", payload, user_id)


def base_url() -> str:
    """Origin for links in mail: PUBLIC_BASE_URL, else the request's host (development)."""
    configured = current_app.config["PUBLIC_BASE_URL"]
    if configured:
        return configured
    if has_request_context():
        return request.host_url.rstrip("/")
    return "http://127.0.0.1:5000"


def message_id(dedupe_key: str) -> str:
    domain = parseaddr(current_app.config["MAIL_DEFAULT_SENDER"])[1].rpartition("@")[2]
    return f"<{hashlib.sha256(dedupe_key.encode()).hexdigest()[:40]}@{domain or 'localhost'}>"


@jobs.handler("mail")
def send(job: jobs.Claimed) -> None:
    """Build and send one mail job; an SMTP error raises, so the job is retried."""
    name = job.payload.get("message")
    build = BUILDERS.get(name)
    if build is None:
        raise jobs.PermanentJobError(f"unknown message {name!r}")
    built = build(job.payload)
    if built is None:
        log.info("mail %s (job %s): nothing to send", name, job.id)
        return
    product = current_app.config["PRODUCT_NAME"]
    body = render_template(
        f"mail/{built.template}.txt",
        product=product,
        base_url=job.payload.get("base_url") or base_url(),
        **built.context,
    )
    EmailMessage(
        subject=f"{product}: {built.subject}",
        body=body,
        to=[built.to],
        headers={"Message-ID": message_id(job.dedupe_key)},
    ).send()
    log.info("mail %s sent (job %s, user %s): %s", name, job.id, job.user_id, built.subject)
