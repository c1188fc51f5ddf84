"""money under review (purchases in needs_review) becomes a kept figure in daily_totals

Revision ID: 0009_under_review_totals
Revises: 0008_auto_recharge

From this revision the ledger counts what Stripe reported for purchases in needs_review
as the `under_review` figure (per currency), so /admin/ no longer groups purchases for
it. This fills the figure for purchases already waiting for review, per creation day,
as webapp.domain.ledger.totals.rebuild does (frozen here).
"""
from alembic import op


revision = '0009_under_review_totals'
down_revision = '0008_auto_recharge'
branch_labels = None
depends_on = None


def _day():
    if op.get_bind().dialect.name == "postgresql":
        return "CAST(timezone('UTC', created_at) AS date)"
    return "date(created_at)"  # SQLite stores naive UTC


def upgrade():
    day = _day()
    op.execute(
        "INSERT INTO daily_totals (day, metric, currency, shard, amount)"
        " SELECT day, 'under_review', review_currency, 0, amount FROM ("
        f" SELECT {day} AS day, review_currency, sum(review_amount_cents) AS amount"
        " FROM purchases WHERE status = 'needs_review' AND review_currency IS NOT NULL"
        f" GROUP BY {day}, review_currency) AS t WHERE amount <> 0"
    )


def downgrade():
    op.execute("DELETE FROM daily_totals WHERE metric = 'under_review'")
