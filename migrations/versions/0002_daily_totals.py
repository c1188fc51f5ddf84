"""daily totals the ledger keeps for /admin/, filled from the existing rows

Revision ID: 0002_daily_totals
Revises: 0001

The fill mirrors webapp.domain.ledger.totals.rebuild as it stood at this revision
(frozen here, so later changes to the app cannot change what this migration did):
credits posted per day and entry kind, purchases per creation day and status, and
charged / refunded money per day and currency for purchases in a revenue status.
"""
from alembic import op
import sqlalchemy as sa


revision = '0002_daily_totals'
down_revision = '0001'
branch_labels = None
depends_on = None

REVENUE = "('paid', 'refunded', 'partially_refunded', 'disputed')"


def upgrade():
    op.create_table('daily_totals',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('metric', sa.String(length=40), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('shard', sa.SmallInteger(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('day', 'metric', 'currency', 'shard')
    )
    if op.get_bind().dialect.name == "postgresql":
        day = "CAST(timezone('UTC', created_at) AS date)"
    else:
        day = "date(created_at)"  # SQLite stores naive UTC

    def fill(metric, currency, amount, rest):
        return (f"SELECT {day} AS day, {metric} AS metric, {currency} AS currency,"
                f" {amount} AS amount FROM {rest}")

    fills = (
        fill("'credits.' || kind", "''", "sum(credits)",
             f"ledger_entries GROUP BY {day}, kind"),
        fill("'purchases.' || status", "''", "count(*)", f"purchases GROUP BY {day}, status"),
        fill("'charged'", "currency", "sum(amount_cents)",
             f"purchases WHERE status IN {REVENUE} GROUP BY {day}, currency"),
        fill("'refunded'", "currency", "sum(amount_refunded_cents)",
             f"purchases WHERE status IN {REVENUE} GROUP BY {day}, currency"),
    )
    for select in fills:
        op.execute(
            "INSERT INTO daily_totals (day, metric, currency, shard, amount)"
            f" SELECT day, metric, currency, 0, amount FROM ({select}) AS t WHERE amount <> 0"
        )


def downgrade():
    op.drop_table('daily_totals')
