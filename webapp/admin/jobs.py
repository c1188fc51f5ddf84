"""Admin: background jobs (mail, later charges): what waits, what failed and why, retry."""

import sqlalchemy as sa
from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from webapp.admin import bp
from webapp.domain import jobs, paging
from webapp.domain.errors import JobRunningError, NotFoundError
from webapp.models import Job, JobStatus

STATUSES = (JobStatus.PENDING, JobStatus.FAILED, JobStatus.DONE)


@bp.get("/jobs")
def job_list():
    status = request.args.get("status", "")
    status = status if status in STATUSES else ""
    before = request.args.get("before", type=int)
    query = sa.select(Job).where(Job.status == status) if status else sa.select(Job)
    page = paging.keyset_page(query, Job, before, current_app.config["HISTORY_PAGE_SIZE"])
    return render_template(
        "admin/jobs.html",
        page=page,
        status=status,
        before=before,
        statuses=STATUSES,
        counts=jobs.counts(),
    )


@bp.post("/jobs/<int:job_id>/retry")
def job_retry(job_id: int):
    back = url_for("admin.job_list", status=request.args.get("status") or None)
    try:
        job = jobs.retry(current_user.id, job_id)
    except NotFoundError:
        abort(404)
    except JobRunningError as exc:
        flash(f"Job {job_id} was not queued again: {exc}", "error")
        return redirect(back, code=303)
    flash(f"Job {job.id} ({job.kind}) is queued again.", "success")
    return redirect(back, code=303)
