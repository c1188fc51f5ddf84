"""What each mail says: the builders the worker runs at send time (see domain/mailer.py).

Links carrying a token are made here, at send time, so no secret is ever stored in
the jobs table or shown on the admin pages.
"""

from typing import Any

from webapp.domain import receipts, users
from webapp.domain.ledger.chargebacks import RETURNED_DISPUTE_STATUSES
from webapp.domain.mailer import Letter, letter
from webapp.domain.pricing import format_money
from webapp.extensions import db
from webapp.models import CreditGrant, Purchase, User

Payload = dict[str, Any]


def _user(payload: Payload) -> User | None:
    return db.session.get(User, payload["user_id"]) if payload.get("user_id") else None


def _letter_to(
    about: User | Purchase | CreditGrant | None,
    subject: str,
    template: str,
    context: Payload | None = None,
) -> Letter | None:
    """The letter to the user `about` is, or to the buyer of the purchase or the plan grant
    it is; None (nothing to send) when that row is gone."""
    if isinstance(about, CreditGrant):
        about = db.session.get(User, about.user_id)
    if about is None:
        return None
    user = about.user if isinstance(about, Purchase) else about
    return Letter(user.email, subject, template, context or {})


@letter("verify_email")
def verify_email(payload: Payload) -> Letter | None:
    user = db.session.get(User, payload["user_id"])
    if user is None or user.email_verified_at is not None:
        return None
    return Letter(
        user.email,
        "confirm your email address",
        "verify_email",
        {"token": users.verification_token(user)},
    )


@letter("password_reset")
def password_reset(payload: Payload) -> Letter | None:
    user = users.find_by_email(payload["email"])
    if user is None:
        return None
    return Letter(
        user.email,
        "reset your password",
        "password_reset",
        {"token": users.reset_token(user), "minutes": users.RESET_LINK_SECONDS // 60},
    )


@letter("password_changed")
def password_changed(payload: Payload) -> Letter | None:
    return _letter_to(_user(payload), "your password was changed", "password_changed")


def _purchase(payload: Payload) -> Purchase | None:
    return db.session.get(Purchase, payload["purchase_id"])


def _paid(payload: Payload) -> Purchase | CreditGrant | None:
    """What the refunded or disputed payment was for: a purchase, or a plan grant."""
    if payload.get("grant_id") is not None:
        return db.session.get(CreditGrant, payload["grant_id"])
    return _purchase(payload)


def _naming(paid: Purchase | CreditGrant | None) -> Payload:
    """The template variable the mail names the payment by (templates/mail/_paid_for.txt)."""
    return {"grant": paid} if isinstance(paid, CreditGrant) else {"purchase": paid}


@letter("receipt")
def receipt(payload: Payload) -> Letter | None:
    purchase = _purchase(payload)
    if purchase is None:
        return None
    # Stripe's receipt and invoice links, fetched once and kept (domain/receipts.py); a
    # Stripe failure leaves them out rather than holding the receipt back.
    if receipts.fill_missing([purchase]):
        db.session.refresh(purchase)
    currency = purchase.currency
    subject = f"receipt for {purchase.credits:,} credits"
    if purchase.source == "auto_recharge":  # the auto-recharge succeeded mail is its receipt
        subject = f"auto-recharge added {purchase.credits:,} credits (receipt)"
    return Letter(
        purchase.user.email,
        subject,
        "receipt",
        {
            "purchase": purchase,
            "amount": format_money(purchase.total_cents, currency),
            "tax": format_money(purchase.tax_cents, currency) if purchase.tax_cents else None,
            "receipt_url": purchase.receipt_url or None,
            "invoice_url": purchase.invoice_url or None,
        },
    )


@letter("refund")
def refund(payload: Payload) -> Letter | None:
    paid = _paid(payload)
    if paid is None:
        return None
    return _letter_to(
        paid,
        "your refund",
        "refund",
        {
            **_naming(paid),
            "credits": payload["credits"],
            "refunded": format_money(payload["refunded_cents"], paid.currency),
            "paid": format_money(paid.total_cents, paid.currency),
        },
    )


@letter("dispute_opened")
def dispute_opened(payload: Payload) -> Letter | None:
    paid = _paid(payload)
    return _letter_to(
        paid,
        "a payment was disputed",
        "dispute_opened",
        {**_naming(paid), "credits": payload["credits"]},
    )


@letter("dispute_closed")
def dispute_closed(payload: Payload) -> Letter | None:
    paid = _paid(payload)
    won = payload["credits"] > 0
    # Seen for the first time already won, a dispute took nothing and gives nothing back.
    in_your_favour = payload.get("status") in RETURNED_DISPUTE_STATUSES
    return _letter_to(
        paid,
        "credits returned after a dispute" if won else "a dispute was settled",
        "dispute_closed",
        {
            **_naming(paid),
            "credits": payload["credits"],
            "won": won,
            "in_your_favour": in_your_favour,
        },
    )


@letter("low_balance")
def low_balance(payload: Payload) -> Letter | None:
    return _letter_to(
        _user(payload),
        f"your balance is down to {payload['balance']:,} credits",
        "low_balance",
        {"balance": payload["balance"], "threshold": payload["threshold"]},
    )


@letter("renewed")
def renewed(payload: Payload) -> Letter | None:
    return _letter_to(
        _user(payload),
        f"your {payload['plan']} plan renewed",
        "renewed",
        {"plan": payload["plan"], "credits": payload["credits"]},
    )


@letter("payment_failed")
def payment_failed(payload: Payload) -> Letter | None:
    return _letter_to(_user(payload), "your plan's payment failed", "payment_failed")
