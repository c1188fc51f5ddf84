"""purchases keep one Stripe idempotency key: auto-recharge's moves into stripe_idempotency_key

Revision ID: 0010_one_idempotency_key
Revises: 0009_under_review_totals

A purchase is paid either through a Checkout Session or by an auto-recharge
PaymentIntent, never both, so one column holds the key of whichever it is.
"""
from alembic import op
import sqlalchemy as sa


revision = '0010_one_idempotency_key'
down_revision = '0009_under_review_totals'
branch_labels = None
depends_on = None


def upgrade():
    op.execute(
        "UPDATE purchases SET stripe_idempotency_key = idempotency_key"
        " WHERE stripe_idempotency_key IS NULL AND idempotency_key IS NOT NULL"
    )
    with op.batch_alter_table('purchases', schema=None) as batch_op:
        batch_op.drop_column('idempotency_key')


def downgrade():
    with op.batch_alter_table('purchases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('idempotency_key', sa.String(length=64), nullable=True))
    op.execute(
        "UPDATE purchases SET idempotency_key = stripe_idempotency_key"
        " WHERE source = 'auto_recharge'"
    )
