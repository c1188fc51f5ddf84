"""Plan credits a purchase's dispute holds, and where they go when it is won.

Taking back a purchase takes bought credits first and plan credits only as far as the
balance can no longer hold them (remainders.draw_down_beyond). A dispute may give its
credits back, so it records which grants gave; when it is won those credits return to
their grant, or expire if the grant ended meanwhile: plan credits never come back as
lasting ones.
"""

from collections.abc import Callable

import sqlalchemy as sa

from webapp.domain.ledger.entries import lock_account
from webapp.domain.ledger.grants import post_expiry
from webapp.domain.ledger.remainders import give_back, plan_remainders
from webapp.domain.sql import locked
from webapp.extensions import db
from webapp.models import CreditGrant


def drawn_by(user_id: int, posting: Callable[[], object]) -> list[list[int]]:
    """Run `posting` (a purchase's dispute taking its credits back) with the account
    locked; returns [grant id, credits] for each plan grant that gave to it. Joins the
    caller's transaction, which holds the purchase's row lock (refunds lock in that order)."""
    lock_account(user_id)
    before = plan_remainders(user_id)
    posting()
    if not before:
        return []
    after = plan_remainders(user_id)
    return [
        [grant_id, held - after.get(grant_id, 0)]
        for grant_id, held in sorted(before.items())
        if held > after.get(grant_id, 0)
    ]


def give_back_won(taken: list[list[int]], balance: int) -> None:
    """A won purchase dispute, whose `balance` has its credits back: the plan credits its
    take drew (`drawn_by`'s [grant id, credits]) go back to their grant, to expire with it; a
    grant that ended while the dispute held them gets nothing, and they expire now, as
    they would have then. Joins the caller's transaction."""
    for grant_id, credits in taken:
        grant = db.session.scalars(
            locked(sa.select(CreditGrant).where(CreditGrant.id == grant_id))
        ).one()
        if grant.expired_at is None:
            give_back(grant, credits, balance)
            continue
        balance = post_expiry(grant, credits)
