"""Refunds and disputes: credits taken back in proportion to the money, cumulatively, once.

The same rules serve a purchase and a plan grant (the credits a subscription invoice
paid for): both carry credits, total_cents (what the charge was for) and the cumulative amount_refunded_cents,
credits_refunded and credits_disputed, so one piece of arithmetic covers both.
"""

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from webapp.domain import clock, notices
from webapp.domain.errors import PurchaseNotSettledError
from webapp.domain.ledger.entries import post_entry
from webapp.domain.ledger.grants import expired_credits, lock_with_due_settled
from webapp.domain.ledger.purchases import refunded_in_review, set_status
from webapp.domain.ledger.remainders import give_back
from webapp.domain.pricing import format_money
from webapp.domain.sql import fresh, locked
from webapp.domain.stripe_objects import id_of
from webapp.domain.transaction import atomic
from webapp.extensions import db
from webapp.models import CreditGrant, Dispute, EntryKind, Purchase, PurchaseStatus
from webapp.models.types import utcnow

# # Events that take credits back for a purchase whose completion has not arrived yet
# (not credited, not under review) raise PurchaseNotSettledError: the webhook answers 500 and
# Stripe delivers the event again later (for three days, and reconcile or the success
# page credit the purchase meanwhile). We chose that over parking the event on the
# purchase because the retried event then runs through the one code path every other
# event uses, nothing has to remember to replay parked events, and the failed delivery
# is visible on /admin/events until it succeeds.

# Dispute statuses after which the dispute no longer holds the purchase's credits.
RETURNED_DISPUTE_STATUSES = ("won", "warning_closed")

# What a refund or dispute takes credits back from: a purchase, or a plan grant.
Paid = Purchase | CreditGrant

# Every take-back first settles what is due on the account (grants past their expiry are
# written off, due holds stop counting), as debits do: the credits it takes and gives back
# are the ones the account has at that moment, whether or not the expiry job has run yet.


def _locked_purchase(purchase_id: int) -> Purchase:
    """The purchase, row-locked and re-read (earlier reads in the session may be stale),
    then its account with what is due settled (as fulfilment, purchase before account)."""
    purchase = db.session.scalars(
        locked(sa.select(Purchase).where(Purchase.id == purchase_id))
    ).one()
    lock_with_due_settled(purchase.user_id, clock.now())
    return purchase


def _locked_grant(grant_id: int) -> CreditGrant:
    """The grant, row-locked, after its account: debits lock the account and then draw
    grants down, so taking the locks in that same order never deadlocks with them."""
    user_id = db.session.scalar(sa.select(CreditGrant.user_id).where(CreditGrant.id == grant_id))
    lock_with_due_settled(user_id, clock.now())
    return db.session.scalars(
        locked(sa.select(CreditGrant).where(CreditGrant.id == grant_id))
    ).one()


def _refs(paid: Paid) -> dict[str, int]:
    """The ledger and dispute columns naming what was paid for."""
    return {"purchase_id": paid.id} if isinstance(paid, Purchase) else {"grant_id": paid.id}


def _credits_for(purchase: Paid, amount_cents: int) -> int:
    """floor(credits × amount ÷ amount_total); all the credits when the whole amount.

    amount_total is what the charge was for: the recorded amount plus any tax (a grant:
    what its invoice charged).
    """
    if amount_cents >= purchase.total_cents:
        return purchase.credits
    return purchase.credits * max(amount_cents, 0) // purchase.total_cents


def _refunds_owed(purchase: Paid) -> int:
    """Credits the cumulative refunds are owed and have not taken yet."""
    return max(
        0, _credits_for(purchase, purchase.amount_refunded_cents) - purchase.credits_refunded
    )


def _to_take(purchase: Paid, claim: int, *, new_dispute: bool = False) -> int:
    """How much of `claim` (credits a refund or a new dispute is owed, not taken yet) to
    take now: within what is left and, once a grant's credits expired, only beyond them.

    Before its expiry, a grant's take-back draws the grant's own remainder first, so
    expiry then removes only what the take-backs left. Once expired, that remainder is
    gone already: it meets the claims still owed (this one, the refunds', the held
    disputes') first, and either order of the same events ends with the same balance.
    """
    expired = expired_credits(purchase) if isinstance(purchase, CreditGrant) else 0
    # Left to take: the credits given, less what refunds, disputes and expiry removed.
    left = purchase.credits - purchase.credits_refunded - purchase.credits_disputed - expired
    take = min(claim, max(0, left))
    if expired:
        owed = _refunds_owed(purchase) + _disputes_owed(purchase)
        take = min(take, owed + (claim if new_dispute else 0) - expired)
    return max(0, take)


def _disputes_owed(grant: CreditGrant) -> int:
    """Credits the grant's disputes that still hold (not won) claim and did not take."""
    disputes = db.session.execute(
        sa.select(Dispute.amount_cents, Dispute.credits_taken).where(
            Dispute.grant_id == grant.id, Dispute.status.not_in(RETURNED_DISPUTE_STATUSES)
        )
    )
    return sum(max(0, _credits_for(grant, amount) - taken) for amount, taken in disputes)


def _settled_or_raise(purchase: Paid, charge_id: str | None, payment_intent_id: str | None) -> bool:
    """Link the Stripe ids; True when the purchase was credited and credits can be taken.

    A purchase under review (amount or currency mismatch) is never credited by events,
    so it takes nothing; any other uncredited purchase (pending, processing, or even
    failed or expired when events arrive out of order) raises PurchaseNotSettledError,
    so the event is retried rather than lost.
    """
    if charge_id and not purchase.stripe_charge_id:
        purchase.stripe_charge_id = charge_id
    if payment_intent_id and not purchase.stripe_payment_intent_id:
        purchase.stripe_payment_intent_id = payment_intent_id
    if isinstance(purchase, CreditGrant):
        return True  # a grant exists once granted (one held for review has 0 credits)
    if purchase.credited_at is not None:
        return True
    if purchase.status != PurchaseStatus.NEEDS_REVIEW and not refunded_in_review(purchase):
        raise PurchaseNotSettledError(
            f"purchase {purchase.id} is not credited yet; Stripe will retry this event"
        )
    return False


def _refresh_money_status(purchase: Paid) -> None:
    """paid / partially_refunded / refunded, or disputed while a dispute holds credits."""
    if not isinstance(purchase, Purchase):
        return  # grants have no status of their own
    db.session.flush()
    holding = db.session.scalar(
        sa.select(sa.func.count())
        .select_from(Dispute)
        .where(Dispute.purchase_id == purchase.id, Dispute.status.not_in(RETURNED_DISPUTE_STATUSES))
    )
    if holding:
        status = PurchaseStatus.DISPUTED
    elif purchase.amount_refunded_cents >= purchase.total_cents:
        status = PurchaseStatus.REFUNDED
    elif purchase.amount_refunded_cents > 0:
        status = PurchaseStatus.PARTIALLY_REFUNDED
    else:
        status = PurchaseStatus.PAID
    set_status(purchase, status)


def apply_refund(purchase_id: int, charge: Mapping[str, Any]) -> int:
    """Take back credits for the charge's cumulative refunds; returns credits taken; commits.

    `charge` is the Charge of a `charge.refunded` event (`amount_refunded` in minor
    units, cumulative). Refunds in total take floor(credits × amount_refunded ÷
    amount_total), all when fully refunded; this call takes only the difference from
    what refunds already took, never more than is left of the purchase's credits, so
    replayed and stale (smaller) events take nothing. The balance may go negative.
    """
    with atomic():
        return _apply_refund(_locked_purchase(purchase_id), charge)


def refund_grant(grant_id: int, charge: Mapping[str, Any]) -> int:
    """apply_refund for the plan grant an invoice's charge paid for; commits."""
    with atomic():
        return _apply_refund(_locked_grant(grant_id), charge)


def _apply_refund(purchase: Paid, charge: Mapping[str, Any]) -> int:
    refunded = int(charge.get("amount_refunded") or 0)
    if charge.get("refunded"):
        refunded = max(refunded, purchase.total_cents)
    credited = _settled_or_raise(purchase, charge.get("id"), id_of(charge.get("payment_intent")))
    if refunded > purchase.amount_refunded_cents:
        purchase.amount_refunded_cents = refunded
    if not credited:
        if charge.get("refunded") and purchase.status == PurchaseStatus.NEEDS_REVIEW:
            set_status(purchase, PurchaseStatus.REFUNDED)  # refunded instead of credited
        return 0
    take = _take_refunds_due(purchase, charge.get("id"))
    _refresh_money_status(purchase)
    return take


def _take_refunds_due(purchase: Paid, reference: str | None) -> int:
    """Take what the cumulative refunds are owed and not taken yet, within what is left.

    Credits an open dispute holds are not left to take; when that dispute is won and
    gives them back, this runs again so the refunds still get their share.
    """
    take = _to_take(purchase, _refunds_owed(purchase))
    if take:
        purchase.credits_refunded += take
        refunded = format_money(purchase.amount_refunded_cents, purchase.currency)
        paid = format_money(purchase.total_cents, purchase.currency)
        post_entry(
            purchase.user_id,
            -take,
            EntryKind.REFUND,
            allow_negative=True,
            **_refs(purchase),
            reference=reference,
            description=f"Refund: {refunded} of your {paid} payment returned to you",
        )
        notices.refund_taken(purchase, take)
    return take


def _dispute_row(purchase: Paid, dispute: Mapping[str, Any], credited: bool) -> Dispute:
    """The purchase's row for this dispute, created (taking its credits) on first sight.

    A dispute first seen already won takes nothing, so a `closed` event arriving
    before `created` leaves the same balance as the other order.
    """
    row = db.session.scalars(
        fresh(sa.select(Dispute).where(Dispute.stripe_dispute_id == dispute["id"]))
    ).first()
    if row is not None:
        return row
    row = Dispute(
        stripe_dispute_id=dispute["id"],
        **_refs(purchase),
        amount_cents=int(dispute.get("amount") or 0),
        credits_taken=0,
        status=str(dispute.get("status") or "needs_response")[:40],
    )
    # Its claim is worked out before the row joins the session (a flush would count it
    # among the disputes already owed).
    take = _dispute_claim(purchase, row, new=True) if credited else 0
    db.session.add(row)
    _take_for_dispute(purchase, row, take)
    return row


def _dispute_claim(purchase: Paid, row: Dispute, *, new: bool) -> int:
    """What a dispute still holding can take now: its share, within what is left."""
    if row.status in RETURNED_DISPUTE_STATUSES:
        return 0
    return _to_take(purchase, _credits_for(purchase, row.amount_cents), new_dispute=new)


def _take_for_dispute(purchase: Paid, row: Dispute, take: int) -> None:
    """Take `take` credits for the dispute: its row, the purchase's total, the ledger."""
    if take:
        row.credits_taken += take
        purchase.credits_disputed += take
        post_entry(
            purchase.user_id,
            -take,
            EntryKind.DISPUTE,
            allow_negative=True,
            **_refs(purchase),
            reference=row.stripe_dispute_id,
            description="Payment disputed with your bank: its credits are held "
            "until the dispute is settled",
        )
        notices.dispute_opened(purchase, row.stripe_dispute_id, take)


def take_what_came_before_the_credit(purchase: Purchase) -> int:
    """Right after a late credit (a purchase credited after review): take what the
    refunds and disputes recorded while it was uncredited are owed, as they would have
    taken had it been credited then; joins. Returns the credits taken."""
    before = purchase.credits_refunded + purchase.credits_disputed
    _take_refunds_due(purchase, None)
    waiting = db.session.scalars(
        sa.select(Dispute)
        .where(Dispute.purchase_id == purchase.id, Dispute.credits_taken == 0)
        .order_by(Dispute.id)
    )
    for row in waiting:
        _take_for_dispute(purchase, row, _dispute_claim(purchase, row, new=False))
    _refresh_money_status(purchase)
    return purchase.credits_refunded + purchase.credits_disputed - before


def open_dispute(purchase_id: int, dispute: Mapping[str, Any]) -> int:
    """Take back the disputed credits once per dispute; returns credits taken; commits.

    `dispute` is the Dispute of `charge.dispute.created` (`amount` in minor units).
    It takes floor(credits × amount ÷ amount_total), less what refunds already took
    (never more than is left of the purchase's credits). A replay takes nothing.
    """
    with atomic():
        return _open_dispute(_locked_purchase(purchase_id), dispute)


def open_grant_dispute(grant_id: int, dispute: Mapping[str, Any]) -> int:
    """open_dispute for the plan grant an invoice's charge paid for; commits."""
    with atomic():
        return _open_dispute(_locked_grant(grant_id), dispute)


def _open_dispute(purchase: Paid, dispute: Mapping[str, Any]) -> int:
    credited = _settled_or_raise(
        purchase, id_of(dispute.get("charge")), id_of(dispute.get("payment_intent"))
    )
    before = purchase.credits_disputed
    _dispute_row(purchase, dispute, credited)
    if credited:
        _refresh_money_status(purchase)
    return purchase.credits_disputed - before


def close_dispute(purchase_id: int, dispute: Mapping[str, Any]) -> int:
    """Settle a closed dispute once; returns credits given back; commits.

    Won (or an inquiry closed without a chargeback) gives back what the dispute took,
    as a `dispute_reversal` entry; lost keeps it. A `closed` event arriving before its
    `created` records the dispute first, so either order ends the same.
    """
    with atomic():
        return _close_dispute(_locked_purchase(purchase_id), dispute)


def close_grant_dispute(grant_id: int, dispute: Mapping[str, Any]) -> int:
    """close_dispute for the plan grant an invoice's charge paid for; commits."""
    with atomic():
        return _close_dispute(_locked_grant(grant_id), dispute)


def _close_dispute(purchase: Paid, dispute: Mapping[str, Any]) -> int:
    credited = _settled_or_raise(
        purchase, id_of(dispute.get("charge")), id_of(dispute.get("payment_intent"))
    )
    row = _dispute_row(purchase, dispute, credited)
    if row.closed_at is not None:
        return 0
    row.status = str(dispute.get("status") or row.status)[:40]
    row.closed_at = utcnow()
    given = row.credits_taken if row.status in RETURNED_DISPUTE_STATUSES else 0
    if given:
        purchase.credits_disputed -= given
        balance = post_entry(
            purchase.user_id,
            given,
            EntryKind.DISPUTE_WON,
            allow_negative=True,
            reference=dispute["id"],
            description="Dispute settled: the held credits are yours again",
            **_refs(purchase),
        )
        if isinstance(purchase, CreditGrant):
            give_back(purchase, given, balance)  # they expire with the grant again
        _take_refunds_due(purchase, purchase.stripe_charge_id)
    if credited:
        _refresh_money_status(purchase)
        notices.dispute_closed(purchase, dispute["id"], row.status, given)
    return given
