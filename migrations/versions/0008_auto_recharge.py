"""auto-recharge: settings and saved card per user; purchase source, idempotency key, failure

Revision ID: 0008_auto_recharge
Revises: 0005_jobs_and_accounts
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0008_auto_recharge'
down_revision = '0006_holds'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('auto_recharges',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('enabled', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('threshold', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('amount', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('monthly_limit_cents', sa.BigInteger(), nullable=True),
    sa.Column('payment_method_id', sa.String(length=255), nullable=True),
    sa.Column('card_brand', sa.String(length=30), nullable=True),
    sa.Column('card_last4', sa.String(length=4), nullable=True),
    sa.Column('card_exp_month', sa.Integer(), nullable=True),
    sa.Column('card_exp_year', sa.Integer(), nullable=True),
    sa.Column('card_session_id', sa.String(length=255), nullable=True),
    sa.Column('consecutive_failures', sa.Integer(), server_default='0', nullable=False),
    sa.Column('last_failure_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('disabled_reason', sa.String(length=500), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_auto_recharges_user_id_users')),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_auto_recharges'))
    )
    with op.batch_alter_table('credit_accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('auto_recharge_below', sa.BigInteger(), nullable=True))

    with op.batch_alter_table('purchases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source', sa.String(length=20), server_default='checkout', nullable=False))
        batch_op.add_column(sa.Column('idempotency_key', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('stripe_payment_method_id', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('failure_reason', sa.String(length=500), nullable=True))
        batch_op.create_index('ix_purchases_auto_recharge', ['user_id', 'created_at'], unique=False, sqlite_where=sa.text("source = 'auto_recharge'"), postgresql_where=sa.text("source = 'auto_recharge'"))
        batch_op.create_index('uq_purchases_open_auto_recharge', ['user_id'], unique=True, sqlite_where=sa.text("source = 'auto_recharge' AND status IN ('pending', 'processing', 'needs_action')"), postgresql_where=sa.text("source = 'auto_recharge' AND status IN ('pending', 'processing', 'needs_action')"))



def downgrade():
    with op.batch_alter_table('purchases', schema=None) as batch_op:
        batch_op.drop_index('uq_purchases_open_auto_recharge', sqlite_where=sa.text("source = 'auto_recharge' AND status IN ('pending', 'processing', 'needs_action')"), postgresql_where=sa.text("source = 'auto_recharge' AND status IN ('pending', 'processing', 'needs_action')"))
        batch_op.drop_index('ix_purchases_auto_recharge', sqlite_where=sa.text("source = 'auto_recharge'"), postgresql_where=sa.text("source = 'auto_recharge'"))
        batch_op.drop_column('failure_reason')
        batch_op.drop_column('stripe_payment_method_id')
        batch_op.drop_column('idempotency_key')
        batch_op.drop_column('source')

    with op.batch_alter_table('credit_accounts', schema=None) as batch_op:
        batch_op.drop_column('auto_recharge_below')

    op.drop_table('auto_recharges')
