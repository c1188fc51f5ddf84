"""Holds past their expiry never count: released on a locked account, left out of reads."""

from datetime import datetime

import sqlalchemy as sa

from webapp.domain import clock
from webapp.domain.ledger.entries import lock_account
from webapp.domain.transaction import atomic
from webapp.extensions import db
from webapp.models import CreditAccount, Hold, HoldStatus

_holds = Hold.__table__.c
_accounts = CreditAccount.__table__.c


def release_due_holds_locked(user_id: int, now: datetime) -> int:
    """Mark the account's holds past expiry expired and take them out of `held`.

    For a caller that has locked the account (joins its transaction). Returns the
    credits released; no query beyond one read while no hold is due. Each hold moves
    from held to expired in one conditional UPDATE, so a capture racing it wins or loses
    whole.
    """
    next_at = db.session.scalar(
        sa.select(_accounts.next_hold_expiry_at).where(_accounts.user_id == user_id)
    )
    if next_at is None or next_at > now:
        return 0
    released = db.session.scalars(
        sa.update(Hold.__table__)
        .where(
            _holds.user_id == user_id, _holds.status == HoldStatus.HELD, _holds.expires_at <= now
        )
        .values(status=HoldStatus.EXPIRED, settled_at=now)
        .returning(_holds.credits)
    ).all()
    next_open = (
        sa.select(sa.func.min(_holds.expires_at))
        .where(_holds.user_id == user_id, _holds.status == HoldStatus.HELD)
        .scalar_subquery()
    )
    db.session.execute(
        sa.update(CreditAccount.__table__)
        .where(_accounts.user_id == user_id)
        .values(held=_accounts.held - sum(released), next_hold_expiry_at=next_open)
    )
    return sum(released)


def release_account_holds(user_id: int) -> int:
    """Release the account's due holds; returns credits released; commits."""
    with atomic():
        if lock_account(user_id) is None:
            return 0
        return release_due_holds_locked(user_id, clock.now())


def release_stale_holds() -> list[tuple[int, int]]:
    """Release every account's holds past expiry, one transaction per account (each commits).

    For the worker's schedule and `credits release-holds`: only tidying, since a due hold
    already counts for nothing. Safe to run twice or on several hosts at once. Returns
    (user_id, credits released) for each account looked at.
    """
    user_ids = db.session.scalars(
        sa.select(_holds.user_id)
        .distinct()
        .where(_holds.status == HoldStatus.HELD, _holds.expires_at <= clock.now())
    ).all()
    db.session.rollback()  # end the read transaction before locking accounts one by one
    return [(user_id, release_account_holds(user_id)) for user_id in user_ids]


def held_now(account: CreditAccount, now: datetime | None = None) -> int:
    """Credits the account's holds reserve at this moment: due holds left out (a read)."""
    now = now or clock.now()
    held = account.held or 0
    if account.next_hold_expiry_at is None or account.next_hold_expiry_at > now:
        return held
    due = db.session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(_holds.credits), 0)).where(
            _holds.user_id == account.user_id,
            _holds.status == HoldStatus.HELD,
            _holds.expires_at <= now,
        )
    )
    return held - int(due)


def available_credits(user_id: int) -> int:
    """balance - held as it stands now (a read, for answers such as a 402)."""
    account = db.session.get(CreditAccount, user_id, populate_existing=True)
    if account is None:
        return 0
    return account.balance - held_now(account)
