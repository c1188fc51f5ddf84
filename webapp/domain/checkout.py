"""Starting a credits purchase: record it, then ask Stripe for a Checkout Session."""

import logging
import secrets
from dataclasses import dataclass
from urllib.parse import urljoin

import sqlalchemy as sa
from flask import current_app

from webapp.domain import catalog, ledger, pricing, stripe_gateway
from webapp.domain.errors import PaymentProviderError
from webapp.domain.stripe_objects import TOPUP_PURPOSE
from webapp.domain.transaction import atomic
from webapp.extensions import db
from webapp.models import Purchase, PurchaseStatus, User

log = logging.getLogger(__name__)


def start_checkout(user: User, credits: int, base_url: str, *, save_card: bool = False) -> Purchase:
    """Record a pending purchase of `credits` and open its Checkout Session.

    With `save_card`, the card paying is also saved for auto-recharge (off-session use).

    Bounds and Stripe's limits are checked before anything is stored or sent
    (InvalidPurchaseError). A Stripe failure marks the attempt failed, credits
    nothing and raises PaymentProviderError with a message for the user.
    """
    return _open_checkout(user, pricing.quote(credits), base_url, save_card)


def start_pack_checkout(
    user: User, pack_id: str, base_url: str, *, save_card: bool = False
) -> Purchase:
    """As start_checkout, for a Price pack: its credits and amount as cached from Stripe.

    UnknownPackError (an InvalidPurchaseError) when the pack is not on offer.
    """
    return _open_checkout(user, catalog.pack_quote(pack_id), base_url, save_card)


def _open_checkout(
    user: User, quote: pricing.Quote, base_url: str, save_card: bool = False
) -> Purchase:
    purchase = _record_purchase(user.id, quote)
    try:
        customer_id = ensure_customer(user)
        session = stripe_gateway.create_checkout_session(
            _session_params(purchase, customer_id, base_url, save_card=save_card),
            idempotency_key=purchase.stripe_idempotency_key,
        )
    except PaymentProviderError:
        ledger.abandon_checkout(purchase.id)
        raise
    with atomic():
        purchase.stripe_checkout_session_id = session["id"]
        # The sandbox answers with a path on this app: scripts get an absolute URL.
        purchase.checkout_url = urljoin(f"{base_url}/", session["url"])
    return purchase


def _record_purchase(user_id: int, quote: pricing.Quote) -> Purchase:
    with atomic():
        purchase = Purchase(
            user_id=user_id,
            credits=quote.credits,
            value_cents=quote.value_cents,
            fee_cents=quote.fee_cents,
            amount_cents=quote.amount_cents,
            currency=quote.currency,
            status=PurchaseStatus.PENDING,
            stripe_price_id=quote.price_id,
            stripe_idempotency_key=new_idempotency_key("checkout"),
        )
        db.session.add(purchase)
    return purchase


def new_idempotency_key(purpose: str) -> str:
    """A random Stripe idempotency key: never derived from database ids, which repeat
    after a restore from backup or a reset database (Stripe keeps keys for 24 hours)."""
    return f"{purpose}-{secrets.token_hex(16)}"


def ensure_customer(user: User) -> str:
    """The user's Stripe customer id, created once and reused.

    The creation's idempotency key is stored on the user first, so a retry after a
    failure (or a crash after Stripe answered) gets the same customer back.
    """
    if user.stripe_customer_id:
        return user.stripe_customer_id
    with atomic():
        db.session.execute(
            sa.update(User)
            .where(User.id == user.id, User.stripe_customer_key.is_(None))
            .values(stripe_customer_key=new_idempotency_key("customer"))
        )
    db.session.refresh(user)
    customer_id = stripe_gateway.create_customer(user.email, user.id, user.stripe_customer_key)
    with atomic():
        db.session.execute(
            sa.update(User)
            .where(User.id == user.id, User.stripe_customer_id.is_(None))
            .values(stripe_customer_id=customer_id)
        )
    db.session.refresh(user)
    return user.stripe_customer_id


def _session_params(
    purchase: Purchase, customer_id: str, base_url: str, *, save_card: bool = False
) -> dict:
    currency = purchase.currency
    if purchase.stripe_price_id:
        line_items = [{"price": purchase.stripe_price_id, "quantity": 1}]
    else:
        line_items = [_line(currency, purchase.value_cents, f"{purchase.credits:,} credits")]
    if purchase.fee_cents:
        line_items.append(_line(currency, purchase.fee_cents, "Processing fee"))
    metadata = {
        "purpose": TOPUP_PURPOSE,
        "user_id": str(purchase.user_id),
        "purchase_id": str(purchase.id),
        "credits": str(purchase.credits),
    }
    intent_data: dict = {"metadata": metadata}
    if save_card:
        metadata["save_card"] = "1"
        intent_data["setup_future_usage"] = "off_session"
    params = {
        "mode": "payment",
        "customer": customer_id,
        "client_reference_id": str(purchase.user_id),
        "line_items": line_items,
        "metadata": metadata,
        "payment_intent_data": intent_data,
        "success_url": f"{base_url}/credits/success?session_id={{CHECKOUT_SESSION_ID}}",
        "cancel_url": f"{base_url}/credits/cancel?purchase={purchase.id}",
    }
    if current_app.config["CHECKOUT_INVOICES"]:
        # The invoice carries our metadata so invoice.paid finds its purchase in any order.
        params["invoice_creation"] = {"enabled": True, "invoice_data": {"metadata": metadata}}
    return {**params, **tax_params()}


def tax_params() -> dict:
    """STRIPE_AUTOMATIC_TAX: Stripe Tax on a Checkout Session (payment or subscription)."""
    if not current_app.config["STRIPE_AUTOMATIC_TAX"]:
        return {}
    return {
        "automatic_tax": {"enabled": True},
        "customer_update": {"address": "auto", "name": "auto"},
        "tax_id_collection": {"enabled": True},
    }


def price_data_tax() -> dict:
    """With STRIPE_AUTOMATIC_TAX, the app's own prices are net: tax goes on top (the
    mismatch rule expects amount_total = amount + amount_tax)."""
    return {"tax_behavior": "exclusive"} if current_app.config["STRIPE_AUTOMATIC_TAX"] else {}


def _line(currency: str, unit_amount: int, name: str) -> dict:
    return {
        "quantity": 1,
        "price_data": {
            "currency": currency,
            "unit_amount": unit_amount,
            "product_data": {"name": name},
            **price_data_tax(),
        },
    }


def public_base_url(request_root: str) -> str:
    """Origin for success and cancel URLs: PUBLIC_BASE_URL, else the request's own."""
    return current_app.config["PUBLIC_BASE_URL"] or request_root.rstrip("/")


@dataclass(frozen=True)
class Return:
    """The user's purchase behind a Checkout Session they came back from."""

    purchase: Purchase
    stripe_unreachable: bool = False


def confirm_return(user_id: int, session_id: str) -> Return | None:
    """The user's purchase for `session_id`, fulfilled now if Stripe says it is paid.

    The webhook may not have arrived yet: Stripe is asked and the session goes through
    the same fulfilment as a delivery (commits). None when the session is not one of
    this user's purchases (Stripe is then never asked about it).
    """
    mine = sa.select(Purchase).where(
        Purchase.user_id == user_id, Purchase.stripe_checkout_session_id == session_id
    )
    purchase = db.session.scalar(mine) if session_id else None
    if purchase is None or purchase.credited_at is not None:
        return Return(purchase) if purchase is not None else None
    try:
        session = stripe_gateway.retrieve_checkout_session(session_id)
    except PaymentProviderError:
        return Return(purchase, stripe_unreachable=True)
    return Return(ledger.fulfil_checkout_session(session).purchase or purchase)


def cancel_checkout(user_id: int, purchase_id: int | None) -> Purchase | None:
    """The user came back from Checkout through "cancel": end the session at Stripe so it
    can no longer be paid, and mark the purchase expired (commits). Returns the purchase
    as it then is (paid, if the customer paid in another tab first); None when it is not
    one of this user's purchases."""
    purchase = (
        db.session.scalar(
            sa.select(Purchase).where(Purchase.user_id == user_id, Purchase.id == purchase_id)
        )
        if purchase_id
        else None
    )
    if purchase is None or purchase.status != PurchaseStatus.PENDING:
        return purchase
    session_id = purchase.stripe_checkout_session_id
    if not session_id:
        return purchase
    try:
        session = stripe_gateway.expire_checkout_session(session_id)
    except PaymentProviderError:
        # Stripe refuses to expire a session that is no longer open: it may be paid.
        try:
            session = stripe_gateway.retrieve_checkout_session(session_id)
        except PaymentProviderError:
            return purchase
    if session.get("status") == "expired":
        ledger.mark_session_expired(session)
    elif session.get("status") == "complete":
        ledger.fulfil_checkout_session(session)
    db.session.refresh(purchase)
    return purchase
