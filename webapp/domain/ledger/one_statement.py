"""The webhook's one statement (PostgreSQL): mark paid, credit, count, receipt.

The usual delivery of a paid Checkout Session does in ONE round trip what
purchases.credit_paid_purchase does in several: claim the event (events.claim_and_run),
mark the purchase paid, post its credit, add to the user's day and the totals, and record
the receipt. It is built from the same conditions and statements as that path
(payable.known_paid_statement, entries.credit_statement, jobs.insert_after); anything
they do not match changes nothing, and the ordinary path decides in the same transaction.
tests/webhooks/test_fast_path_equivalence.py runs every session state through both.
"""

import functools
from typing import Any

import sqlalchemy as sa

from webapp.domain import jobs, notices
from webapp.domain.ledger import totals
from webapp.domain.ledger.entries import credit_params, credit_statement
from webapp.domain.ledger.payable import Session, known_paid_statement, payable_params
from webapp.domain.ledger.purchases import purchase_description
from webapp.domain.limits import MAX_CREDITS
from webapp.domain.sql import MAX_INT
from webapp.domain.stripe_objects import metadata_ids
from webapp.models import EntryKind, PurchaseStatus

_CREDIT_REFS = ("description", "purchase_id", "reference")


@functools.cache
def one_statement_credit(*, only_if: sa.CTE) -> sa.Select:
    """PostgreSQL: mark the payable purchase paid (payable.known_paid_statement) and, only
    when that happened, all credit_marked_purchase does: the credit with its ledger row,
    the user's day, the totals and the receipt. One round trip for the usual delivery;
    binds one_statement_params and returns (purchase id, balance after, receipt job id),
    no row when nothing was paid. `only_if`: the CTE gating it all (the event's claim)."""
    paid = known_paid_statement(only_if=only_if).cte("paid")
    posting = credit_statement(EntryKind.PURCHASE, _CREDIT_REFS, only_if=paid).subquery("posting")
    receipt = jobs.insert_after("moved").cte("receipt")
    return sa.select(
        paid.c.id, posting.c.balance_after, receipt.c.id.label("receipt_id")
    ).select_from(paid.outerjoin(posting, sa.true()).outerjoin(receipt, sa.true()))


def one_statement_params(session: Session, old_status: PurchaseStatus) -> dict[str, Any] | None:
    """What one_statement_credit binds for a paid `session` whose metadata names its
    purchase, user and credits, moving the purchase from `old_status`. None when the
    session says too little (or this transaction posted before): the ordinary path then
    decides. Whatever the metadata claims, only the recorded purchase matching all of it
    is credited; any other finds no row and goes the ordinary way too. Call
    one_statement_done afterwards."""
    params = payable_params(session)
    known = metadata_ids(session.get("metadata") or {}, "purchase_id", "user_id", "credits")
    if params["b_amount"] < 0 or known is None or not _bindable(*known):
        return None
    purchase_id, user_id, credits = known
    money = (params["b_currency"], params["b_amount"], 0)
    moved = totals.move_figures((old_status.value, *money), (PurchaseStatus.PAID.value, *money))
    posting = credit_params(
        user_id,
        credits,
        EntryKind.PURCHASE,
        moved,
        purchase_id=purchase_id,
        reference=session["id"],
        description=purchase_description(credits),
    )
    if posting is None:
        return None
    receipt = jobs.bound(notices.receipt(purchase_id, user_id))
    return {**params, **posting, **receipt, "b_old_status": old_status.value}


def _bindable(purchase_id: int, user_id: int, credits: int) -> bool:
    """Metadata values the statement can compare: beyond a column's range PostgreSQL
    raises instead of matching nothing, which would fail the whole delivery."""
    return 0 < purchase_id <= MAX_INT and 0 < user_id <= MAX_INT and 0 < credits <= MAX_CREDITS


def one_statement_done(credited: sa.Row | None) -> bool:
    """After one_statement_credit (`credited`: its row, None when it paid nothing): the
    totals it wrote, or not, and the receipt's doorbell. True when it credited.

    Raises when it marked the purchase paid but moved no balance (the account row gone
    between the two steps): the whole delivery rolls back and Stripe retries, as the
    ordinary path does when the credit cannot land."""
    if credited is not None and credited.balance_after is None:
        raise LookupError(f"purchase {credited.id} was marked paid but its account moved nothing")
    totals.posted(credited is not None)
    if credited is None:
        return False
    jobs.recorded(credited.receipt_id)
    return True
