"""The only code that writes ledger rows or changes balances; every public call is one transaction.

entries      posting a balance change with its row, balances
purchases    Checkout fulfilment, failed and expired sessions
one_statement  the webhook's usual delivery in one statement (PostgreSQL), built from
             the conditions and statements purchases uses
payable      "paid and payable": the one rule as SQL conditions, the mark-paid UPDATE
chargebacks  refunds and disputes (of purchases and of plan grants' invoices)
grants       plan grants, expiry, usage debits, adjustments by hand; settling what is due
review       crediting a purchase under review (an admin's decision)
remainders   which credits a debit takes: expiring ones first, bought ones first when a
             purchase is taken back (one place: post_entry)
totals       per-day totals for /admin/, written in the transaction of each change
totals_upkeep  folding past days' shards, rebuilding the totals from the rows
holds        reserve credits, capture what was used, release the rest
hold_expiry  holds past their expiry never count; the stale-hold sweep
autorecharge the attempt a debit below the threshold records (in the debit's transaction)
recharge_outcomes  what a charge's outcome does to its attempt
"""

from webapp.domain.ledger import totals, totals_upkeep
from webapp.domain.ledger.chargebacks import (
    RETURNED_DISPUTE_STATUSES,
    apply_refund,
    close_dispute,
    close_grant_dispute,
    open_dispute,
    open_grant_dispute,
    refund_grant,
)
from webapp.domain.ledger.entries import (
    current_balance,
    lock_account,
    open_account,
    post_entry,
)
from webapp.domain.ledger.grants import (
    InvoicePayment,
    adjust,
    debit_usage,
    expire_account_grants,
    expire_due_grants,
    grant_plan_credits,
    hold_invoice_for_review,
    with_due_grants_expired,
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
from webapp.domain.ledger.one_statement import (
    one_statement_credit,
    one_statement_done,
    one_statement_params,
)
from webapp.domain.ledger.payable import payable_params
from webapp.domain.ledger.purchases import (
    Fulfilment,
    FulfilmentResult,
    abandon_checkout,
    credit_marked_purchase,
    fulfil_checkout_session,
    mark_session_expired,
    mark_session_failed,
    purchase_description,
    set_status,
)
from webapp.domain.ledger.review import credit_reviewed_purchase

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
    "abandon_checkout",
    "InvoicePayment",
    "adjust",
    "apply_refund",
    "close_dispute",
    "close_grant_dispute",
    "credit_marked_purchase",
    "credit_reviewed_purchase",
    "current_balance",
    "debit_usage",
    "expire_account_grants",
    "expire_due_grants",
    "fulfil_checkout_session",
    "grant_plan_credits",
    "hold_invoice_for_review",
    "lock_account",
    "mark_session_expired",
    "mark_session_failed",
    "one_statement_credit",
    "one_statement_done",
    "one_statement_params",
    "open_account",
    "open_dispute",
    "open_grant_dispute",
    "payable_params",
    "post_entry",
    "purchase_description",
    "refund_grant",
    "set_status",
    "totals",
    "totals_upkeep",
    "with_due_grants_expired",
]
