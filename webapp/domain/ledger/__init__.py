"""The only code that writes ledger rows or changes balances; every public call is one transaction.

entries      posting a balance change with its row, adjustments, balances
purchases    Checkout fulfilment, failed and expired sessions
chargebacks  refunds and disputes
grants       plan grants, expiry, draw-down, usage debits
holds        reserve credits, capture what was used, release the rest
hold_expiry  holds past their expiry never count; the stale-hold sweep
"""

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
)
from webapp.domain.ledger.hold_expiry import (
    available_credits,
    held_now,
    release_account_holds,
    release_stale_holds,
)
from webapp.domain.ledger.holds import (
    Figures,
    capture_hold,
    find_hold,
    hold_json,
    hold_status,
    open_holds,
    place_hold,
    release_hold,
)
from webapp.domain.ledger.purchases import (
    Fulfilment,
    FulfilmentResult,
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
    "Figures",
    "available_credits",
    "capture_hold",
    "find_hold",
    "held_now",
    "hold_json",
    "hold_status",
    "open_holds",
    "place_hold",
    "release_account_holds",
    "release_hold",
    "release_stale_holds",
    "Fulfilment",
    "FulfilmentResult",
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
]
