"""Plan grants linked to their invoice's payment (refunds, disputes, review); random
Stripe idempotency keys stored on purchases and users.

Revision ID: 0003_money_defects
Revises: 0007_catalog_receipts_tax
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_money_defects"
down_revision = "0002_daily_totals"
branch_labels = None
depends_on = None

GRANT_COLUMNS = (
    ("stripe_charge_id", sa.String(length=255), None),
    ("stripe_payment_intent_id", sa.String(length=255), None),
    ("amount_cents", sa.BigInteger(), "0"),
    ("currency", sa.String(length=3), None),
    ("amount_refunded_cents", sa.BigInteger(), "0"),
    ("credits_refunded", sa.BigInteger(), "0"),
    ("credits_disputed", sa.BigInteger(), "0"),
    ("review_reason", sa.String(length=500), None),
)


def upgrade():
    with op.batch_alter_table("credit_grants", schema=None) as batch_op:
        for name, type_, default in GRANT_COLUMNS:
            batch_op.add_column(
                sa.Column(name, type_, nullable=default is None, server_default=default)
            )
        for name, column in (
            ("ix_credit_grants_stripe_charge_id", "stripe_charge_id"),
            ("ix_credit_grants_stripe_payment_intent_id", "stripe_payment_intent_id"),
        ):
            where = sa.text(f"{column} IS NOT NULL")
            batch_op.create_index(
                name, [column], unique=False, sqlite_where=where, postgresql_where=where
            )
        where = sa.text("review_reason IS NOT NULL")
        batch_op.create_index(
            "ix_credit_grants_review",
            ["id"],
            unique=False,
            sqlite_where=where,
            postgresql_where=where,
        )

    with op.batch_alter_table("disputes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("grant_id", sa.Integer(), nullable=True))
        batch_op.alter_column("purchase_id", existing_type=sa.Integer(), nullable=True)
        batch_op.create_index(batch_op.f("ix_disputes_grant_id"), ["grant_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_disputes_grant_id_credit_grants"), "credit_grants", ["grant_id"], ["id"]
        )

    with op.batch_alter_table("purchases", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("stripe_idempotency_key", sa.String(length=64), nullable=True)
        )
        batch_op.add_column(
            sa.Column("refund_idempotency_key", sa.String(length=64), nullable=True)
        )
        batch_op.add_column(sa.Column("refund_request", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("review_amount_cents", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("review_currency", sa.String(length=3), nullable=True))

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("stripe_customer_key", sa.String(length=64), nullable=True))


def downgrade():
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("stripe_customer_key")

    with op.batch_alter_table("purchases", schema=None) as batch_op:
        batch_op.drop_column("review_currency")
        batch_op.drop_column("review_amount_cents")
        batch_op.drop_column("refund_request")
        batch_op.drop_column("refund_idempotency_key")
        batch_op.drop_column("stripe_idempotency_key")

    with op.batch_alter_table("disputes", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_disputes_grant_id_credit_grants"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_disputes_grant_id"))
        batch_op.alter_column("purchase_id", existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column("grant_id")

    with op.batch_alter_table("credit_grants", schema=None) as batch_op:
        batch_op.drop_index("ix_credit_grants_review")
        batch_op.drop_index("ix_credit_grants_stripe_payment_intent_id")
        batch_op.drop_index("ix_credit_grants_stripe_charge_id")
        for name, _type, _default in reversed(GRANT_COLUMNS):
            batch_op.drop_column(name)
