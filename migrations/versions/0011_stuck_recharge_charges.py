"""auto-recharge charge jobs that failed for good while their attempt is pending run again

Revision ID: 0011_stuck_recharge_charges
Revises: 0010_one_idempotency_key

Before, a charge job failed for good after JOB_MAX_ATTEMPTS, leaving its attempt pending:
the account's auto-recharge stayed blocked, since a pending attempt counts as in flight.
The charge job is now retried until the attempt is settled (charged, failed, or given up
20 hours after it was recorded), so such jobs go back in line: the worker's sweep rings
them, and each settles its attempt once.
"""
from alembic import op


revision = '0011_stuck_recharge_charges'
down_revision = '0010_one_idempotency_key'
branch_labels = None
depends_on = None


def upgrade():
    op.execute(
        "UPDATE jobs SET status = 'pending', locked_until = NULL, claimed_by = NULL"
        " WHERE kind = 'auto_recharge_charge' AND status = 'failed' AND EXISTS ("
        " SELECT 1 FROM purchases WHERE purchases.source = 'auto_recharge'"
        " AND purchases.status = 'pending'"
        " AND jobs.dedupe_key = 'auto_recharge_charge:' || purchases.stripe_idempotency_key)"
    )


def downgrade():
    pass  # the jobs' work is what settles them; nothing to put back
