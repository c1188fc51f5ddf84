"""disputes remember which plan grants gave credits when a purchase's dispute took them

Revision ID: 0011_dispute_plan_credits
Revises: 0010_one_idempotency_key

A purchase's dispute takes bought credits first and plan credits only as far as the
balance can no longer hold them; a won dispute gives those back to their plan (or lets
them expire with it), so it needs to know where they came from.
"""
from alembic import op
import sqlalchemy as sa


revision = '0011_dispute_plan_credits'
down_revision = '0010_one_idempotency_key'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('disputes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('plan_credits_taken', sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table('disputes', schema=None) as batch_op:
        batch_op.drop_column('plan_credits_taken')
