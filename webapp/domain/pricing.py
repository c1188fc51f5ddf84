"""What credits cost: the quote shown before paying and charged at checkout."""

import math
import re
from dataclasses import dataclass
from decimal import Decimal, DecimalException, InvalidOperation

from flask import current_app

from webapp.domain.errors import InvalidPurchaseError

# Stripe's smallest charge per currency, in minor units (default 50).
STRIPE_MINIMUM_CHARGE = {
    "usd": 50,
    "eur": 50,
    "gbp": 30,
    "cad": 50,
    "aud": 50,
    "chf": 50,
    "jpy": 50,
    "inr": 50,
    "sek": 300,
    "nok": 300,
    "dkk": 250,
    "mxn": 1000,
}
STRIPE_MAXIMUM_CHARGE = 99_999_999
ZERO_DECIMAL_CURRENCIES = {
    "bif",
    "clp",
    "djf",
    "gnf",
    "jpy",
    "kmf",
    "krw",
    "mga",
    "pyg",
    "rwf",
    "ugx",
    "vnd",
    "vuv",
    "xaf",
    "xof",
    "xpf",
}
# Three decimals (1 KWD = 1000 fils); Stripe takes their amounts only in multiples of 10.
THREE_DECIMAL_CURRENCIES = {"bhd", "jod", "kwd", "omr", "tnd"}
THREE_DECIMAL_STEP = 10


@dataclass(frozen=True)
class Quote:
    credits: int
    value_cents: int
    fee_cents: int
    amount_cents: int
    currency: str
    # A Price pack (CREDIT_PACKS entry made in the Stripe Dashboard) and its own name.
    price_id: str | None = None
    name: str | None = None


def fee_for(value_cents: int, percent: Decimal, fixed_cents: int) -> int:
    """Fee so that `value` remains after Stripe's percent + fixed fee (minor units)."""
    if value_cents <= 0:
        return 0
    total = Decimal(value_cents + fixed_cents) / (1 - percent / 100)
    return math.ceil(total) - value_cents


def parse_credits(raw) -> int:
    """An integer count of credits from a form or JSON value, or InvalidPurchaseError."""
    if isinstance(raw, bool) or raw is None:
        raise InvalidPurchaseError("Enter a whole number of credits.")
    if isinstance(raw, int):
        return raw
    text = str(raw).strip()
    if not _WHOLE_NUMBER.fullmatch(text):  # ASCII digits only: "²" and "--5" are not numbers
        raise InvalidPurchaseError("Enter a whole number of credits.")
    return int(text)


_WHOLE_NUMBER = re.compile(r"-?[0-9]{1,12}")


def quote(credits: int) -> Quote:
    """Price `credits` with the configured unit price and fee model; enforce the bounds."""
    config = current_app.config
    check_bounds(credits)
    return quote_value(credits, credits * config["CREDIT_UNIT_AMOUNT"], config["CURRENCY"])


def check_bounds(credits: int) -> None:
    """MIN_PURCHASE_CREDITS..MAX_PURCHASE_CREDITS, or InvalidPurchaseError."""
    low, high = (
        current_app.config["MIN_PURCHASE_CREDITS"],
        current_app.config["MAX_PURCHASE_CREDITS"],
    )
    if not low <= credits <= high:
        raise InvalidPurchaseError(f"Buy between {low:,} and {high:,} credits.")


def quote_value(credits: int, value: int, currency: str, **pack) -> Quote:
    """Credits worth `value` (minor units), plus the fee line; within Stripe's limits."""
    config = current_app.config
    fee = 0
    if config["CUSTOMER_PAYS_FEES"]:
        fee = fee_for(value, Decimal(config["STRIPE_FEE_PERCENT"]), config["STRIPE_FEE_FIXED"])
    amount = value + fee
    step = amount_step(currency)
    if amount % step and fee:
        fee += step - amount % step  # the fee line rounds the total up to what Stripe takes
        amount = value + fee
    elif amount % step:
        credits_step = step // math.gcd(config["CREDIT_UNIT_AMOUNT"], step)
        raise InvalidPurchaseError(
            f"Payments in {currency.upper()} go in steps of {format_money(step, currency)}: "
            f"buy a multiple of {credits_step} credits."
        )
    minimum = STRIPE_MINIMUM_CHARGE.get(currency, 50)
    if amount < minimum:
        raise InvalidPurchaseError(
            f"The smallest payment is {format_money(minimum, currency)}; buy more credits."
        )
    if amount > STRIPE_MAXIMUM_CHARGE:
        raise InvalidPurchaseError("That is more than one payment can be; buy fewer credits.")
    return Quote(credits, value, fee, amount, currency, **pack)


def minor_units_per_major(currency: str) -> int:
    currency = currency.lower()
    if currency in ZERO_DECIMAL_CURRENCIES:
        return 1
    return 1000 if currency in THREE_DECIMAL_CURRENCIES else 100


def amount_step(currency: str) -> int:
    """The smallest step Stripe accepts for amounts in this currency (minor units)."""
    return THREE_DECIMAL_STEP if currency.lower() in THREE_DECIMAL_CURRENCIES else 1


def format_major(cents: int, currency: str) -> str:
    """Minor units as a plain major-unit number (spreadsheets): 1250 USD -> 12.50."""
    per_major = minor_units_per_major(currency)
    sign, (major, minor) = ("-" if cents < 0 else ""), divmod(abs(cents), per_major)
    if per_major == 1:
        return f"{sign}{major}"
    return f"{sign}{major}.{minor:0{len(str(per_major)) - 1}d}"


def format_money(cents: int, currency: str) -> str:
    per_major = minor_units_per_major(currency)
    sign = "-" if cents < 0 else ""
    if per_major == 1:
        return f"{sign}{abs(cents):,} {currency.upper()}"
    major, minor = divmod(abs(cents), per_major)
    return f"{sign}{major:,}.{minor:0{len(str(per_major)) - 1}d} {currency.upper()}"


def parse_money(text: str, currency: str) -> int:
    """'12.50' in the currency's major unit -> 1250 minor units; ValueError when malformed."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation as exc:
        raise ValueError("not a number") from exc
    if not value.is_finite():
        raise ValueError("not a number")
    try:
        cents = value * minor_units_per_major(currency)
        whole = cents == cents.to_integral_value() and cents > 0
        if not whole or cents % amount_step(currency):
            raise ValueError("not a positive amount in this currency")
    except DecimalException as exc:  # beyond the arithmetic's precision, e.g. 1e30
        raise ValueError("not a positive amount in this currency") from exc
    return int(cents)
