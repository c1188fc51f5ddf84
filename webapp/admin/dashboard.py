from flask import render_template

from webapp.admin import bp
from webapp.domain import jobs, reports


@bp.get("/")
def dashboard():
    return render_template(
        "admin/dashboard.html",
        totals=reports.dashboard(),
        failed_jobs=jobs.counts().get("failed", 0),
    )
