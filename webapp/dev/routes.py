import email
from email import policy
from pathlib import Path

from flask import current_app, render_template

from webapp.dev import bp

SEPARATOR = b"-" * 79 + b"\n"
SHOWN = 50


def outbox() -> list[email.message.EmailMessage]:
    """Mail the file backend wrote to MAIL_FILE_PATH, newest first."""
    folder = Path(current_app.config["MAIL_FILE_PATH"])
    if current_app.config["MAIL_BACKEND"] != "file" or not folder.is_dir():
        return []
    files = sorted(folder.glob("*.log"), key=lambda path: path.stat().st_mtime, reverse=True)
    messages = []
    for path in files[:SHOWN]:
        for raw in reversed(path.read_bytes().split(SEPARATOR)):
            if raw.strip():
                messages.append(email.message_from_bytes(raw, policy=policy.default))
    return messages[:SHOWN]


@bp.get("/mail")
def mail():
    messages = [
        {
            "subject": m["Subject"],
            "to": m["To"],
            "date": m["Date"],
            "message_id": m["Message-ID"],
            "body": m.get_body(("plain",)).get_content(),
        }
        for m in outbox()
    ]
    return render_template(
        "dev/mail.html", messages=messages, backend=current_app.config["MAIL_BACKEND"]
    )
