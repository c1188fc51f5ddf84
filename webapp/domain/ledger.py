"""The only code that writes ledger rows or changes balances; every public call is one transaction."""

import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from webapp.domain import clock, events, notices
from webapp.domain.errors import (
    InsufficientCreditsError,
    InvalidAmountError,
    PurchaseNotSettledError,
)
from webapp.domain.pricing import format_money
from webapp.domain.transaction import atomic
from webapp.extensions import db
from webapp.models import (
    CreditAccount,
    CreditGrant,
    Dispute,
    EntryKind,
    LedgerEntry,
    Purchase,
    PurchaseStatus,
)
from webapp.models.types import UTCDateTime, utcnow

log = logging.getLogger(__name__)

# Which running total on the account a kind of entry moves, besides the balance.
_TOTAL_FOR_KIND = {EntryKind.PURCHASE: "purchased", EntryKind.GRANT: "granted",
                   EntryKind.USAGE: "used"}


class Fulfilment(StrEnum):
    CREDITED = "credited"
    ALREADY_CREDITED = "already_credited"
    PROCESSING = "processing"
    MISMATCH = "mismatch"
    NOT_PAID = "not_paid"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class FulfilmentResult:
    """What fulfilment did. `purchase` is loaded only on the slow (locked) path."""

    outcome: Fulfilment
    purchase: Purchase | None = None
    purchase_id: int | None = None

    def __post_init__(self):
        if self.purchase is not None and self.purchase_id is None:
            object.__setattr__(self, "purchase_id", self.purchase.id)


def open_account(user_id: int) -> None:
    """Create the user's empty credit account (joins the caller's transaction)."""
    db.session.add(CreditAccount(user_id=user_id, balance=0))


def post_entry(user_id: int, credits: int, kind: str, *, allow_negative: bool = True,
               unless_expiring: bool = False, **refs: Any) -> int | None:
    """Move `credits` (signed) on the account and append the ledger row; returns the balance.

    Joins the caller's transaction: the row and the balance commit together or not at
    all. With `allow_negative=False` a debit that would go below zero changes nothing
    and raises InsufficientCreditsError. `refs` are LedgerEntry columns (purchase_id,
    grant_id, actor_id, reference, description). With `unless_expiring`, an account
    holding expiring grants (or failing the balance check) changes nothing and the call
    returns None instead of raising: the caller then takes the grant-aware path.
    """
    total = _TOTAL_FOR_KIND.get(kind)
    params = {"b_user_id": user_id, "b_credits": credits, "b_magnitude": abs(credits),
              "b_now": utcnow(), "b_kind": kind, **{f"b_{name}": v for name, v in refs.items()}}
    if db.session.get_bind().dialect.name == "postgresql":
        balance = db.session.execute(
            _update_and_insert(total, allow_negative, unless_expiring, tuple(sorted(refs))), params
        ).scalar_one_or_none()
    else:
        balance = db.session.execute(_balance_update(total, allow_negative, unless_expiring),
                                     params).scalar_one_or_none()
        if balance is not None:
            db.session.execute(_LEDGER_INSERT, {
                "user_id": user_id, "kind": kind, "credits": credits, "balance_after": balance,
                "created_at": params["b_now"], **refs})
    if balance is None and unless_expiring:
        return None
    if balance is None:
        raise InsufficientCreditsError(current_balance(user_id))
    if credits < 0:
        notices.balance_fell(user_id, balance, -credits)
    return balance


# Built once: a prebuilt statement's cache key is memoised, so every webhook and API debit
# skips constructing and hashing these statements again.
_LEDGER_INSERT = sa.insert(LedgerEntry.__table__)


@functools.cache
def _balance_update(total: str | None, allow_negative: bool,
                    unless_expiring: bool = False) -> sa.Update:
    """UPDATE the account by :b_credits (and a running total by :b_magnitude) RETURNING it."""
    account = CreditAccount.__table__.c
    credits = sa.bindparam("b_credits", type_=account.balance.type)
    values = {"balance": account.balance + credits,
              "updated_at": sa.bindparam("b_now", type_=account.updated_at.type)}
    if total:
        values[total] = account[total] + sa.bindparam("b_magnitude", type_=account.balance.type)
    update = sa.update(CreditAccount.__table__).where(
        account.user_id == sa.bindparam("b_user_id", type_=account.user_id.type))
    if not allow_negative:
        update = update.where(account.balance + credits >= 0)
    if unless_expiring:
        update = update.where(account.next_expiry_at.is_(None))
    return update.values(values).returning(account.balance)


@functools.cache
def _update_and_insert(total: str | None, allow_negative: bool, unless_expiring: bool,
                       ref_names: tuple[str, ...]) -> sa.Insert:
    """PostgreSQL: the balance UPDATE and the ledger INSERT in one statement (one round
    trip): WITH moved AS (UPDATE ... RETURNING balance) INSERT ... SELECT FROM moved.
    When the UPDATE matches nothing (a short balance), nothing is inserted either."""
    moved = _balance_update(total, allow_negative, unless_expiring).cte("moved")
    ledger = LedgerEntry.__table__.c
    names = ("user_id", "kind", "credits", "balance_after", "created_at", *ref_names)
    row = sa.select(*(
        moved.c.balance if name == "balance_after"
        else sa.bindparam("b_now" if name == "created_at" else f"b_{name}", type_=ledger[name].type)
        for name in names))
    return (sa.insert(LedgerEntry.__table__).from_select(names, row).add_cte(moved)
            .returning(ledger.balance_after))


def current_balance(user_id: int) -> int:
    return db.session.scalar(
        sa.select(CreditAccount.balance).where(CreditAccount.user_id == user_id)) or 0


_PURCHASE_BY_SESSION = sa.select(Purchase).where(
    Purchase.stripe_checkout_session_id == sa.bindparam("session_id")).with_for_update()


def _locked_purchase_for_session(session: Mapping[str, Any]) -> Purchase | None:
    """The purchase behind a Checkout Session, row-locked until the transaction ends.

    Found by session id; a session whose id was never stored (the app stopped between
    creating it and saving the id) is matched through its metadata instead.
    """
    purchase = db.session.scalars(_PURCHASE_BY_SESSION, {"session_id": session["id"]},
                                  execution_options={"populate_existing": True}).first()
    if purchase is not None:
        return purchase
    metadata = session.get("metadata") or {}
    purchase_id, user_id = metadata.get("purchase_id"), metadata.get("user_id")
    if not (str(purchase_id).isdigit() and str(user_id).isdigit()):
        return None
    # No "session id IS NULL" in the WHERE: a concurrent handler may set it while we wait
    # for the lock, and PostgreSQL would then skip the row instead of returning it.
    by_metadata = sa.select(Purchase).where(
        Purchase.id == int(purchase_id), Purchase.user_id == int(user_id))
    purchase = db.session.scalars(
        by_metadata.with_for_update().execution_options(populate_existing=True)).first()
    if purchase is None or purchase.stripe_checkout_session_id not in (None, session["id"]):
        return None
    purchase.stripe_checkout_session_id = session["id"]
    return purchase


def _mismatch(purchase: Purchase, session: Mapping[str, Any]) -> str | None:
    amount, currency = session.get("amount_total"), (session.get("currency") or "").lower()
    if amount != purchase.amount_cents or currency != purchase.currency:
        return (f"Stripe reported {amount} {currency or '?'} but the purchase was "
                f"recorded at {purchase.amount_cents} {purchase.currency}")
    return None


def fulfil_checkout_session(session: Mapping[str, Any]) -> FulfilmentResult:
    """Credit the purchase behind a Checkout Session at most once; commits.

    `session` is the Checkout Session as Stripe reports it (webhook, success page or
    reconcile). The credits are those recorded when the purchase was created. An
    unpaid completed session (a delayed method) marks the purchase processing; a
    different amount or currency credits nothing and flags the purchase for review.
    """
    with atomic():
        paid = _mark_paid_if_payable(session)
        if paid is not None:
            _post_purchase_credit(paid.id, paid.user_id, paid.credits, session["id"])
            return FulfilmentResult(Fulfilment.CREDITED, purchase_id=paid.id)
        purchase = _locked_purchase_for_session(session)
        if purchase is None:
            return FulfilmentResult(Fulfilment.UNKNOWN)
        if purchase.credited_at is not None:
            return FulfilmentResult(Fulfilment.ALREADY_CREDITED, purchase)
        if purchase.status == PurchaseStatus.NEEDS_REVIEW:
            return FulfilmentResult(Fulfilment.MISMATCH, purchase)
        reason = _mismatch(purchase, session)
        if reason:
            _set_status(purchase, PurchaseStatus.NEEDS_REVIEW, review_reason=reason)
            log.warning("purchase %s needs review: %s", purchase.id, reason)
            return FulfilmentResult(Fulfilment.MISMATCH, purchase)
        payment_status = session.get("payment_status")
        if payment_status not in ("paid", "no_payment_required"):
            if session.get("status") == "complete" and purchase.status == PurchaseStatus.PENDING:
                _set_status(purchase, PurchaseStatus.PROCESSING)
                return FulfilmentResult(Fulfilment.PROCESSING, purchase)
            return FulfilmentResult(Fulfilment.NOT_PAID, purchase)
        _credit_purchase(purchase, session)
        return FulfilmentResult(Fulfilment.CREDITED, purchase)


def _credit_purchase(purchase: Purchase, session: Mapping[str, Any]) -> None:
    now = utcnow()
    _set_status(purchase, PurchaseStatus.PAID, credited_at=now,
                stripe_payment_intent_id=_id_of(session.get("payment_intent")))
    db.session.flush()
    _post_purchase_credit(purchase.id, purchase.user_id, purchase.credits, session["id"])


def _post_purchase_credit(purchase_id: int, user_id: int, credits: int, session_id: str) -> None:
    post_entry(user_id, credits, EntryKind.PURCHASE, purchase_id=purchase_id,
               reference=session_id, description=f"Bought {credits:,} credits")
    notices.purchase_credited(purchase_id, user_id)


# The usual delivery in one statement: the conditional UPDATE takes the row lock and
# re-checks its conditions after any wait, so it credits exactly when the locked checks in
# fulfil_checkout_session would; every other case matches no row and goes through those.
# Core, not the ORM: this runs once per delivery and the ORM's bookkeeping would double it.
_purchases = Purchase.__table__.c
_MARK_PAID = (
    sa.update(Purchase.__table__)
    .where(_purchases.stripe_checkout_session_id == sa.bindparam("b_session_id"),
           _purchases.credited_at.is_(None),
           _purchases.status != PurchaseStatus.NEEDS_REVIEW,
           _purchases.amount_cents == sa.bindparam("b_amount", type_=sa.BigInteger),
           _purchases.currency == sa.bindparam("b_currency", type_=sa.String))
    .values(status=PurchaseStatus.PAID,
            credited_at=sa.bindparam("b_now", type_=_purchases.credited_at.type),
            updated_at=sa.bindparam("b_now", type_=_purchases.updated_at.type),
            stripe_payment_intent_id=sa.func.coalesce(
                sa.bindparam("b_payment_intent", type_=sa.String),
                _purchases.stripe_payment_intent_id))
    .returning(_purchases.id, _purchases.user_id, _purchases.credits)
)


def _mark_paid_if_payable(session: Mapping[str, Any]) -> sa.Row | None:
    """(id, user_id, credits) of the purchase this paid session has just marked paid."""
    amount = session.get("amount_total")
    if (session.get("payment_status") not in ("paid", "no_payment_required")
            or not isinstance(amount, int) or not session.get("id")):
        return None
    return db.session.execute(_MARK_PAID, {
        "b_session_id": session["id"], "b_amount": amount,
        "b_currency": (session.get("currency") or "").lower(), "b_now": utcnow(),
        "b_payment_intent": _id_of(session.get("payment_intent"))}).first()


# PostgreSQL: the usual delivery (a paid session for a payable purchase) claims its event,
# marks the purchase paid, moves the balance and writes the entry in ONE statement. Its
# conditions are those of _MARK_PAID; row locks and re-checks work as in separate
# statements. Anything else leaves the event claimed and takes the ordinary path.
_FULFIL_CLAIMING = sa.text(
    "WITH claim AS (" + events.CLAIM_SQL + "),"
    " paid AS (UPDATE purchases SET status = 'paid', credited_at = :now, updated_at = :now,"
    "  stripe_payment_intent_id = COALESCE(CAST(:payment_intent AS VARCHAR),"
    "                                      stripe_payment_intent_id)"
    "  WHERE stripe_checkout_session_id = :session_id AND credited_at IS NULL"
    "  AND status <> 'needs_review' AND amount_cents = :amount AND currency = :currency"
    "  AND EXISTS (SELECT 1 FROM claim)"
    "  AND EXISTS (SELECT 1 FROM credit_accounts WHERE user_id = purchases.user_id)"
    "  RETURNING id, user_id, credits),"
    " moved AS (UPDATE credit_accounts SET balance = credit_accounts.balance + paid.credits,"
    "  purchased = credit_accounts.purchased + paid.credits, updated_at = :now"
    "  FROM paid WHERE credit_accounts.user_id = paid.user_id"
    "  RETURNING credit_accounts.balance, paid.id AS purchase_id, paid.user_id, paid.credits),"
    " entry AS (INSERT INTO ledger_entries (user_id, kind, credits, balance_after,"
    "  purchase_id, reference, description, created_at)"
    "  SELECT user_id, 'purchase', credits, balance, purchase_id, :session_id,"
    "  'Bought ' || to_char(credits, 'FM999,999,999,999,990') || ' credits', :now"
    "  FROM moved RETURNING purchase_id)"
    " SELECT EXISTS (SELECT 1 FROM claim) AS claimed, (SELECT purchase_id FROM entry)"
).bindparams(*events.CLAIM_TYPES, sa.bindparam("now", type_=UTCDateTime))


def fulfil_paid_session_claiming(session: Mapping[str, Any],
                                 claim: Mapping[str, Any]) -> tuple[bool, int | None]:
    """PostgreSQL: claim the event (`claim` = events.claim_params) and credit a paid session.

    Returns (claimed, purchase_id credited or None), in the caller's transaction. Not
    claimed: the event was handled before. Claimed but nothing credited: the caller runs
    the ordinary handler (fulfil_checkout_session), which sorts out why.
    """
    amount = session.get("amount_total")
    # Straight on the session's connection: a text statement needs none of the ORM's work.
    row = db.session.connection().execute(_FULFIL_CLAIMING, {
        **claim, "session_id": session["id"], "now": utcnow(),
        "amount": amount if isinstance(amount, int) else -1,
        "currency": (session.get("currency") or "").lower(),
        "payment_intent": _id_of(session.get("payment_intent"))}).one()
    if row[1] is not None:
        notices.purchase_credited(row[1], None)
    return bool(row[0]), row[1]


def _set_status(purchase: Purchase, status: str, **fields: Any) -> None:
    purchase.status = status
    purchase.updated_at = utcnow()
    for name, value in fields.items():
        if value is not None:
            setattr(purchase, name, value)


def _id_of(value: Any) -> str | None:
    """Stripe sends related objects as an id or, when expanded, as the object."""
    if isinstance(value, Mapping):
        return value.get("id")
    return value


def mark_session_failed(session: Mapping[str, Any]) -> FulfilmentResult:
    """A delayed payment failed: the purchase is failed, nothing is credited; commits."""
    return _mark_uncredited(session, PurchaseStatus.FAILED,
                            (PurchaseStatus.PENDING, PurchaseStatus.PROCESSING))


def mark_session_expired(session: Mapping[str, Any]) -> FulfilmentResult:
    """The Checkout Session expired unpaid: an open purchase is expired; commits."""
    return _mark_uncredited(session, PurchaseStatus.EXPIRED, (PurchaseStatus.PENDING,))


def _mark_uncredited(session: Mapping[str, Any], status: str,
                     from_states: tuple[str, ...]) -> FulfilmentResult:
    with atomic():
        purchase = _locked_purchase_for_session(session)
        if purchase is None:
            return FulfilmentResult(Fulfilment.UNKNOWN)
        if purchase.credited_at is None and purchase.status in from_states:
            _set_status(purchase, status)
        return FulfilmentResult(Fulfilment.NOT_PAID, purchase)


def adjust(user_id: int, credits: int, reason: str, *, actor_id: int | None = None) -> int:
    """Add (or with a negative number, remove) credits by hand; returns the balance; commits.

    `reason` is required. A removal never takes the balance below zero
    (InsufficientCreditsError); `actor_id` is the admin who did it, None for operators.
    """
    if credits == 0 or not reason.strip():
        raise InvalidAmountError("An adjustment needs a non-zero number of credits and a reason.")
    with atomic():
        return post_entry(user_id, credits, EntryKind.ADJUSTMENT, allow_negative=False,
                          actor_id=actor_id, description=reason.strip()[:500])


def debit_usage(user_id: int, credits: int, description: str, *,
                reference: str | None = None) -> int:
    """Spend `credits` (> 0) for usage; returns the new balance; commits (or joins).

    The balance never goes below zero, however many debits run at once; a short
    balance raises InsufficientCreditsError and changes nothing. An account without
    expiring grants takes one conditional UPDATE and one INSERT. Otherwise its due
    grants expire first (committed on their own when not nested), then the debit
    draws expiring grants down, soonest expiry first, before purchased credits.
    """
    if credits <= 0:
        raise InvalidAmountError("credits must be an integer of at least 1")
    refs = {"reference": reference, "description": description[:500] or None}
    with atomic():
        balance = post_entry(user_id, -credits, EntryKind.USAGE, allow_negative=False,
                             unless_expiring=True, **refs)
    if balance is not None:
        return balance
    expire_account_grants(user_id)
    with atomic():
        _lock_account(user_id)
        _expire_due(user_id, clock.now())  # time moved on since the commit above
        balance = post_entry(user_id, -credits, EntryKind.USAGE, allow_negative=False, **refs)
        _draw_down(user_id, credits)
        return balance


# --- Refunds and disputes
#
# Events that take credits back for a purchase whose completion has not arrived yet
# (not credited, not under review) raise PurchaseNotSettledError: the webhook answers 500 and
# Stripe delivers the event again later (for three days, and reconcile or the success
# page credit the purchase meanwhile). We chose that over parking the event on the
# purchase because the retried event then runs through the one code path every other
# event uses, nothing has to remember to replay parked events, and the failed delivery
# is visible on /admin/events until it succeeds.

# Dispute statuses after which the dispute no longer holds the purchase's credits.
RETURNED_DISPUTE_STATUSES = ("won", "warning_closed")


def _locked_purchase(purchase_id: int) -> Purchase:
    """The purchase, row-locked and re-read (earlier reads in the session may be stale)."""
    return db.session.scalars(
        sa.select(Purchase).where(Purchase.id == purchase_id).with_for_update().execution_options(populate_existing=True)
        .execution_options(populate_existing=True)).one()


def _credits_for(purchase: Purchase, amount_cents: int) -> int:
    """floor(credits × amount ÷ amount_total); all the credits when the whole amount."""
    if amount_cents >= purchase.amount_cents:
        return purchase.credits
    return purchase.credits * max(amount_cents, 0) // purchase.amount_cents


def _credits_left(purchase: Purchase) -> int:
    return purchase.credits - purchase.credits_refunded - purchase.credits_disputed


def _settled_or_raise(purchase: Purchase, charge_id: str | None,
                      payment_intent_id: str | None) -> bool:
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
    if purchase.credited_at is not None:
        return True
    if purchase.status != PurchaseStatus.NEEDS_REVIEW:
        raise PurchaseNotSettledError(
            f"purchase {purchase.id} is not credited yet; Stripe will retry this event")
    return False


def _refresh_money_status(purchase: Purchase) -> None:
    """paid / partially_refunded / refunded, or disputed while a dispute holds credits."""
    db.session.flush()
    holding = db.session.scalar(sa.select(sa.func.count()).select_from(Dispute).where(
        Dispute.purchase_id == purchase.id,
        Dispute.status.not_in(RETURNED_DISPUTE_STATUSES)))
    if holding:
        status = PurchaseStatus.DISPUTED
    elif purchase.amount_refunded_cents >= purchase.amount_cents:
        status = PurchaseStatus.REFUNDED
    elif purchase.amount_refunded_cents > 0:
        status = PurchaseStatus.PARTIALLY_REFUNDED
    else:
        status = PurchaseStatus.PAID
    _set_status(purchase, status)


def apply_refund(purchase_id: int, charge: Mapping[str, Any]) -> int:
    """Take back credits for the charge's cumulative refunds; returns credits taken; commits.

    `charge` is the Charge of a `charge.refunded` event (`amount_refunded` in minor
    units, cumulative). Refunds in total take floor(credits × amount_refunded ÷
    amount_total), all when fully refunded; this call takes only the difference from
    what refunds already took, never more than is left of the purchase's credits, so
    replayed and stale (smaller) events take nothing. The balance may go negative.
    """
    with atomic():
        purchase = _locked_purchase(purchase_id)
        refunded = int(charge.get("amount_refunded") or 0)
        if charge.get("refunded"):
            refunded = max(refunded, purchase.amount_cents)
        credited = _settled_or_raise(purchase, charge.get("id"),
                                     _id_of(charge.get("payment_intent")))
        if refunded > purchase.amount_refunded_cents:
            purchase.amount_refunded_cents = refunded
        if not credited:
            return 0
        take = _take_refunds_due(purchase, charge.get("id"))
        _refresh_money_status(purchase)
        return take


def _take_refunds_due(purchase: Purchase, reference: str | None) -> int:
    """Take what the cumulative refunds are owed and not taken yet, within what is left.

    Credits an open dispute holds are not left to take; when that dispute is won and
    gives them back, this runs again so the refunds still get their share.
    """
    due = _credits_for(purchase, purchase.amount_refunded_cents) - purchase.credits_refunded
    take = max(0, min(due, _credits_left(purchase)))
    if take:
        purchase.credits_refunded += take
        refunded = format_money(purchase.amount_refunded_cents, purchase.currency)
        paid = format_money(purchase.amount_cents, purchase.currency)
        post_entry(purchase.user_id, -take, EntryKind.REFUND, allow_negative=True,
                   purchase_id=purchase.id, reference=reference,
                   description=f"Refund: {refunded} of your {paid} payment returned to you")
        notices.refund_taken(purchase.id, purchase.user_id, take, purchase.amount_refunded_cents)
    return take


def _dispute_row(purchase: Purchase, dispute: Mapping[str, Any], credited: bool) -> Dispute:
    """The purchase's row for this dispute, created (taking its credits) on first sight.

    A dispute first seen already won takes nothing, so a `closed` event arriving
    before `created` leaves the same balance as the other order.
    """
    row = db.session.scalars(sa.select(Dispute).where(
        Dispute.stripe_dispute_id == dispute["id"])
        .execution_options(populate_existing=True)).first()
    if row is not None:
        return row
    amount = int(dispute.get("amount") or 0)
    take = 0
    if credited and dispute.get("status") not in RETURNED_DISPUTE_STATUSES:
        take = max(0, min(_credits_for(purchase, amount), _credits_left(purchase)))
    row = Dispute(stripe_dispute_id=dispute["id"], purchase_id=purchase.id,
                  amount_cents=amount, credits_taken=take,
                  status=str(dispute.get("status") or "needs_response")[:40])
    db.session.add(row)
    if take:
        purchase.credits_disputed += take
        post_entry(purchase.user_id, -take, EntryKind.DISPUTE, allow_negative=True,
                   purchase_id=purchase.id, reference=dispute["id"],
                   description="Payment disputed with your bank: its credits are held "
                               "until the dispute is settled")
        notices.dispute_opened(purchase.id, purchase.user_id, dispute["id"], take)
    return row


def open_dispute(purchase_id: int, dispute: Mapping[str, Any]) -> int:
    """Take back the disputed credits once per dispute; returns credits taken; commits.

    `dispute` is the Dispute of `charge.dispute.created` (`amount` in minor units).
    It takes floor(credits × amount ÷ amount_total), less what refunds already took
    (never more than is left of the purchase's credits). A replay takes nothing.
    """
    with atomic():
        purchase = _locked_purchase(purchase_id)
        credited = _settled_or_raise(purchase, _id_of(dispute.get("charge")),
                                     _id_of(dispute.get("payment_intent")))
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
        purchase = _locked_purchase(purchase_id)
        credited = _settled_or_raise(purchase, _id_of(dispute.get("charge")),
                                     _id_of(dispute.get("payment_intent")))
        row = _dispute_row(purchase, dispute, credited)
        if row.closed_at is not None:
            return 0
        row.status = str(dispute.get("status") or row.status)[:40]
        row.closed_at = utcnow()
        given = row.credits_taken if row.status in RETURNED_DISPUTE_STATUSES else 0
        if given:
            purchase.credits_disputed -= given
            post_entry(purchase.user_id, given, EntryKind.DISPUTE_WON, allow_negative=True,
                       purchase_id=purchase.id, reference=dispute["id"],
                       description="Dispute settled: the held credits are yours again")
            _take_refunds_due(purchase, purchase.stripe_charge_id)
        if credited:
            _refresh_money_status(purchase)
            notices.dispute_closed(purchase.id, purchase.user_id, dispute["id"], row.status, given)
        return given


# --- subscription grants and expiry


def grant_plan_credits(user_id: int, credits: int, *, invoice_id: str, plan_code: str,
                       subscription_id: int | None, expires_at: datetime | None) -> int | None:
    """Grant a paid subscription invoice's `credits` once per invoice id; commits (or joins).

    `expires_at` is None for plans that roll over. Returns the new grant's id, or None
    when this invoice was granted before (then nothing changes).
    """
    with atomic():
        grant_id = db.session.execute(_insert_ignoring_duplicates(CreditGrant, {
            "user_id": user_id, "subscription_id": subscription_id,
            "stripe_invoice_id": invoice_id, "plan_code": plan_code, "credits": credits,
            "remaining": credits, "expires_at": expires_at, "created_at": utcnow(),
        }, CreditGrant.stripe_invoice_id).returning(CreditGrant.id)).scalar_one_or_none()
        if grant_id is None:
            return None
        post_entry(user_id, credits, EntryKind.GRANT, grant_id=grant_id, reference=invoice_id,
                   description=f"{plan_code} plan: {credits:,} credits")
        if expires_at is not None:
            _refresh_expiry_summary(user_id)
        return grant_id


def expire_account_grants(user_id: int) -> int:
    """Expire the account's grants whose time has come; returns credits expired; commits.

    One `expiry` ledger row per expired remainder. The account row is locked first, so
    debits and other expiry runs (other hosts) wait and then find nothing left to do.
    """
    with atomic():
        if _lock_account(user_id) is None:
            return 0
        return _expire_due(user_id, clock.now())


def expire_due_grants() -> list[tuple[int, int]]:
    """Expire every account's due grants, one transaction per account (each commits).

    Returns (user_id, credits expired) for each account looked at.
    """
    now = clock.now()
    user_ids = db.session.scalars(
        sa.select(CreditGrant.user_id).distinct()
        .where(CreditGrant.expired_at.is_(None), CreditGrant.expires_at <= now)).all()
    db.session.rollback()  # end the read transaction before locking accounts one by one
    return [(user_id, expire_account_grants(user_id)) for user_id in user_ids]


def _insert_ignoring_duplicates(model, values: dict[str, Any], unique_column):
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(model).values(values).on_conflict_do_nothing(index_elements=[unique_column])


def _lock_account(user_id: int) -> CreditAccount | None:
    return db.session.scalars(sa.select(CreditAccount).where(CreditAccount.user_id == user_id)
                              .with_for_update().execution_options(populate_existing=True)).first()


def _open_expiring_grants(user_id: int):
    """Grants that still expire some day and are not expired yet, soonest first."""
    return (sa.select(CreditGrant)
            .where(CreditGrant.user_id == user_id, CreditGrant.expired_at.is_(None),
                   CreditGrant.expires_at.is_not(None))
            .order_by(CreditGrant.expires_at, CreditGrant.id))


def _expire_due(user_id: int, now: datetime) -> int:
    """Expire due grants of an account the caller has locked; returns credits expired."""
    due = db.session.scalars(_open_expiring_grants(user_id)
                             .where(CreditGrant.expires_at <= now).with_for_update().execution_options(populate_existing=True)
                             .execution_options(populate_existing=True)).all()
    if not due:
        return 0
    balance = current_balance(user_id)
    expired = 0
    for grant in due:
        # A refund or dispute may have taken credits already; expiry never goes below zero.
        amount = max(0, min(grant.remaining, balance))
        grant.remaining, grant.expired_at = 0, now
        if amount:
            balance = post_entry(user_id, -amount, EntryKind.EXPIRY, grant_id=grant.id,
                                 reference=grant.stripe_invoice_id,
                                 description=f"{grant.plan_code} plan credits expired")
            expired += amount
    _refresh_expiry_summary(user_id)
    return expired


def _draw_down(user_id: int, credits: int) -> None:
    """Take `credits` just spent from the expiring grants, soonest expiry first."""
    left = credits
    grants = db.session.scalars(_open_expiring_grants(user_id)
                                .where(CreditGrant.remaining > 0).with_for_update().execution_options(populate_existing=True)
                                .execution_options(populate_existing=True))
    for grant in grants:
        take = min(left, grant.remaining)
        grant.remaining -= take
        left -= take
        if left == 0:
            break
    _refresh_expiry_summary(user_id)


def _refresh_expiry_summary(user_id: int) -> None:
    """Recompute the account's `expiring` and `next_expiry_at` from its open grants."""
    open_grants = _open_expiring_grants(user_id).where(CreditGrant.remaining > 0).subquery()
    expiring, next_at = db.session.execute(sa.select(
        sa.func.coalesce(sa.func.sum(open_grants.c.remaining), 0),
        sa.func.min(open_grants.c.expires_at))).one()
    if isinstance(next_at, str):  # SQLite returns min() of a datetime column as text
        next_at = datetime.fromisoformat(next_at).replace(tzinfo=UTC)
    elif next_at is not None and next_at.tzinfo is None:
        next_at = next_at.replace(tzinfo=UTC)
    db.session.execute(sa.update(CreditAccount).where(CreditAccount.user_id == user_id)
                       .values(expiring=expiring, next_expiry_at=next_at))
