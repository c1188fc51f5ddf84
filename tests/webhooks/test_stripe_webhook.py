import json
import time

import pytest
import sqlalchemy as sa

from tests.payments import balance_of, ledger_sum
from tests.stripe_fakes import checkout_session, deliver, event, sign
from webapp.domain import checkout
from webapp.extensions import db
from webapp.models import Purchase, StripeEvent


@pytest.fixture
def purchase(app, user):
    return checkout.start_checkout(user, 1000, "https://credits.example.test")


def completed(purchase, **overrides):
    session = checkout_session(
        purchase.id,
        purchase.user_id,
        amount=purchase.amount_cents,
        session_id=purchase.stripe_checkout_session_id,
        **overrides,
    )
    return event("checkout.session.completed", session)


def test_completed_paid_session_credits_the_recorded_credits_once(client, purchase):
    response = deliver(client, completed(purchase))
    assert response.status_code == 200
    assert response.get_json() == {"received": True}
    assert balance_of(purchase.user_id) == 1000 == ledger_sum(purchase.user_id)
    refreshed = db.session.get(Purchase, purchase.id)
    assert refreshed.status == "paid" and refreshed.credited_at is not None
    assert refreshed.stripe_payment_intent_id.startswith("pi_")


def test_the_same_event_delivered_twice_credits_once(client, purchase):
    evt = completed(purchase)
    assert deliver(client, evt).status_code == 200
    assert deliver(client, evt).status_code == 200
    assert balance_of(purchase.user_id) == 1000
    assert db.session.scalar(sa.select(sa.func.count()).select_from(StripeEvent)) == 1


def test_two_events_for_one_session_credit_once(client, purchase):
    assert deliver(client, completed(purchase)).status_code == 200
    assert deliver(client, completed(purchase)).status_code == 200
    succeeded = completed(purchase)
    succeeded["type"] = "checkout.session.async_payment_succeeded"
    assert deliver(client, succeeded).status_code == 200
    assert balance_of(purchase.user_id) == 1000 == ledger_sum(purchase.user_id)


def test_credits_come_from_the_purchase_not_from_event_metadata(client, purchase):
    evt = completed(purchase)
    evt["data"]["object"]["metadata"]["credits"] = "999999"
    deliver(client, evt)
    assert balance_of(purchase.user_id) == 1000


@pytest.mark.parametrize("header", [None, "", "t=1,v1=deadbeef", "garbage"])
def test_missing_or_wrong_signature_is_rejected(client, purchase, header):
    payload = json.dumps(completed(purchase))
    headers = {} if header is None else {"Stripe-Signature": header}
    response = client.post(
        "/webhooks/stripe", data=payload, headers=headers, content_type="application/json"
    )
    assert response.status_code == 400
    assert balance_of(purchase.user_id) == 0


def test_signature_from_another_secret_is_rejected(client, purchase):
    response = deliver(client, completed(purchase), secret="whsec_someone_else")
    assert response.status_code == 400
    assert balance_of(purchase.user_id) == 0


def test_stale_timestamp_is_rejected(client, purchase):
    response = deliver(client, completed(purchase), timestamp=int(time.time()) - 301)
    assert response.status_code == 400
    assert balance_of(purchase.user_id) == 0


def test_body_changed_after_signing_is_rejected(client, purchase):
    payload = json.dumps(completed(purchase))
    header = sign(payload)
    tampered = payload.replace('"amount_total": 1000', '"amount_total": 1')
    response = client.post(
        "/webhooks/stripe",
        data=tampered,
        content_type="application/json",
        headers={"Stripe-Signature": header},
    )
    assert response.status_code == 400


@pytest.mark.parametrize("body", ["not json", "[]", '{"id": "evt_1"}', '{"object": "event"}'])
def test_malformed_signed_body_is_rejected(client, body):
    response = client.post(
        "/webhooks/stripe",
        data=body,
        content_type="application/json",
        headers={"Stripe-Signature": sign(body)},
    )
    assert response.status_code == 400


def test_oversized_body_is_refused(client):
    body = "x" * (1024 * 1024 + 10)
    response = client.post(
        "/webhooks/stripe",
        data=body,
        content_type="application/json",
        headers={"Stripe-Signature": sign(body)},
    )
    assert response.status_code in (400, 413)


def test_event_for_a_session_this_app_never_created_is_recorded_and_acknowledged(client, user):
    evt = event(
        "checkout.session.completed",
        checkout_session(987654, user.id, amount=500, session_id="cs_test_foreign"),
    )
    assert deliver(client, evt).status_code == 200
    recorded = db.session.scalar(sa.select(StripeEvent))
    assert recorded.outcome == "unmatched"
    assert balance_of(user.id) == 0


def test_events_of_other_purposes_are_ignored(client, purchase):
    evt = completed(purchase)
    evt["data"]["object"]["metadata"]["purpose"] = "something_else"
    assert deliver(client, evt).status_code == 200
    assert balance_of(purchase.user_id) == 0
    assert db.session.scalar(sa.select(StripeEvent.outcome)) == "ignored"


def test_unhandled_event_types_are_acknowledged(client):
    evt = event("customer.created", {"id": "cus_123", "object": "customer"})
    assert deliver(client, evt).status_code == 200


@pytest.fixture
def ledger_inserts_fail(app):
    """A database trigger that makes every ledger INSERT fail; removed by calling it."""
    if db.engine.dialect.name == "postgresql":
        db.session.execute(
            sa.text(
                "CREATE FUNCTION fail_ledger() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'injected: disk full'; END $$"
            )
        )
        db.session.execute(
            sa.text(
                "CREATE TRIGGER fail_ledger BEFORE INSERT ON ledger_entries "
                "FOR EACH ROW EXECUTE FUNCTION fail_ledger()"
            )
        )
        drops = [
            "DROP TRIGGER IF EXISTS fail_ledger ON ledger_entries",
            "DROP FUNCTION IF EXISTS fail_ledger()",
        ]
    else:
        db.session.execute(
            sa.text(
                "CREATE TRIGGER fail_ledger BEFORE INSERT ON ledger_entries "
                "BEGIN SELECT RAISE(ABORT, 'injected: disk full'); END"
            )
        )
        drops = ["DROP TRIGGER IF EXISTS fail_ledger"]
    db.session.commit()

    def remove():
        for statement in drops:
            db.session.execute(sa.text(statement))
        db.session.commit()

    yield remove
    remove()


def test_failure_mid_handling_rolls_back_and_a_redelivery_succeeds(
    client, purchase, ledger_inserts_fail
):
    evt = completed(purchase)
    # The event row and the purchase update happen first; the ledger insert then fails.
    assert deliver(client, evt).status_code == 500
    db.session.expire_all()
    assert balance_of(purchase.user_id) == 0
    assert ledger_sum(purchase.user_id) == 0
    assert db.session.get(Purchase, purchase.id).credited_at is None
    assert db.session.get(Purchase, purchase.id).status == "pending"
    failed = db.session.scalar(sa.select(StripeEvent))
    assert failed.outcome == "failed" and "injected: disk full" in failed.error

    ledger_inserts_fail()
    assert deliver(client, evt).status_code == 200
    assert balance_of(purchase.user_id) == 1000 == ledger_sum(purchase.user_id)
    db.session.expire_all()
    recovered = db.session.scalar(sa.select(StripeEvent))
    assert recovered.outcome == "processed" and recovered.attempts == 2 and recovered.error is None


def test_unpaid_completed_session_marks_processing_then_async_success_credits(client, purchase):
    deliver(client, completed(purchase, payment_status="unpaid"))
    assert db.session.get(Purchase, purchase.id).status == "processing"
    assert balance_of(purchase.user_id) == 0
    succeeded = completed(purchase)
    succeeded["type"] = "checkout.session.async_payment_succeeded"
    deliver(client, succeeded)
    db.session.expire_all()
    assert db.session.get(Purchase, purchase.id).status == "paid"
    assert balance_of(purchase.user_id) == 1000


def test_amount_mismatch_credits_nothing_and_flags_for_review(client, purchase):
    deliver(client, completed(purchase, amount_total=1))
    refreshed = db.session.get(Purchase, purchase.id)
    assert refreshed.status == "needs_review"
    assert "1 usd" in refreshed.review_reason
    assert balance_of(purchase.user_id) == 0


def test_currency_mismatch_credits_nothing(client, purchase):
    deliver(client, completed(purchase, currency="eur"))
    assert db.session.get(Purchase, purchase.id).status == "needs_review"
    assert balance_of(purchase.user_id) == 0
