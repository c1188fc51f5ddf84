"""fulfil_checkout_session's one-statement path behaves exactly like the locked checks."""

import multiprocessing

import pytest
import sqlalchemy as sa

from tests.conftest import POSTGRES_URL, make_config, requires_postgres
from tests.stripe_fakes import checkout_session
from webapp.domain import checkout, ledger
from webapp.domain.ledger import Fulfilment
from webapp.extensions import db
from webapp.models import CreditAccount, LedgerEntry, Purchase


@pytest.fixture
def purchase(app, user):
    return checkout.start_checkout(user, 1000, "https://credits.example.test")


def session_for(purchase, **overrides):
    return checkout_session(
        purchase.id,
        purchase.user_id,
        amount=purchase.amount_cents,
        session_id=purchase.stripe_checkout_session_id,
        **overrides,
    )


def entries(user_id):
    return db.session.scalars(sa.select(LedgerEntry).where(LedgerEntry.user_id == user_id)).all()


def test_a_purchase_already_loaded_in_the_session_is_refreshed(purchase):
    loaded = db.session.get(Purchase, purchase.id)
    assert loaded.status == "pending"
    result = ledger.fulfil_checkout_session(session_for(purchase))
    assert result.outcome is Fulfilment.CREDITED and result.purchase_id == loaded.id
    assert loaded.status == "paid" and loaded.credited_at is not None
    assert loaded.stripe_payment_intent_id.startswith("pi_")


def test_upper_case_currency_is_the_same_currency(purchase):
    result = ledger.fulfil_checkout_session(session_for(purchase, currency="USD"))
    assert result.outcome is Fulfilment.CREDITED


def test_a_session_without_payment_intent_keeps_the_recorded_one(purchase):
    db.session.execute(
        sa.update(Purchase)
        .where(Purchase.id == purchase.id)
        .values(stripe_payment_intent_id="pi_recorded")
    )
    db.session.commit()
    ledger.fulfil_checkout_session(session_for(purchase, payment_intent=None))
    assert db.session.get(Purchase, purchase.id).stripe_payment_intent_id == "pi_recorded"


def test_a_purchase_under_review_is_not_credited_by_a_matching_session(purchase):
    assert (
        ledger.fulfil_checkout_session(session_for(purchase, amount_total=1)).outcome
        is Fulfilment.MISMATCH
    )
    assert ledger.fulfil_checkout_session(session_for(purchase)).outcome is Fulfilment.MISMATCH
    assert entries(purchase.user_id) == []


def test_a_session_missing_its_amount_is_a_mismatch(purchase):
    assert (
        ledger.fulfil_checkout_session(session_for(purchase, amount_total=None)).outcome
        is Fulfilment.MISMATCH
    )


def test_a_session_known_only_by_metadata_is_still_credited(purchase):
    db.session.execute(
        sa.update(Purchase)
        .where(Purchase.id == purchase.id)
        .values(stripe_checkout_session_id=None)
    )
    db.session.commit()
    session = session_for(purchase)
    session["id"] = "cs_test_late"
    result = ledger.fulfil_checkout_session(session)
    assert result.outcome is Fulfilment.CREDITED
    assert result.purchase.stripe_checkout_session_id == "cs_test_late"


def test_an_expired_purchase_paid_late_is_credited_once(purchase):
    ledger.mark_session_expired(session_for(purchase, status="expired", payment_status="unpaid"))
    assert ledger.fulfil_checkout_session(session_for(purchase)).outcome is Fulfilment.CREDITED
    assert (
        ledger.fulfil_checkout_session(session_for(purchase)).outcome is Fulfilment.ALREADY_CREDITED
    )
    assert [e.credits for e in entries(purchase.user_id)] == [1000]


def _fulfil_in_process(session: dict, rounds: int) -> list[str]:
    from webapp import create_app

    app = create_app(make_config(POSTGRES_URL))
    with app.app_context():
        return [ledger.fulfil_checkout_session(session).outcome.value for _ in range(rounds)]


@requires_postgres
@pytest.mark.parametrize("database_url", [POSTGRES_URL], indirect=False)
def test_many_processes_fulfilling_one_session_credit_it_once(purchase):
    session = session_for(purchase)
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        outcomes = sum(pool.starmap(_fulfil_in_process, [(session, 5)] * 4), [])
    assert outcomes.count("credited") == 1
    assert outcomes.count("already_credited") == 19
    balance = db.session.scalar(
        sa.select(CreditAccount.balance).where(CreditAccount.user_id == purchase.user_id)
    )
    assert balance == 1000 == sum(e.credits for e in entries(purchase.user_id))
