"""Plan credits a purchase's dispute holds, and where they go when it is won.

Taking back a purchase takes bought credits first and plan credits only as far as the
balance can no longer hold them (remainders.draw_down_beyond). A dispute may give its
credits back, so it records which grants gave; when it is won those credits return to
their grant while it runs, so they still expire with it (give_back_won says what it
cannot settle).
"""

from collections.abc import Callable

import sqlalchemy as sa

from webapp.domain.ledger.entries import lock_account
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
    take drew (`drawn_by`'s [grant id, credits]) go back to their grant while it runs, to
    expire with it, as far as the balance has room (remainders.give_back) and the grant
    has credits its own refunds and disputes have not taken. Joins the caller's
    transaction.

    Known limit: credits held past their grant's end come back lasting, like credits
    the held ones made room for (a new grant paying off the dispute's debt); settling
    those exactly would need each grant to carry what disputes hold of it."""
    for grant_id, credits in taken:
        grant = db.session.scalars(
            locked(sa.select(CreditGrant).where(CreditGrant.id == grant_id))
        ).one()
        if grant.expired_at is not None:
            continue
        kept = grant.credits - grant.credits_refunded - grant.credits_disputed - grant.remaining
        give_back(grant, min(credits, max(0, kept)), balance)
