""" "Paid and payable": the one rule, as SQL conditions both fulfilment paths use.

A conditional UPDATE takes the row lock and re-checks its conditions after any wait, so
it marks a purchase paid exactly when the locked checks of purchases._fulfil_locked would
credit it; every other case matches no row and goes through those checks. The webhook's
PostgreSQL fast path runs the same UPDATE inside its event claim (events.claim_and_run).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from webapp.domain.sql import is_postgresql, rows_in
from webapp.domain.stripe_objects import id_of
from webapp.extensions import db
from webapp.models import CreditAccount, Purchase, PurchaseStatus
from webapp.models.types import utcnow

Session = Mapping[str, Any]
PAID_PAYMENT_STATUSES = ("paid", "no_payment_required")

_purchases = Purchase.__table__.c


def payable_conditions() -> list[sa.ColumnElement[bool]]:
    """The purchase behind :b_session_id is payable by a paid session of :b_amount/:b_currency.

    :b_amount is the session's amount_total less its reported tax (payable_params).
    """
    account = CreditAccount.__table__.c
    return [
        _purchases.stripe_checkout_session_id == sa.bindparam("b_session_id", type_=sa.String),
        _purchases.credited_at.is_(None),
        _purchases.status != PurchaseStatus.NEEDS_REVIEW.value,
        _purchases.amount_cents == sa.bindparam("b_amount", type_=sa.BigInteger),
        _purchases.currency == sa.bindparam("b_currency", type_=sa.String),
        # No account row: the credit could not land, so the locked path raises (and retries).
        sa.exists().where(account.user_id == _purchases.user_id),
    ]


def payable_params(session: Session) -> dict[str, Any]:
    """The values payable_conditions and mark_paid_statement bind for this session.

    A session that is not paid (or has no integer amount) binds an amount no purchase has,
    so it matches nothing and goes to the locked checks.
    """
    amount, tax = amount_before_tax(session), reported_tax(session)
    paid = session.get("payment_status") in PAID_PAYMENT_STATUSES and amount is not None
    return {
        "b_session_id": session.get("id") or "",
        "b_amount": amount if paid else -1,
        "b_currency": (session.get("currency") or "").lower(),
        "b_now": utcnow(),
        "b_payment_intent": id_of(session.get("payment_intent")),
        "b_tax": tax or 0,
        "b_invoice": invoice_id(session),
    }


def invoice_id(session: Session) -> str | None:
    """The invoice Stripe issued for the session (CHECKOUT_INVOICES), when it names one."""
    invoice = id_of(session.get("invoice"))
    return invoice if isinstance(invoice, str) and len(invoice) <= 255 else None


def reported_tax(session: Session) -> int | None:
    """The tax Stripe added (total_details.amount_tax; 0 when absent), None when malformed."""
    tax = (session.get("total_details") or {}).get("amount_tax")
    if tax is None:
        return 0
    return tax if isinstance(tax, int) and not isinstance(tax, bool) and tax >= 0 else None


def amount_before_tax(session: Session) -> int | None:
    """amount_total less the reported tax: what must equal the purchase's recorded amount.

    None when either is missing or malformed, which no purchase matches.
    """
    total, tax = session.get("amount_total"), reported_tax(session)
    if not isinstance(total, int) or isinstance(total, bool) or tax is None or total < tax:
        return None
    return total - tax


def mark_paid_statement() -> sa.Update:
    """PostgreSQL: UPDATE a payable purchase to paid RETURNING (id, user_id, credits) and
    what the totals need: old_status, currency, amount_cents, amount_refunded_cents.

    The purchase is picked by a locked sub-select, which PostgreSQL re-checks after any
    wait, so `old_status` is the status this UPDATE really moved it from.
    """
    return _paid_update(None, locked_before=True)


def known_paid_statement(*, only_if: sa.CTE) -> sa.Update:
    """mark_paid_statement for a purchase known beforehand, RETURNING its id: also only when
    it is :b_purchase_id of :b_user_id for :b_credits, in :b_old_status with nothing
    refunded, so the rest of one statement can bind the credit and its totals. The
    UPDATE's own WHERE is re-checked after any wait for the row lock. `only_if`: a CTE
    that must return a row first (the webhook's event claim)."""
    return _paid_update(only_if, locked_before=False, known=True)


def _paid_update(only_if: sa.CTE | None, *, locked_before: bool, known: bool = False) -> sa.Update:
    conditions = payable_conditions() + (_known_purchase() if known else [])
    if only_if is not None:
        conditions.append(rows_in(only_if))
    update = sa.update(Purchase.__table__)
    if known:  # the rest of the statement binds what the credit and the totals need
        return _paid(update.where(*conditions)).returning(_purchases.id)
    returned = [_purchases.id, _purchases.user_id, _purchases.credits]
    if locked_before:
        before = (
            sa.select(_purchases.id, _purchases.status)
            .where(*conditions)
            .with_for_update()
            .subquery("before")
        )
        update = update.where(_purchases.id == before.c.id)
        returned.append(before.c.status.label("old_status"))
    else:
        update = update.where(*conditions)
    returned += [_purchases.currency, _purchases.amount_cents, _purchases.amount_refunded_cents]
    return _paid(update).returning(*returned)


def _known_purchase() -> list[sa.ColumnElement[bool]]:
    return [
        _purchases.id == sa.bindparam("b_purchase_id", type_=_purchases.id.type),
        _purchases.user_id == sa.bindparam("b_user_id", type_=_purchases.user_id.type),
        _purchases.credits == sa.bindparam("b_credits", type_=_purchases.credits.type),
        _purchases.status == sa.bindparam("b_old_status", type_=sa.String),
        _purchases.amount_refunded_cents == 0,
    ]


def _paid(update: sa.Update) -> sa.Update:
    """The update's SET: paid and credited now, with what the session says of it."""
    return update.values(
        status=PurchaseStatus.PAID.value,
        credited_at=sa.bindparam("b_now", type_=_purchases.credited_at.type),
        updated_at=sa.bindparam("b_now", type_=_purchases.updated_at.type),
        stripe_payment_intent_id=sa.func.coalesce(
            sa.bindparam("b_payment_intent", type_=sa.String), _purchases.stripe_payment_intent_id
        ),
        tax_cents=sa.bindparam("b_tax", type_=sa.BigInteger),
        stripe_invoice_id=sa.func.coalesce(
            sa.bindparam("b_invoice", type_=sa.String), _purchases.stripe_invoice_id
        ),
    )


_MARK_PAID = mark_paid_statement()
# SQLite cannot return a column of the UPDATE's FROM; its writers are serialised (BEGIN
# IMMEDIATE), so the status read just before the UPDATE is the one it moves from.
_MARK_PAID_SQLITE = _paid_update(None, locked_before=False)
_STATUS_OF_SESSION = sa.select(_purchases.status).where(
    _purchases.stripe_checkout_session_id == sa.bindparam("b_session_id", type_=sa.String)
)


@dataclass(frozen=True)
class MarkedPaid:
    id: int
    user_id: int
    credits: int
    old_status: str
    currency: str
    amount_cents: int
    amount_refunded_cents: int


def mark_paid(params: dict[str, Any]) -> Any:
    """Mark the payable purchase paid; its returned row, or None when none was payable."""
    if is_postgresql():
        return db.session.execute(_MARK_PAID, params).first()
    old_status = db.session.execute(_STATUS_OF_SESSION, params).scalar()
    row = db.session.execute(_MARK_PAID_SQLITE, params).first()
    return None if row is None else MarkedPaid(row[0], row[1], row[2], old_status, *row[3:])
