from flask import current_app, render_template, request

from webapp.admin import bp
from webapp.domain import admin_reports
from webapp.hardening import MAX_BIG_ID, cursor_arg
from webapp.models import EventOutcome

OUTCOMES = (
    EventOutcome.PROCESSED,
    EventOutcome.IGNORED,
    EventOutcome.UNMATCHED,
    EventOutcome.FAILED,
)


@bp.get("/events")
def event_list():
    outcome = request.args.get("outcome", "")
    outcome = outcome if outcome in OUTCOMES else ""
    before = cursor_arg(largest=MAX_BIG_ID)
    page = admin_reports.events_page(outcome, before, current_app.config["HISTORY_PAGE_SIZE"])
    return render_template(
        "admin/events.html", page=page, outcome=outcome, before=before, outcomes=OUTCOMES
    )
