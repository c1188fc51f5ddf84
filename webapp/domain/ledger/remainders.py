"""Which credits a debit takes: the one rule that keeps plan grants' remainders right.

Spending (usage, a negative adjustment, expiry, the refund or dispute of an expiring plan's
invoice) takes expiring credits first, soonest expiry first. Taking back lasting credits
(the refund or dispute of a purchase, or of a rollover plan's invoice) takes lasting
credits first: the grants give only what the balance can no longer hold. (A won dispute returns ordinary credits, plan credits among them: the
README's known limits say why.) Either way the credits in unexpired grants never exceed
the balance (`expiring <= max(balance, 0)`), and expiry only ever removes plan credits
nobody has spent or taken back: credits bought (which never expire) are never expired.
post_entry applies this to every negative posting; nothing else draws grants down.
"""

from datetime import UTC, datetime

import sqlalchemy as sa

from webapp.domain import clock
from webapp.domain.sql import locked
from webapp.extensions import db
from webapp.models import CreditAccount, CreditGrant


def open_expiring_grants(user_id: int) -> sa.Select:
    """Grants that still expire some day and are not expired yet, soonest first."""
    return (
        sa.select(CreditGrant)
        .where(
            CreditGrant.user_id == user_id,
            CreditGrant.expired_at.is_(None),
            CreditGrant.expires_at.is_not(None),
        )
        .order_by(CreditGrant.expires_at, CreditGrant.id)
    )


def draw_down(user_id: int, credits: int, *, first_grant_id: int | None = None) -> int:
    """Take `credits` just debited from the expiring grants; returns how many they gave.

    `first_grant_id` (the grant an expiry or a clawback is about) gives first, then the
    others, soonest expiry first. No other grant past its expiry gives anything: its
    credits are gone, even before its expiry is written. Joins the caller's transaction,
    which holds the account's balance change: the grants are row-locked for the rest of it.
    """
    live = sa.or_(CreditGrant.expires_at > clock.now(), CreditGrant.id == first_grant_id)
    grants = list(
        db.session.scalars(
            locked(open_expiring_grants(user_id).where(CreditGrant.remaining > 0, live))
        )
    )
    if not grants:
        return 0
    grants.sort(key=lambda grant: grant.id != first_grant_id)  # stable: soonest first after
    left = credits
    for grant in grants:
        take = min(left, grant.remaining)
        grant.remaining -= take
        left -= take
        if left == 0:
            break
    refresh_expiry_summary(user_id)
    return credits - left


def draw_down_beyond(user_id: int, balance: int) -> int:
    """After bought credits were taken back, leaving `balance`: the expiring grants give
    only what no longer fits in it (soonest expiry first); returns how many. Joins."""
    db.session.flush()
    expiring = db.session.scalar(
        sa.select(CreditAccount.expiring).where(CreditAccount.user_id == user_id)
    )
    excess = (expiring or 0) - max(balance, 0)
    return draw_down(user_id, excess) if excess > 0 else 0


def give_back(grant: CreditGrant, credits: int, balance_after: int) -> None:
    """Credits just added for an expiring grant (the grant itself, or a won dispute of its
    invoice) expire with it, as far as the balance allows: a balance owed after a refund
    is paid off first, so expiring credits never exceed the balance. Joins."""
    if grant.expires_at is None or grant.expired_at is not None:
        return
    db.session.flush()
    expiring = db.session.scalar(
        sa.select(CreditAccount.expiring).where(CreditAccount.user_id == grant.user_id)
    )
    room = max(0, balance_after - (expiring or 0))
    grant.remaining += max(0, min(credits, room, grant.credits - grant.remaining))
    refresh_expiry_summary(grant.user_id)


def refresh_expiry_summary(user_id: int) -> None:
    """Recompute the account's `expiring` and `next_expiry_at` from its open grants."""
    db.session.flush()
    open_grants = open_expiring_grants(user_id).where(CreditGrant.remaining > 0).subquery()
    expiring, next_at = db.session.execute(
        sa.select(
            sa.func.coalesce(sa.func.sum(open_grants.c.remaining), 0),
            sa.func.min(open_grants.c.expires_at),
        )
    ).one()
    if isinstance(next_at, str):  # SQLite returns min() of a datetime column as text
        next_at = datetime.fromisoformat(next_at).replace(tzinfo=UTC)
    elif next_at is not None and next_at.tzinfo is None:
        next_at = next_at.replace(tzinfo=UTC)
    db.session.execute(
        sa.update(CreditAccount)
        .where(CreditAccount.user_id == user_id)
        .values(expiring=expiring, next_expiry_at=next_at)
    )
