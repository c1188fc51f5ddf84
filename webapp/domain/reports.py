"""Read-only views of accounts, ledgers and purchases, paginated by keyset."""

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from webapp.extensions import db
from webapp.models import CreditAccount, LedgerEntry, Purchase


@dataclass(frozen=True)
class Page:
    items: list[Any]
    next_before: int | None  # pass as ?before= for the next (older) page


def account_for(user_id: int) -> CreditAccount:
    account = db.session.get(CreditAccount, user_id)
    return account if account is not None else CreditAccount(user_id=user_id, balance=0,
                                                             purchased=0, granted=0, used=0,
                                                             expiring=0)


def balance_json(account: CreditAccount) -> dict[str, int]:
    return {"balance": account.balance, "purchased": account.purchased + account.granted,
            "used": account.used}


def keyset_page(query: sa.Select, id_column, before: int | None, size: int) -> Page:
    """Newest first, `size` rows with id below `before`; reads one extra row to know if more."""
    if before:
        query = query.where(id_column < before)
    rows = list(db.session.scalars(query.order_by(id_column.desc()).limit(size + 1)))
    more = len(rows) > size
    rows = rows[:size]
    return Page(rows, rows[-1].id if more and rows else None)


def ledger_page(user_id: int, before: int | None, size: int) -> Page:
    query = (sa.select(LedgerEntry).where(LedgerEntry.user_id == user_id)
             .options(sa.orm.joinedload(LedgerEntry.purchase)))
    return keyset_page(query, LedgerEntry.id, before, size)


def purchases_page(user_id: int, before: int | None, size: int) -> Page:
    query = sa.select(Purchase).where(Purchase.user_id == user_id)
    return keyset_page(query, Purchase.id, before, size)


def purchase_for_session(user_id: int, session_id: str) -> Purchase | None:
    return db.session.scalar(sa.select(Purchase).where(
        Purchase.stripe_checkout_session_id == session_id, Purchase.user_id == user_id))
