"""What is for sale: CREDIT_PACKS entries, sizes priced here and Stripe Prices read and checked."""

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.dialects import postgresql, sqlite

from webapp.domain import clock, pricing, stripe_gateway
from webapp.domain.errors import InvalidPurchaseError, PaymentProviderError, UnknownPackError
from webapp.domain.sql import is_postgresql
from webapp.domain.stripe_objects import id_of
from webapp.domain.transaction import atomic
from webapp.extensions import db
from webapp.models import CatalogPrice

log = logging.getLogger(__name__)

PRICE_PREFIX = "price_"
MAX_METADATA_CREDITS_DIGITS = 12
UNREACHABLE = "Stripe could not be asked; retried later"


@dataclass(frozen=True)
class Pack:
    """One CREDIT_PACKS entry: its quote when it is on offer, else why it is not."""

    entry: str
    quote: pricing.Quote | None
    reason: str | None = None
    # The Price could not be re-read just now; what is shown is the last reading (if any).
    unreachable: bool = False


def offered_quotes() -> list[pricing.Quote]:
    """The packs on offer, in CREDIT_PACKS order (Prices read from Stripe when due)."""
    return [pack.quote for pack in packs() if pack.quote is not None]


def packs(*, refresh: bool = False) -> list[Pack]:
    """Every CREDIT_PACKS entry with its quote or its reason; `refresh` re-reads every Price."""
    entries = current_app.config["CREDIT_PACKS"]
    price_ids = [entry for entry in entries if _is_price_id(entry)]
    rows, failed, read = _price_rows(price_ids, refresh=refresh)
    result = [_pack(entry, rows, failed) for entry in entries]
    for pack in result:
        if pack.entry in read and pack.reason:  # said once per reading, not per page view
            log.warning("price pack %s is not offered: %s", pack.entry, pack.reason)
    return result


def pack_quote(pack_id: Any) -> pricing.Quote:
    """The quote of the Price pack `pack_id`, or UnknownPackError when it is not on offer."""
    entries = current_app.config["CREDIT_PACKS"]
    if not _is_price_id(pack_id) or pack_id not in entries:
        raise UnknownPackError("That pack is not on offer.")
    rows, failed, _ = _price_rows([pack_id], refresh=False)
    pack = _pack(pack_id, rows, failed)
    if pack.quote is None:
        raise UnknownPackError("That pack is not on offer.")
    return pack.quote


def _is_price_id(entry: Any) -> bool:
    return isinstance(entry, str) and entry.startswith(PRICE_PREFIX) and len(entry) <= 255


def _pack(entry: int | str, rows: Mapping[str, CatalogPrice], failed: set[str]) -> Pack:
    if isinstance(entry, int):
        try:
            return Pack(str(entry), pricing.quote(entry))
        except InvalidPurchaseError as exc:
            return Pack(str(entry), None, str(exc))
    if not _is_price_id(entry):
        return Pack(entry, None, "neither a number of credits nor a Stripe Price id (price_...)")
    row, unreachable = rows.get(entry), entry in failed
    if row is None:
        return Pack(entry, None, UNREACHABLE, unreachable=True)
    reason = row.reason or _unsellable(row)
    if reason:
        return Pack(entry, None, reason, unreachable)
    try:
        pricing.check_bounds(row.credits)
        quote = pricing.quote_value(
            row.credits, row.unit_amount, row.currency, price_id=entry, name=row.name
        )
    except InvalidPurchaseError as exc:
        return Pack(entry, None, str(exc), unreachable)
    return Pack(entry, quote, None, unreachable)


def _unsellable(row: CatalogPrice) -> str | None:
    """What in this store's settings rules out a Price Stripe reports as valid."""
    config = current_app.config
    if row.currency != config["CURRENCY"]:
        return f"in {row.currency.upper()}, but CURRENCY is {config['CURRENCY'].upper()}"
    if config["STRIPE_AUTOMATIC_TAX"] and row.tax_behavior == "inclusive":
        # The mismatch rule adds Stripe's tax on top of the recorded amount.
        return "tax-inclusive Price; with STRIPE_AUTOMATIC_TAX packs need exclusive tax"
    return None


# --- reading Prices from Stripe, cached in catalog_prices


def _price_rows(
    price_ids: Iterable[str], *, refresh: bool
) -> tuple[dict[str, CatalogPrice], set[str], set[str]]:
    """The cached rows, re-read from Stripe when due; the ids Stripe did not answer for,
    and those it did."""
    price_ids = list(dict.fromkeys(price_ids))
    if not price_ids:
        return {}, set(), set()
    rows = {
        row.stripe_price_id: row
        for row in db.session.scalars(
            sa.select(CatalogPrice).where(CatalogPrice.stripe_price_id.in_(price_ids))
        )
    }
    now, failed, read = clock.now(), set(), set()
    max_age = timedelta(seconds=current_app.config["PRICE_CACHE_SECONDS"])
    for price_id in price_ids:
        row = rows.get(price_id)
        due = refresh or row is None or row.checked_at <= now - max_age
        if not due or not (refresh or _may_try(price_id, now)):
            continue
        fresh = _read(price_id, now)
        if fresh is None:
            failed.add(price_id)
        else:
            rows[price_id] = fresh
            read.add(price_id)
    return rows, failed, read


def _retry_times() -> dict[str, datetime]:
    return current_app.extensions.setdefault("catalog_retry_at", {})


def _may_try(price_id: str, now: datetime) -> bool:
    retry_at = _retry_times().get(price_id)
    return retry_at is None or now >= retry_at


def _read(price_id: str, now: datetime) -> CatalogPrice | None:
    """Ask Stripe for the Price and store what it says; None when Stripe did not answer."""
    try:
        price = stripe_gateway.find_price(price_id)
    except PaymentProviderError:
        wait = timedelta(seconds=current_app.config["PRICE_RETRY_SECONDS"])
        _retry_times()[price_id] = now + wait
        log.warning("price pack %s: Stripe could not be asked; retrying after %s", price_id, wait)
        return None
    _retry_times().pop(price_id, None)
    values = {"stripe_price_id": price_id, "checked_at": now, **price_facts(price)}
    with atomic():
        insert = (postgresql.insert if is_postgresql() else sqlite.insert)(CatalogPrice)
        db.session.execute(
            insert.values(values).on_conflict_do_update(
                index_elements=[CatalogPrice.stripe_price_id],
                set_={name: value for name, value in values.items() if name != "stripe_price_id"},
            )
        )
    return db.session.get(CatalogPrice, price_id, populate_existing=True)


def price_facts(price: Mapping[str, Any] | None) -> dict[str, Any]:
    """What a Price (with its Product expanded) sells, and `reason` when it cannot be sold."""
    facts: dict[str, Any] = {
        "credits": None,
        "unit_amount": None,
        "currency": None,
        "name": None,
        "tax_behavior": None,
        "reason": None,
    }
    if price is None:
        return {**facts, "reason": "no such Price in Stripe"}
    product = price.get("product") if isinstance(price.get("product"), Mapping) else {}
    credits, credits_problem = _metadata_credits(price, product)
    unit_amount = price.get("unit_amount")
    facts.update(
        credits=credits,
        currency=str(price.get("currency") or "").lower()[:3] or None,
        unit_amount=unit_amount if isinstance(unit_amount, int) else None,
        tax_behavior=price.get("tax_behavior"),
        name=(product.get("name") or price.get("nickname") or "")[:250] or None,
    )
    problems = [
        (not price.get("active"), "the Price is archived (inactive)"),
        (
            price.get("type") != "one_time" or bool(price.get("recurring")),
            "the Price is recurring, not one-time",
        ),
        (
            product.get("deleted") or (product and product.get("active") is False),
            f"its Product {id_of(price.get('product'))} is archived or deleted",
        ),
        (
            facts["unit_amount"] is None or facts["unit_amount"] <= 0,
            "the Price has no fixed positive amount",
        ),
        (credits_problem is not None, credits_problem),
    ]
    facts["reason"] = next((text for bad, text in problems if bad), None)
    return facts


def _metadata_credits(price: Mapping[str, Any], product: Mapping[str, Any]):
    """(credits, None) from the Price's metadata, else its Product's; (None, why) otherwise."""
    for owner, metadata in (("Price", price.get("metadata")), ("Product", product.get("metadata"))):
        raw = (metadata or {}).get("credits")
        if raw is None:
            continue
        text = str(raw).strip()
        if (
            text.isdigit()
            and text.isascii()
            and len(text) <= MAX_METADATA_CREDITS_DIGITS
            and int(text) > 0
        ):
            return int(text), None
        return None, f"the {owner}'s metadata credits={raw!r} is not a positive whole number"
    return None, "no `credits` in the Price's or the Product's metadata"
