"""Reading Stripe's objects: ids, our purposes, and fields several API versions put in different places."""

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

Obj = Mapping[str, Any]

# metadata.purpose on everything this app creates at Stripe.
TOPUP_PURPOSE = "credits_topup"
SUBSCRIPTION_PURPOSE = "credits_subscription"
AUTORECHARGE_PURPOSE = "credits_autorecharge"  # an off-session auto-recharge PaymentIntent
CARD_PURPOSE = "credits_autorecharge_card"  # a setup-mode session saving the card


def id_of(value: Any) -> str | None:
    """Stripe sends related objects as an id or, when expanded, as the object."""
    if isinstance(value, Mapping):
        return value.get("id")
    return value


def purpose_of(obj: Obj) -> str | None:
    return (obj.get("metadata") or {}).get("purpose")


def timestamp(value: Any) -> datetime | None:
    """A Stripe Unix timestamp as an aware UTC datetime (None when absent)."""
    return datetime.fromtimestamp(value, UTC) if isinstance(value, int) else None


def metadata_ids(metadata: Obj, *names: str) -> tuple[int, ...] | None:
    """The named metadata values as ints, or None unless all are plain digits."""
    raw = [str(metadata.get(name)) for name in names]
    if not all(value.isdigit() and len(value) <= 18 for value in raw):
        return None
    return tuple(int(value) for value in raw)


# --- invoices and subscriptions


def invoice_lines(invoice: Obj) -> list[Obj]:
    return list((invoice.get("lines") or {}).get("data") or [])


def invoice_subscription_id(invoice: Obj) -> str | None:
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    found = id_of(details.get("subscription")) or id_of(invoice.get("subscription"))
    for line in invoice_lines(invoice):
        item = (line.get("parent") or {}).get("subscription_item_details") or {}
        found = found or id_of(item.get("subscription")) or id_of(line.get("subscription"))
    return found


def invoice_metadata(invoice: Obj) -> Obj:
    """The subscription's metadata as the invoice carries it (our purpose, plan, user)."""
    candidates = [
        ((invoice.get("parent") or {}).get("subscription_details") or {}).get("metadata"),
        (invoice.get("subscription_details") or {}).get("metadata"),
    ]
    candidates += [line.get("metadata") for line in invoice_lines(invoice)]
    return next((meta for meta in candidates if meta and meta.get("plan")), {})


def invoice_paid_line(invoice: Obj) -> Obj | None:
    """The line for the period just paid for: a subscription line ending latest."""
    lines = [line for line in invoice_lines(invoice) if (line.get("period") or {}).get("end")]
    subscription_lines = [line for line in lines if _is_subscription_line(line)]
    return max(subscription_lines or lines, key=lambda line: line["period"]["end"], default=None)


def _is_subscription_line(line: Obj) -> bool:
    parent = line.get("parent") or {}
    return parent.get("type") == "subscription_item_details" or line.get("type") == "subscription"


def line_price_id(line: Obj) -> str | None:
    details = (line.get("pricing") or {}).get("price_details") or {}
    return id_of(details.get("price")) or id_of(line.get("price"))


def invoice_payment_ids(invoice: Obj) -> tuple[str | None, str | None]:
    """(charge id, payment intent id) that paid the invoice, where the invoice says.

    Older API versions carry `charge` and `payment_intent`; newer ones list
    `payments.data[].payment.payment_intent` / `.charge`.
    """
    charge, intent = id_of(invoice.get("charge")), id_of(invoice.get("payment_intent"))
    for record in (invoice.get("payments") or {}).get("data") or []:
        payment = record.get("payment") or {}
        charge = charge or id_of(payment.get("charge"))
        intent = intent or id_of(payment.get("payment_intent"))
    return charge, intent


def invoice_discounts(invoice: Obj) -> int:
    """What discounts took off the invoice, as Stripe reports it (minor units)."""
    amounts = invoice.get("total_discount_amounts") or []
    return sum(int(item.get("amount") or 0) for item in amounts if isinstance(item, Mapping))


def invoice_added_tax(invoice: Obj) -> int:
    """Tax charged on top of the prices (exclusive tax), in minor units."""
    taxes = invoice.get("total_taxes")
    if isinstance(taxes, list):
        return sum(
            int(tax.get("amount") or 0)
            for tax in taxes
            if isinstance(tax, Mapping) and tax.get("tax_behavior") != "inclusive"
        )
    return int(invoice.get("tax") or 0)


def subscription_price_id(subscription: Obj) -> str | None:
    items = (subscription.get("items") or {}).get("data") or []
    return id_of(items[0].get("price")) if items else None


def subscription_period(subscription: Obj) -> tuple[datetime | None, datetime | None]:
    items = (subscription.get("items") or {}).get("data") or []
    source = subscription if subscription.get("current_period_end") else (items[0] if items else {})
    return timestamp(source.get("current_period_start")), timestamp(
        source.get("current_period_end")
    )
