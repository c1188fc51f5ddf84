import re
from datetime import timedelta

import sqlalchemy as sa

from webapp.credits import chart
from webapp.domain import ledger, reports
from webapp.domain.transaction import atomic
from webapp.extensions import db
from webapp.models import LedgerEntry
from webapp.models.types import utcnow


def backdate_last_entry(days: int) -> None:
    with atomic():
        entry = db.session.scalar(sa.select(LedgerEntry).order_by(LedgerEntry.id.desc()))
        entry.created_at = utcnow() - timedelta(days=days)


def test_credits_by_day_sums_bought_and_spent_per_day(app, user):
    with atomic():
        ledger.post_entry(user.id, 1000, "purchase", description="bought")
    backdate_last_entry(3)
    with atomic():
        ledger.post_entry(user.id, 200, "grant", description="plan")
    ledger.debit_usage(user.id, 30, "a")
    ledger.debit_usage(user.id, 20, "b")
    ledger.adjust(user.id, 5, "not bought, not spent")
    with atomic():
        ledger.post_entry(user.id, 400, "purchase", description="too old")
    backdate_last_entry(31)
    with atomic():  # the days above were moved behind the ledger's back
        ledger.totals_upkeep.rebuild()
    days = reports.credits_by_day(user.id)
    assert len(days) == 30 and days[-1].day == utcnow().date()
    by_day = {d.day: (d.bought, d.spent) for d in days}
    assert by_day[utcnow().date()] == (200, 50)
    assert by_day[(utcnow() - timedelta(days=3)).date()] == (1000, 0)
    assert sum(d.bought for d in days) == 1200 and sum(d.spent for d in days) == 50


def test_credits_page_draws_the_chart_as_svg_without_inline_styles(logged_in, user):
    ledger.adjust(user.id, 500, "seed")
    with atomic():
        ledger.post_entry(user.id, 300, "purchase", description="bought")
    ledger.debit_usage(user.id, 120, "work")
    page = logged_in.get("/credits").get_data(as_text=True)
    svg = page.split('<svg class="chart"')[1].split("</svg>")[0]
    assert 'class="chart-bought"' in svg and 'class="chart-spent"' in svg
    assert "300 bought" in svg and "120 spent" in svg
    assert "style=" not in page and "<script>" not in page
    heights = [
        float(h)
        for h in re.findall(
            r'class="chart-\w+" x="[\d.]+" y="[\d.]+" '
            r'width="[\d.]+" height="([\d.]+)"',
            svg,
        )
    ]
    assert max(heights) == chart.HEIGHT - chart.TOP - chart.BOTTOM


def test_chart_with_no_activity_says_so(logged_in):
    page = logged_in.get("/credits").get_data(as_text=True)
    assert "No credits bought or spent in the last 30 days." in page
    assert "<rect" not in page


def test_meter_warns_below_the_low_balance_threshold(app, logged_in, user):
    app.config["LOW_BALANCE_THRESHOLD"] = 100
    ledger.adjust(user.id, 99, "seed")
    page = logged_in.get("/credits").get_data(as_text=True)
    assert 'class="card meter meter-low"' in page
    assert "Low balance" in page and 'class="meter-warning"' in page


def test_meter_has_no_warning_at_or_above_the_threshold(app, logged_in, user):
    app.config["LOW_BALANCE_THRESHOLD"] = 100
    ledger.adjust(user.id, 100, "seed")
    page = logged_in.get("/credits").get_data(as_text=True)
    assert "meter-low" not in page and "meter-warning" not in page


def test_low_balance_style_exists_in_the_stylesheet(client):
    css = client.get("/static/css/app.css").get_data(as_text=True)
    assert ".meter-low" in css and ".meter-warning" in css
