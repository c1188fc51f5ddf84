"""Auto-recharge in the ledger: the attempt a debit records, and what a charge's outcome does.

A debit (usage, hold capture, expiry) that leaves the balance below the user's
threshold records one attempt, a pending purchase with source `auto_recharge`, in the
debit's own transaction. post_entry calls `after_debit` after moving the balance, so
the account's row lock is held: debits of one account meet here one at a time, and the
unique index "one open attempt per account" backs that up. The worker then charges the
attempt (domain/autorecharge/) and hands Stripe's answer, like the webhook does its
events, to `recharge_outcomes.apply_payment_intent`.
"""

import logging
import secrets
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.dialects import postgresql, sqlite

from webapp.domain import clock, jobs, mailer, pricing
from webapp.domain.errors import InvalidPurchaseError
from webapp.domain.sql import is_postgresql
from webapp.extensions import db
from webapp.models import AutoRecharge, CreditAccount, Purchase, PurchaseSource, PurchaseStatus
from webapp.models.ledger import OPEN_AUTO_RECHARGE

log = logging.getLogger(__name__)

RETRY_AFTER_FAILURE = timedelta(hours=1)
# Statuses whose money counts against the monthly limit (charged, or still may be).
_NOT_CHARGED = (PurchaseStatus.FAILED, PurchaseStatus.EXPIRED)
OPEN_STATUSES = (PurchaseStatus.PENDING, PurchaseStatus.PROCESSING, PurchaseStatus.NEEDS_ACTION)
# Jobs for the worker (domain/jobs.py), recorded in the transaction that causes them.
CHARGE_JOB = "auto_recharge_charge"
CANCEL_JOB = "auto_recharge_cancel_intent"


# --- the trigger (joins the debit's transaction)

_settings = AutoRecharge.__table__.c
_WANTED = sa.select(
    _settings.amount, _settings.monthly_limit_cents, _settings.last_failure_at
).where(
    _settings.user_id == sa.bindparam("user_id"),
    _settings.enabled.is_(True),
    _settings.threshold > sa.bindparam("balance", type_=sa.BigInteger),
)


def after_debit(user_id: int, balance: int) -> int | None:
    """Record an attempt when a debit left `balance` below the threshold; joins.

    Nothing when auto-recharge is off or the balance is not below the threshold, an
    attempt is still open (pending, processing or waiting for the card holder), the last
    one failed less than an hour ago, or this calendar month's (UTC) auto-recharge
    charges plus this one would pass the monthly limit. Returns the new purchase's id.
    """
    wanted = db.session.execute(_WANTED, {"user_id": user_id, "balance": balance}).first()
    if wanted is None:
        return None
    now = clock.now()
    if wanted.last_failure_at is not None and now - wanted.last_failure_at < RETRY_AFTER_FAILURE:
        return None
    if _open_attempt(user_id):
        return None
    try:
        quote = pricing.quote(wanted.amount)
    except InvalidPurchaseError as exc:  # the bounds changed since the settings were saved
        log.warning("auto-recharge for user %s not started: %s", user_id, exc)
        return None
    if charged_this_month(user_id) + quote.amount_cents > monthly_limit(wanted.monthly_limit_cents):
        return None
    recorded = db.session.execute(_insert_attempt(user_id, quote)).first()
    if recorded is None:
        return None
    enqueue_charge(recorded.id, user_id, recorded.stripe_idempotency_key)
    return recorded.id


def set_trigger(user_id: int, threshold: int | None) -> None:
    """Arm (a threshold) or disarm (None) the debit check on the account; joins.

    post_entry reads it back with the balance, so a debit costs no extra statement
    unless it leaves the balance below an armed threshold.
    """
    db.session.execute(
        sa.update(CreditAccount)
        .where(CreditAccount.user_id == user_id)
        .values(auto_recharge_below=threshold)
    )


def _open_attempt(user_id: int) -> bool:
    return db.session.scalar(
        sa.select(
            sa.exists().where(
                Purchase.user_id == user_id,
                Purchase.source == PurchaseSource.AUTO_RECHARGE,
                Purchase.status.in_(OPEN_STATUSES),
            )
        )
    )


def monthly_limit(limit_cents: int | None) -> int:
    if limit_cents is None:
        return current_app.config["AUTO_RECHARGE_MONTHLY_LIMIT"]
    return limit_cents


def month_start():
    return clock.now().replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def charged_this_month(user_id: int) -> int:
    """Money (minor units) of this UTC month's auto-recharges, charged or in flight.

    Each attempt counts in the month it is charged, not the one it was recorded in (one
    recorded 31 Jan 23:59 and charged 1 Feb is February's): an open attempt counts now
    whenever it was recorded; a settled one by when it was credited, or, charged but not
    credited (needs_review), by its last change, never earlier than the charge.
    """
    charged_at = sa.func.coalesce(Purchase.credited_at, Purchase.updated_at)
    return db.session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(Purchase.amount_cents), 0)).where(
            Purchase.user_id == user_id,
            Purchase.source == PurchaseSource.AUTO_RECHARGE,
            Purchase.status.not_in(_NOT_CHARGED),
            sa.or_(Purchase.status.in_(OPEN_STATUSES), charged_at >= month_start()),
        )
    )


def _insert_attempt(user_id: int, quote: pricing.Quote) -> sa.Insert:
    """INSERT the pending purchase unless one is open (the unique partial index)."""
    insert = postgresql.insert if is_postgresql() else sqlite.insert
    now = clock.now()
    values = {
        "user_id": user_id,
        "credits": quote.credits,
        "value_cents": quote.value_cents,
        "fee_cents": quote.fee_cents,
        "amount_cents": quote.amount_cents,
        "currency": quote.currency,
        "status": PurchaseStatus.PENDING,
        "source": PurchaseSource.AUTO_RECHARGE,
        # At random, never from the id: ids repeat after a database restore, Stripe's keys not.
        "stripe_idempotency_key": f"autorecharge-{secrets.token_urlsafe(24)}",
        "created_at": now,
        "updated_at": now,
    }
    return (
        insert(Purchase)
        .values(values)
        .on_conflict_do_nothing(index_elements=["user_id"], index_where=OPEN_AUTO_RECHARGE)
        .returning(Purchase.id, Purchase.stripe_idempotency_key)
    )


def enqueue_charge(purchase_id: int, user_id: int, key: str) -> None:
    """Have the worker charge attempt `purchase_id` (joins the debit's transaction).

    The job row commits with the attempt or not at all; its dedupe key is the attempt's
    random idempotency key, so nothing can record the same charge twice.
    """
    jobs.record(CHARGE_JOB, f"{CHARGE_JOB}:{key}", {"purchase_id": purchase_id}, user_id=user_id)


def notify(message: str, purchase: Purchase) -> None:
    """Mail the user about an attempt, once per attempt and message (joins)."""
    mailer.queue(
        message,
        purchase.stripe_idempotency_key or f"purchase:{purchase.id}",
        user_id=purchase.user_id,
        purchase_id=purchase.id,
    )
