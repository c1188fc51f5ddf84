"""What became of auto-recharge attempts: confirming one that needs action, the attempts
shown, and the failed / needs-action mail."""

from typing import Any

import sqlalchemy as sa

from webapp.domain import pricing, stripe_gateway
from webapp.domain.autorecharge.settings import settings_for
from webapp.domain.checkout import _session_params as checkout_session_params
from webapp.domain.checkout import ensure_customer
from webapp.domain.errors import NotFoundError
from webapp.domain.mailer import Letter, letter
from webapp.domain.transaction import atomic
from webapp.extensions import db
from webapp.models import Purchase, PurchaseSource, PurchaseStatus, User

# --- the card holder confirms


def confirmation_url(user: User, purchase_id: int, base_url: str) -> str | None:
    """The Checkout Session paying an attempt that waits for the card holder, opened once.

    NotFoundError for someone else's or an unknown attempt; None when it no longer waits
    (paid, failed or expired).
    """
    purchase = db.session.scalar(
        sa.select(Purchase).where(
            Purchase.id == purchase_id,
            Purchase.user_id == user.id,
            Purchase.source == PurchaseSource.AUTO_RECHARGE,
        )
    )
    if purchase is None:
        raise NotFoundError("No such auto-recharge.")
    if purchase.status != PurchaseStatus.NEEDS_ACTION:
        return None
    if purchase.checkout_url:
        return purchase.checkout_url
    params = checkout_session_params(purchase, ensure_customer(user), base_url)
    session = stripe_gateway.create_checkout_session(
        params, idempotency_key=f"confirm-{purchase.stripe_idempotency_key}"
    )
    with atomic():
        db.session.execute(
            sa.update(Purchase)
            .where(Purchase.id == purchase_id, Purchase.stripe_checkout_session_id.is_(None))
            .values(stripe_checkout_session_id=session["id"], checkout_url=session["url"])
        )
    return session["url"]


def recent_attempts(user_id: int, limit: int = 10) -> list[Purchase]:
    return list(
        db.session.scalars(
            sa.select(Purchase)
            .where(Purchase.user_id == user_id, Purchase.source == PurchaseSource.AUTO_RECHARGE)
            .order_by(Purchase.id.desc())
            .limit(limit)
        )
    )


def waiting_attempt(user_id: int) -> Purchase | None:
    """The attempt waiting for the card holder, if any (shown on /credits)."""
    return db.session.scalar(
        sa.select(Purchase)
        .where(
            Purchase.user_id == user_id,
            Purchase.source == PurchaseSource.AUTO_RECHARGE,
            Purchase.status == PurchaseStatus.NEEDS_ACTION,
        )
        .order_by(Purchase.id.desc())
        .limit(1)
    )


# --- mail (built by the worker when it sends; recorded by the ledger with each outcome)


def _attempt_letter(payload: dict[str, Any]) -> tuple[Purchase, User] | None:
    purchase = db.session.get(Purchase, payload.get("purchase_id"))
    return (purchase, purchase.user) if purchase is not None else None


@letter("auto_recharge_failed")
def _failed_letter(payload: dict[str, Any]) -> Letter | None:
    found = _attempt_letter(payload)
    if found is None:
        return None
    purchase, user = found
    settings = settings_for(user.id)
    return Letter(
        user.email,
        "auto-recharge payment failed",
        "auto_recharge_failed",
        {
            "purchase": purchase,
            "turned_off": bool(settings and settings.disabled_reason and not settings.enabled),
            "amount": pricing.format_money(purchase.amount_cents, purchase.currency),
        },
    )


@letter("auto_recharge_needs_action")
def _needs_action_letter(payload: dict[str, Any]) -> Letter | None:
    found = _attempt_letter(payload)
    if found is None or found[0].status != PurchaseStatus.NEEDS_ACTION:
        return None  # paid or expired meanwhile: nothing to confirm
    purchase, user = found
    return Letter(
        user.email,
        "please confirm your auto-recharge",
        "auto_recharge_needs_action",
        {
            "purchase": purchase,
            "amount": pricing.format_money(purchase.amount_cents, purchase.currency),
        },
    )
