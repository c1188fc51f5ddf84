"""Which mail each cause sends: called inside the cause's transaction, recorded once per cause.

Nothing here sends anything: each function records a mail job (domain/mailer.py)
with a dedupe key naming its cause, in the caller's transaction. Optional messages
(low balance, renewals) are recorded only when the user wants them.
"""

import sqlalchemy as sa
from flask import current_app

from webapp.domain import jobs, mailer
from webapp.extensions import db
from webapp.models import CreditGrant, Purchase, User

# --- accounts (security mail always goes)


def verify_email(user_id: int, cause: str) -> bool:
    return mailer.queue("verify_email", f"{user_id}:{cause}", user_id=user_id)


def password_reset(email: str, cause: str) -> bool:
    # The worker looks the address up: the request does the same work for any address.
    return mailer.queue("password_reset", cause, user_id=None, email=email)


def password_changed(user_id: int) -> bool:
    version = db.session.scalar(sa.select(User.session_version).where(User.id == user_id))
    return mailer.queue("password_changed", f"{user_id}:{version}", user_id=user_id)


# --- money (receipts and notices always go)


def purchase_credited(purchase_id: int, user_id: int) -> bool:
    return jobs.record_job(receipt(purchase_id, user_id))


def receipt(purchase_id: int, user_id: int) -> jobs.NewJob:
    """The receipt of a credited purchase (the ledger's one-statement credit records it
    inside its own statement)."""
    return mailer.mail_job(
        "receipt", f"purchase:{purchase_id}", user_id=user_id, purchase_id=purchase_id
    )


def _naming(paid: Purchase | CreditGrant) -> dict[str, int]:
    """The payload field letters.py finds the refunded or disputed payment's row by: a
    purchase, or the plan grant of a subscription invoice."""
    return {"grant_id": paid.id} if isinstance(paid, CreditGrant) else {"purchase_id": paid.id}


def refund_taken(paid: Purchase | CreditGrant, credits: int) -> bool:
    # Refunds are cumulative: the total refunded so far names this step.
    kind = "grant" if isinstance(paid, CreditGrant) else "purchase"
    return mailer.queue(
        "refund",
        f"{kind}:{paid.id}:{paid.amount_refunded_cents}",
        user_id=paid.user_id,
        **_naming(paid),
        credits=credits,
        refunded_cents=paid.amount_refunded_cents,
    )


def dispute_opened(paid: Purchase | CreditGrant, dispute_id: str, credits: int) -> bool:
    # Stripe's dispute id names the cause: a dispute belongs to one charge.
    return mailer.queue(
        "dispute_opened", dispute_id, user_id=paid.user_id, **_naming(paid), credits=credits
    )


def dispute_closed(
    paid: Purchase | CreditGrant, dispute_id: str, status: str, credits_returned: int
) -> bool:
    return mailer.queue(
        "dispute_closed",
        dispute_id,
        user_id=paid.user_id,
        **_naming(paid),
        status=status,
        credits=credits_returned,
    )


def balance_fell(
    user_id: int, balance: int, debited: int, wanted: bool, threshold: int | None
) -> bool:
    """A debit of `debited` credits left `balance`: alert once when it crossed the threshold.

    `wanted` and `threshold` are the user's settings (None: the configured default), read
    with the balance. A crossing is a debit that took the balance from at or above the
    threshold to below it; the balance must rise again before another one. Balance
    updates are serialised per account, so concurrent debits see one crossing between them.
    """
    if threshold is None:
        threshold = current_app.config["LOW_BALANCE_THRESHOLD"]
    if not (wanted and threshold > 0 and balance < threshold <= balance + debited):
        return False
    crossing = db.session.execute(
        sa.update(User)
        .where(User.id == user_id)
        .values(low_balance_alerts=User.low_balance_alerts + 1)
        .returning(User.low_balance_alerts)
    ).scalar_one()
    return mailer.queue(
        "low_balance",
        f"{user_id}:{crossing}",
        user_id=user_id,
        balance=balance,
        threshold=threshold,
    )


# --- subscriptions


def subscription_renewed(user_id: int, invoice_id: str, plan_code: str, credits: int) -> bool:
    wanted = db.session.scalar(sa.select(User.notify_renewals).where(User.id == user_id))
    if not wanted:
        return False
    return mailer.queue("renewed", invoice_id, user_id=user_id, plan=plan_code, credits=credits)


def subscription_payment_failed(user_id: int, invoice_id: str, attempt: int) -> bool:
    # Each of Stripe's payment attempts on the invoice is its own cause.
    return mailer.queue(
        "payment_failed", f"{invoice_id}:{attempt}", user_id=user_id, invoice_id=invoice_id
    )
