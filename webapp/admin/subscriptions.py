"""Admin: subscriptions with plan, status and period, and the credits each one granted."""

import sqlalchemy as sa
from flask import current_app, render_template

from webapp.admin import bp
from webapp.domain import admin_reports, subscriptions
from webapp.extensions import db
from webapp.hardening import cursor_arg
from webapp.models import CreditGrant


@bp.get("/subscriptions")
def subscription_list():
    before = cursor_arg()
    page = admin_reports.subscriptions_page(before, current_app.config["HISTORY_PAGE_SIZE"])
    ids = [record.id for record in page.items]
    grants = (
        db.session.scalars(
            sa.select(CreditGrant)
            .where(CreditGrant.subscription_id.in_(ids))
            .order_by(CreditGrant.id.desc())
        ).all()
        if ids
        else []
    )
    return render_template(
        "admin/subscriptions.html",
        page=page,
        before=before,
        grants=grants,
        status_words=subscriptions.status_words,
        held=admin_reports.invoices_held_for_review(),
    )
