"""Price packs from Stripe; tax, receipt and invoice links on purchases

Revision ID: 0007_catalog_receipts_tax
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_catalog_receipts_tax"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "catalog_prices",
        sa.Column("stripe_price_id", sa.String(length=255), nullable=False),
        sa.Column("credits", sa.BigInteger(), nullable=True),
        sa.Column("unit_amount", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("name", sa.String(length=250), nullable=True),
        sa.Column("tax_behavior", sa.String(length=20), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("stripe_price_id", name=op.f("pk_catalog_prices")),
    )
    with op.batch_alter_table("purchases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("stripe_price_id", sa.String(length=255), nullable=True))
        batch_op.add_column(
            sa.Column("tax_cents", sa.BigInteger(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("receipt_url", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("stripe_invoice_id", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("invoice_url", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("invoice_pdf_url", sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table("purchases", schema=None) as batch_op:
        batch_op.drop_column("invoice_pdf_url")
        batch_op.drop_column("invoice_url")
        batch_op.drop_column("stripe_invoice_id")
        batch_op.drop_column("receipt_url")
        batch_op.drop_column("tax_cents")
        batch_op.drop_column("stripe_price_id")
    op.drop_table("catalog_prices")
