"""Holds (reserve, then capture), the held total on accounts, the API key behind a debit.

Revision ID: 0006_holds
Revises: 0005_jobs_and_accounts
Create Date: 2026-11-28 21:18:03.362357

"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0006_holds"
down_revision = "0003_money_defects"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "holds",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("public_id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("api_key_id", sa.Integer(), nullable=True),
        sa.Column("credits", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("captured", sa.BigInteger(), nullable=True),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("settle_answer", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["api_key_id"], ["api_keys.id"], name=op.f("fk_holds_api_key_id_api_keys")
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_holds_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_holds")),
        sa.UniqueConstraint("public_id", name=op.f("uq_holds_public_id")),
    )
    with op.batch_alter_table("holds", schema=None) as batch_op:
        batch_op.create_index(
            "ix_holds_open_expires_at",
            ["expires_at"],
            unique=False,
            sqlite_where=sa.text("status = 'held'"),
            postgresql_where=sa.text("status = 'held'"),
        )
        batch_op.create_index("ix_holds_user_id_id", ["user_id", "id"], unique=False)

    with op.batch_alter_table("credit_accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("held", sa.BigInteger(), server_default="0", nullable=False))
        batch_op.add_column(
            sa.Column("next_hold_expiry_at", sa.DateTime(timezone=True), nullable=True)
        )

    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("api_key_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_ledger_entries_api_key_id_api_keys"), "api_keys", ["api_key_id"], ["id"]
        )


def downgrade():
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_ledger_entries_api_key_id_api_keys"), type_="foreignkey"
        )
        batch_op.drop_column("api_key_id")

    with op.batch_alter_table("credit_accounts", schema=None) as batch_op:
        batch_op.drop_column("next_hold_expiry_at")
        batch_op.drop_column("held")

    with op.batch_alter_table("holds", schema=None) as batch_op:
        batch_op.drop_index("ix_holds_user_id_id")
        batch_op.drop_index(
            "ix_holds_open_expires_at",
            sqlite_where=sa.text("status = 'held'"),
            postgresql_where=sa.text("status = 'held'"),
        )

    op.drop_table("holds")
