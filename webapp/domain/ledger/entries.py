"""Posting: every balance change is one conditional UPDATE of the account and one ledger row."""

import functools
from typing import Any

import sqlalchemy as sa

from webapp.domain import notices
from webapp.domain.errors import InsufficientCreditsError
from webapp.domain.ledger import totals
from webapp.domain.ledger.remainders import draw_down, draw_down_beyond
from webapp.domain.sql import is_postgresql, locked, rows_in
from webapp.extensions import db
from webapp.models import CreditAccount, CreditGrant, EntryKind, LedgerEntry, User
from webapp.models.types import utcnow

# Which running total on the account a kind of entry moves, besides the balance.
_TOTAL_FOR_KIND = {
    EntryKind.PURCHASE: "purchased",
    EntryKind.GRANT: "granted",
    EntryKind.USAGE: "used",
}
# Which column of the user's day (credit_days, the /credits chart) a kind of entry moves.
_DAY_COLUMN_FOR_KIND = {
    EntryKind.PURCHASE: "bought",
    EntryKind.GRANT: "bought",
    EntryKind.USAGE: "spent",
}


def open_account(user_id: int) -> None:
    """Create the user's empty credit account (joins the caller's transaction)."""
    db.session.add(CreditAccount(user_id=user_id, balance=0))


def post_entry(
    user_id: int,
    credits: int,
    kind: str,
    *,
    allow_negative: bool = True,
    unless_expiring: bool = False,
    **refs: Any,
) -> int | None:
    """Move `credits` (signed) on the account and append the ledger row; returns the balance.

    Joins the caller's transaction: the row and the balance commit together or not at
    all. With `allow_negative=False` a debit that would take balance - held (the
    available credits) below zero changes nothing and raises InsufficientCreditsError
    (with `available`). `refs` are LedgerEntry columns (purchase_id,
    grant_id, actor_id, reference, description). With `unless_expiring`, an account
    holding expiring grants (or failing the balance check) changes nothing and the call
    returns None instead of raising: the caller then takes the grant-aware path.
    Every other debit draws the expiring grants down (remainders.draw_down), starting
    with `grant_id`'s when the row names one; the refund or dispute of a purchase or of a
    rollover grant takes lasting credits first (remainders.draw_down_beyond).
    """
    total = _TOTAL_FOR_KIND.get(kind)
    day_column = _DAY_COLUMN_FOR_KIND.get(kind)
    params = _posting_params(user_id, credits, kind, refs)
    now = params["b_now"]
    metric = totals.credits_metric(kind)
    if is_postgresql():
        totals_params = totals.posting_params(metric, credits)
        statement = _update_and_insert(
            total,
            allow_negative,
            unless_expiring,
            tuple(sorted(refs)),
            day_column,
            totals_params is not None,
            credits < 0,
        )
        moved = db.session.execute(statement, {**params, **(totals_params or {})}).first()
        if totals_params is not None:
            totals.posted(moved is not None)
            metric = None  # written by the statement
    else:
        update = _balance_update(total, allow_negative, unless_expiring, credits < 0)
        moved = db.session.execute(update, params).first()
        if moved is not None:
            row = {"user_id": user_id, "kind": kind, "credits": credits, "balance_after": moved[0]}
            db.session.execute(_LEDGER_INSERT, {**row, "created_at": now, **refs})
            if day_column:
                db.session.execute(
                    _day_upsert(day_column, "VALUES (:b_user_id, :b_day, {})"), params
                )
    if moved is None and unless_expiring:
        return None
    if moved is None:
        raise _refusal(user_id)
    balance, recharge_below, wants_alert, alert_threshold = moved
    if credits < 0 and not unless_expiring and _takes_back_lasting_credits(kind, refs):
        draw_down_beyond(user_id, balance)  # lasting credits taken back: those go first
    elif credits < 0 and not unless_expiring:
        draw_down(user_id, -credits, first_grant_id=refs.get("grant_id"))
    if metric:
        totals.add(metric, credits)
    if credits < 0:
        notices.balance_fell(user_id, balance, -credits, wants_alert, alert_threshold)
    if recharge_below is not None and balance < recharge_below and kind in _RECHARGING_KINDS:
        _after_debit(user_id, balance)
    return balance


def _refusal(user_id: int) -> InsufficientCreditsError:
    """A debit refused for want of credits: the balance, and as `available` the credits a
    debit could take at this point of the transaction (balance - held; a hold being
    captured is already out of `held`, and callers have released due holds)."""
    row = db.session.execute(
        sa.select(CreditAccount.balance, CreditAccount.held).where(CreditAccount.user_id == user_id)
    ).first()
    balance, held = row if row is not None else (0, 0)
    return InsufficientCreditsError(balance, available=balance - held)


def _posting_params(user_id: int, credits: int, kind: str, refs: dict[str, Any]) -> dict:
    now = utcnow()
    return {
        "b_user_id": user_id,
        "b_credits": credits,
        "b_magnitude": abs(credits),
        "b_now": now,
        "b_day": now.date(),
        "b_kind": kind,
        **{f"b_{name}": v for name, v in refs.items()},
    }


def credit_statement(kind: str, ref_names: tuple[str, ...], *, only_if: sa.CTE) -> sa.Select:
    """PostgreSQL: post_entry's statement for a credit of `kind` whose ledger row names
    `ref_names`, done only when the CTE `only_if` returns a row: a step of a bigger
    statement (the webhook's one-statement credit). It binds credit_params."""
    return _update_and_insert(
        _TOTAL_FOR_KIND.get(kind),
        True,
        False,
        tuple(sorted(ref_names)),
        _DAY_COLUMN_FOR_KIND.get(kind),
        True,
        False,
        only_if,
    )


def credit_params(
    user_id: int, credits: int, kind: str, also: totals.Figures, **refs: Any
) -> dict[str, Any] | None:
    """The parameters of credit_statement: the credit, and the totals it and `also` (the
    other steps' figures) add; None when this transaction wrote its totals already (then
    post_entry is the way). Call totals.posted(moved) once the statement has run."""
    totals_params = totals.posting_params(totals.credits_metric(kind), credits, also)
    if totals_params is None:
        return None
    return {**_posting_params(user_id, credits, kind, refs), **totals_params}


def _takes_back_lasting_credits(kind: str, refs: dict[str, Any]) -> bool:
    """A refund or dispute of a purchase, or of a plan grant whose credits roll over: it
    takes back credits that never expire, so lasting credits go first. (An expiring
    grant's take-back draws its own remainder, then the other expiring grants.)"""
    if kind not in (EntryKind.REFUND, EntryKind.DISPUTE):
        return False
    if refs.get("purchase_id") is not None:
        return True
    grant_id = refs.get("grant_id")
    # The take-back has the grant locked: get() finds it in the session.
    return grant_id is not None and db.session.get(CreditGrant, grant_id).expires_at is None


# Debits that may start an auto-recharge, in their own transaction (the account is locked).
# The account's `auto_recharge_below` (the threshold while auto-recharge is on) comes back
# with the balance, so other debits cost no extra statement.
_RECHARGING_KINDS = (EntryKind.USAGE, EntryKind.EXPIRY)


def _after_debit(user_id: int, balance: int) -> None:
    from webapp.domain.ledger import autorecharge  # it builds on purchases, which import us

    autorecharge.after_debit(user_id, balance)


# Built once: a prebuilt statement's cache key is memoised, so every webhook and API debit
# skips constructing and hashing these statements again.
_LEDGER_INSERT = sa.insert(LedgerEntry.__table__)


@functools.cache
def _balance_update(
    total: str | None,
    allow_negative: bool,
    unless_expiring: bool,
    debit: bool,
    only_if: sa.CTE | None = None,
) -> sa.Update:
    """UPDATE the account by :b_credits (and a running total by :b_magnitude) RETURNING it,
    its auto-recharge threshold and, for a `debit`, the user's low-balance settings.
    `only_if`: a CTE that must return a row for the update to happen (a step of a bigger
    statement: only the balance comes back)."""
    account = CreditAccount.__table__.c
    credits = sa.bindparam("b_credits", type_=account.balance.type)
    values = {
        "balance": account.balance + credits,
        "updated_at": sa.bindparam("b_now", type_=account.updated_at.type),
    }
    if total:
        values[total] = account[total] + sa.bindparam("b_magnitude", type_=account.balance.type)
    update = sa.update(CreditAccount.__table__).where(
        account.user_id == sa.bindparam("b_user_id", type_=account.user_id.type)
    )
    if not allow_negative:  # credits on hold are not there to take
        update = update.where(account.balance - account.held + credits >= 0)
    if unless_expiring:
        update = update.where(account.next_expiry_at.is_(None))
    update = update.values(values)
    if only_if is not None:
        return update.where(rows_in(only_if)).returning(account.balance)
    return update.returning(
        account.balance, account.auto_recharge_below, *_low_balance_settings(account, debit)
    )


def _low_balance_settings(account: Any, debit: bool) -> tuple[sa.ColumnElement, ...]:
    """The user's low-balance alert settings, returned with a debit's balance: every debit
    checks them, and this way costs no statement of its own (credits read NULLs)."""
    users = User.__table__.c
    columns = (users.notify_low_balance, users.low_balance_threshold)
    if not debit:
        return tuple(sa.null().label(column.name) for column in columns)
    return tuple(
        sa.select(column).where(users.id == account.user_id).scalar_subquery().label(column.name)
        for column in columns
    )


@functools.cache
def _day_upsert(column: str, rows: str) -> sa.TextClause:
    """Add :b_magnitude to the user's `column` (bought or spent) of :b_day in credit_days.

    Plain SQL (SQLite and PostgreSQL both take it): the dialects' upsert constructs are
    not cacheable. `rows` yields (user_id, day, amount), e.g. "VALUES (...{})" or
    "SELECT ... {} FROM moved".
    """
    other = "spent" if column == "bought" else "bought"
    amount = "CAST(:b_magnitude AS BIGINT)"
    return sa.text(
        f"INSERT INTO credit_days (user_id, day, {column}, {other}) "
        + rows.format(f"{amount}, 0")
        + f" ON CONFLICT (user_id, day) DO UPDATE SET {column} = credit_days.{column}"
        f" + excluded.{column}"
    ).bindparams(sa.bindparam("b_day", type_=sa.Date))


@functools.cache
def _update_and_insert(
    total: str | None,
    allow_negative: bool,
    unless_expiring: bool,
    ref_names: tuple[str, ...],
    day_column: str | None = None,
    with_totals: bool = False,
    debit: bool = False,
    only_if: sa.CTE | None = None,
) -> sa.Select:
    """PostgreSQL: the balance UPDATE and the ledger INSERT in one statement (one round
    trip): WITH moved AS (UPDATE ... RETURNING balance, auto_recharge_below), inserted AS
    (INSERT ... SELECT FROM moved RETURNING balance_after) SELECT both. When the UPDATE
    matches nothing (a short balance), nothing is inserted and no row comes back. With a
    `day_column`, the user's day in credit_days moves in the same statement (after the
    account row's lock, so writers of one user's day never wait in another order).
    `with_totals`: the transaction's pending totals too (totals.posting_params).
    `only_if`: a CTE that must return a row for anything to happen (then only
    balance_after comes back)."""
    moved = _balance_update(total, allow_negative, unless_expiring, debit, only_if).cte("moved")
    ctes = [moved]
    if day_column:
        upsert = _day_upsert(day_column, "SELECT CAST(:b_user_id AS BIGINT), :b_day, {} FROM moved")
        ctes.append(upsert.columns().cte("day_moved"))
    if with_totals:
        ctes.append(sa.text(totals.POSTING_UPSERT_SQL).columns().cte("totals_moved"))
    ledger = LedgerEntry.__table__.c
    names = ("user_id", "kind", "credits", "balance_after", "created_at", *ref_names)

    def value(name: str):
        if name == "balance_after":
            return moved.c.balance
        param = "b_now" if name == "created_at" else f"b_{name}"
        return sa.bindparam(param, type_=ledger[name].type)

    row = sa.select(*(value(name) for name in names))
    inserted = (
        sa.insert(LedgerEntry.__table__)
        .from_select(names, row)
        .returning(ledger.balance_after)
        .cte("inserted")
    )
    returned = [inserted.c.balance_after]
    if only_if is None:
        returned += [
            moved.c.auto_recharge_below,
            moved.c.notify_low_balance,
            moved.c.low_balance_threshold,
        ]
    return sa.select(*returned).select_from(moved.join(inserted, sa.true())).add_cte(*ctes)


def current_balance(user_id: int) -> int:
    """The account's balance in credits as the current transaction sees it (0 without one)."""
    return (
        db.session.scalar(sa.select(CreditAccount.balance).where(CreditAccount.user_id == user_id))
        or 0
    )


def lock_account(user_id: int) -> CreditAccount | None:
    """The account row, locked until the transaction ends (None when there is none)."""
    return db.session.scalars(
        locked(sa.select(CreditAccount).where(CreditAccount.user_id == user_id))
    ).first()
