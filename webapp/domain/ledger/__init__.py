"""The only code that writes ledger rows or changes balances; every public call is one transaction.

entries      posting a balance change with its row, adjustments, balances
purchases    Checkout fulfilment, failed and expired sessions
chargebacks  refunds and disputes
grants       plan grants, expiry, draw-down, usage debits
totals       per-day totals for /admin/, written in the transaction of each change
"""

from webapp.domain.ledger import totals
from webapp.domain.ledger.chargebacks import (
    RETURNED_DISPUTE_STATUSES,
    apply_refund,
    close_dispute,
    open_dispute,
)
from webapp.domain.ledger.entries import (
    adjust,
    current_balance,
    lock_account,
    open_account,
    post_entry,
)
from webapp.domain.ledger.grants import (
    debit_usage,
    expire_account_grants,
    expire_due_grants,
    grant_plan_credits,
    with_due_grants_expired,
)
from webapp.domain.ledger.purchases import (
    Fulfilment,
    FulfilmentResult,
    abandon_checkout,
    credit_marked_purchase,
    fulfil_checkout_session,
    mark_paid_statement,
    mark_session_expired,
    mark_session_failed,
    payable_params,
    purchase_description,
    set_status,
)

__all__ = [
    "RETURNED_DISPUTE_STATUSES",
    "Fulfilment",
    "FulfilmentResult",
    "abandon_checkout",
    "adjust",
    "apply_refund",
    "close_dispute",
    "credit_marked_purchase",
    "current_balance",
    "debit_usage",
    "expire_account_grants",
    "expire_due_grants",
    "fulfil_checkout_session",
    "grant_plan_credits",
    "lock_account",
    "mark_paid_statement",
    "mark_session_expired",
    "mark_session_failed",
    "open_account",
    "open_dispute",
    "payable_params",
    "post_entry",
    "purchase_description",
    "set_status",
    "totals",
    "with_due_grants_expired",
]
