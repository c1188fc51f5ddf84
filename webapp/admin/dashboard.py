from flask import render_template

from webapp.admin import bp
from webapp.domain import admin_reports, jobs


@bp.get("/")
def dashboard():
    return render_template(
        "admin/dashboard.html",
        totals=admin_reports.dashboard(),
        failed_jobs=jobs.counts().get("failed", 0),
    )
