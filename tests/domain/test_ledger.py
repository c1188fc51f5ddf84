"""The ledger on its own: balances move only with their entries, never below zero by usage."""

import pytest
import sqlalchemy as sa

from webapp.domain import ledger, pricing
from webapp.domain.errors import InsufficientCreditsError, InvalidAmountError, InvalidPurchaseError
from webapp.extensions import db
from webapp.models import CreditAccount, LedgerEntry


def account(user_id):
    db.session.expire_all()
    return db.session.get(CreditAccount, user_id)


def ledger_sum(user_id):
    return db.session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(LedgerEntry.credits), 0)).where(
            LedgerEntry.user_id == user_id
        )
    )


def test_adjust_and_debit_write_one_entry_each_with_the_balance_after(user):
    assert ledger.adjust(user.id, 100, "welcome") == 100
    assert ledger.debit_usage(user.id, 30, "job 1") == 70
    entries = db.session.scalars(sa.select(LedgerEntry).order_by(LedgerEntry.id)).all()
    assert [(e.kind, e.credits, e.balance_after) for e in entries] == [
        ("adjustment", 100, 100),
        ("usage", -30, 70),
    ]
    assert (account(user.id).balance, account(user.id).used) == (70, 30)
    assert ledger_sum(user.id) == 70


def test_usage_never_takes_the_balance_below_zero(user):
    ledger.adjust(user.id, 10, "gift")
    with pytest.raises(InsufficientCreditsError) as short:
        ledger.debit_usage(user.id, 11, "too much")
    assert short.value.balance == 10
    assert account(user.id).balance == 10 == ledger_sum(user.id)


def test_a_removal_by_adjustment_never_goes_below_zero(user):
    ledger.adjust(user.id, 5, "gift")
    with pytest.raises(InsufficientCreditsError):
        ledger.adjust(user.id, -6, "oops")
    assert ledger.adjust(user.id, -5, "take back") == 0


@pytest.mark.parametrize("credits, reason", [(0, "nothing"), (5, ""), (5, "   ")])
def test_an_adjustment_needs_credits_and_a_reason(user, credits, reason):
    with pytest.raises(InvalidAmountError):
        ledger.adjust(user.id, credits, reason)
    assert ledger_sum(user.id) == 0


@pytest.mark.parametrize("credits", [0, -1])
def test_usage_must_be_positive(user, credits):
    with pytest.raises(InvalidAmountError):
        ledger.debit_usage(user.id, credits, "bad")


def test_a_failed_transaction_leaves_neither_balance_nor_entry(user):
    from webapp.domain.transaction import atomic

    with pytest.raises(RuntimeError), atomic():
        ledger.post_entry(user.id, 50, "adjustment", description="half done")
        raise RuntimeError("crash before commit")
    assert account(user.id).balance == 0 and ledger_sum(user.id) == 0


@pytest.mark.parametrize("value, fee, total", [(250, 39, 289), (1000, 61, 1061), (0, 0, 0)])
def test_processing_fee_leaves_the_full_value_after_stripes_cut(value, fee, total):
    from decimal import Decimal

    assert pricing.fee_for(value, Decimal("2.9"), 30) == fee
    assert value + fee == total


def test_quote_applies_bounds_and_unit_price(app):
    app.config.update(CREDIT_UNIT_AMOUNT=3)
    quote = pricing.quote(100)
    assert (quote.value_cents, quote.amount_cents, quote.currency) == (300, 300, "usd")
    for credits in (49, 1_000_001):
        with pytest.raises(InvalidPurchaseError):
            pricing.quote(credits)


@pytest.mark.parametrize("raw, expected", [("1000", 1000), (" 7 ", 7), (12, 12)])
def test_parse_credits_accepts_integers(raw, expected):
    assert pricing.parse_credits(raw) == expected


@pytest.mark.parametrize("raw", ["1.5", "abc", "", None, True, "1e3", "9" * 13])
def test_parse_credits_rejects_everything_else(raw):
    with pytest.raises(InvalidPurchaseError):
        pricing.parse_credits(raw)


@pytest.mark.parametrize(
    "text, currency, cents", [("12.50", "usd", 1250), ("3", "usd", 300), ("500", "jpy", 500)]
)
def test_parse_money_in_major_units(text, currency, cents):
    assert pricing.parse_money(text, currency) == cents


@pytest.mark.parametrize("text", ["12.505", "-1", "0", "abc", "nan", "inf"])
def test_parse_money_rejects_bad_amounts(text):
    with pytest.raises(ValueError):
        pricing.parse_money(text, "usd")


def test_a_read_only_transaction_ends_before_network_waits_but_a_unit_of_work_does_not(user):
    from webapp.domain.transaction import atomic, end_idle_read

    db.session.get(CreditAccount, user.id)
    assert db.session().in_transaction()
    end_idle_read()
    assert not db.session().in_transaction()
    with atomic():
        ledger.post_entry(user.id, 5, "adjustment", description="inside")
        end_idle_read()  # e.g. a Stripe lookup inside a webhook's transaction
        assert db.session().in_transaction()
    assert account(user.id).balance == 5 == ledger_sum(user.id)
