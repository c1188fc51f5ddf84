"""daily totals for /admin/ and each user's credit days for /credits, filled from the rows

Revision ID: 0002_daily_totals
Revises: 0007_catalog_receipts_tax

The fill mirrors webapp.domain.ledger.totals.rebuild as it stood at this revision
(frozen here, so later changes to the app cannot change what this migration did):
credits posted per day and entry kind, purchases per creation day and status, and
charged / refunded money per day and currency for purchases in a revenue status;
and each user's credits bought (purchases, grants) and spent (usage) per day.
"""
from alembic import op
import sqlalchemy as sa


revision = '0002_daily_totals'
down_revision = '0005_jobs_and_accounts'
branch_labels = None
depends_on = None

REVENUE = "('paid', 'refunded', 'partially_refunded', 'disputed')"


def upgrade():
    op.create_table('daily_totals',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('metric', sa.String(length=40), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('shard', sa.Integer(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('day', 'metric', 'currency', 'shard', name=op.f('pk_daily_totals'))
    )
    with op.batch_alter_table('daily_totals', schema=None) as batch_op:
        batch_op.create_index('ix_daily_totals_unfolded', ['day'], unique=False, sqlite_where=sa.text('shard <> 0'), postgresql_where=sa.text('shard <> 0'))

    op.create_table('credit_days',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('bought', sa.BigInteger(), nullable=False),
    sa.Column('spent', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_credit_days_user_id_users')),
    sa.PrimaryKeyConstraint('user_id', 'day', name=op.f('pk_credit_days'))
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


    op.execute(
        f"INSERT INTO credit_days (user_id, day, bought, spent)"
        f" SELECT user_id, {day},"
        " sum(CASE WHEN kind IN ('purchase', 'grant') THEN abs(credits) ELSE 0 END),"
        " sum(CASE WHEN kind = 'usage' THEN abs(credits) ELSE 0 END)"
        f" FROM ledger_entries WHERE kind IN ('purchase', 'grant', 'usage')"
        f" GROUP BY user_id, {day}"
    )


def downgrade():
    op.drop_table('credit_days')
    with op.batch_alter_table('daily_totals', schema=None) as batch_op:
        batch_op.drop_index('ix_daily_totals_unfolded', sqlite_where=sa.text('shard <> 0'), postgresql_where=sa.text('shard <> 0'))

    op.drop_table('daily_totals')
