"""Subscription events through the signed webhook endpoint, in the orders Stripe may use."""

from datetime import timedelta

import pytest
import sqlalchemy as sa

from tests.payments import balance_of, ledger_sum
from tests.stripe_fakes import deliver, event
from tests.subscription_fakes import (
    FEB_1,
    JAN_1,
    MAR_1,
    invoice,
    new_id,
    subscription,
    subscription_session,
    ts,
)
from webapp.domain import ledger
from webapp.extensions import db
from webapp.models import CreditAccount, CreditGrant, LedgerEntry, StripeEvent, Subscription


def grants():
    return db.session.scalars(sa.select(CreditGrant).order_by(CreditGrant.id)).all()


def the_subscription():
    return db.session.scalars(sa.select(Subscription)).one()


def send(client, event_type, obj, **kwargs):
    response = deliver(client, event(event_type, obj, **kwargs))
    assert response.status_code == 200, response.get_data(as_text=True)
    return response


@pytest.fixture
def sub_id():
    return new_id("sub")


def test_paid_first_invoice_grants_the_plan_credits_expiring_at_the_line_period_end(
    client, user, sub_id, fixed_clock
):
    send(client, "checkout.session.completed", subscription_session(sub_id, user.id))
    paid = invoice(sub_id, user.id)
    send(client, "invoice.paid", paid)
    assert balance_of(user.id) == 1000 == ledger_sum(user.id)
    (grant,) = grants()
    # The line's period.end, not the invoice's own period_end (which looks back).
    assert grant.expires_at == FEB_1 != JAN_1
    assert grant.stripe_invoice_id == paid["id"] and grant.remaining == 1000
    entry = db.session.scalars(sa.select(LedgerEntry)).one()
    assert entry.kind == "grant" and entry.grant_id == grant.id
    record = the_subscription()
    assert (record.status, record.plan_code, record.user_id) == ("active", "basic", user.id)
    assert record.current_period_end == FEB_1
    account = db.session.get(CreditAccount, user.id)
    assert account.expiring == 1000 and account.next_expiry_at == FEB_1


def test_invoice_paid_before_the_session_completes_grants_once_and_records_one_subscription(
    client, user, sub_id, fixed_clock
):
    send(client, "invoice.paid", invoice(sub_id, user.id))
    send(client, "checkout.session.completed", subscription_session(sub_id, user.id))
    send(client, "customer.subscription.created", subscription(sub_id, user.id))
    assert balance_of(user.id) == 1000 == ledger_sum(user.id)
    assert the_subscription().status == "active"


def test_the_same_invoice_delivered_twice_or_in_two_events_grants_once(
    client, user, sub_id, fixed_clock
):
    paid = invoice(sub_id, user.id)
    evt = event("invoice.paid", paid)
    assert deliver(client, evt).status_code == 200
    assert deliver(client, evt).status_code == 200
    send(client, "invoice.paid", paid)
    assert balance_of(user.id) == 1000 == ledger_sum(user.id)
    assert len(grants()) == 1


def test_each_renewal_grants_again_and_a_rollover_plan_never_expires(
    client, user, sub_id, fixed_clock
):
    send(client, "invoice.paid", invoice(sub_id, user.id, plan="pro"))
    send(
        client,
        "invoice.paid",
        invoice(sub_id, user.id, plan="pro", reason="subscription_cycle", start=FEB_1, end=MAR_1),
    )
    assert balance_of(user.id) == 10_000 == ledger_sum(user.id)
    assert [grant.expires_at for grant in grants()] == [None, None]
    assert db.session.get(CreditAccount, user.id).next_expiry_at is None
    assert the_subscription().current_period_end == MAR_1


@pytest.mark.parametrize(
    "event_type,reason",
    [
        ("invoice.paid", "manual"),
        ("invoice.paid", "subscription_update"),
        ("invoice.paid", "subscription_threshold"),
        ("invoice.payment_succeeded", "subscription_create"),
        ("invoice.payment_succeeded", "subscription_cycle"),
    ],
)
def test_other_invoices_and_payment_succeeded_grant_nothing(
    client, user, sub_id, event_type, reason
):
    send(client, event_type, invoice(sub_id, user.id, reason=reason))
    assert balance_of(user.id) == 0 and grants() == []


def test_a_failed_renewal_marks_the_subscription_past_due_and_credits_stay_usable(
    client, logged_in, user, sub_id, fixed_clock
):
    send(client, "invoice.paid", invoice(sub_id, user.id))
    failed = invoice(
        sub_id,
        user.id,
        reason="subscription_cycle",
        start=FEB_1,
        end=MAR_1,
        status="open",
        amount_paid=0,
    )
    send(client, "invoice.payment_failed", failed)
    assert the_subscription().status == "past_due"
    assert balance_of(user.id) == 1000
    assert ledger.debit_usage(user.id, 300, "still works") == 700
    page = logged_in.get("/credits").get_data(as_text=True)
    assert "past due" in page
    # It says the payment failed, not when it renews, and offers the portal to fix the card.
    past_due = page.split('id="plan-past-due"')[1].split("</div>")[0]
    assert "last plan payment failed" in past_due and "Update your card" in past_due
    assert 'action="/billing/portal"' in past_due and 'id="plan-renewal"' not in page


def test_cancellation_at_period_end_shows_then_deletion_ends_and_keeps_granted_credits(
    client, logged_in, user, sub_id, fixed_clock
):
    send(client, "invoice.paid", invoice(sub_id, user.id))
    send(
        client,
        "customer.subscription.updated",
        subscription(sub_id, user.id, cancel_at_period_end=True),
        created=ts(JAN_1) + 10,
    )
    record = the_subscription()
    assert record.cancel_at_period_end and record.cancel_at == FEB_1
    assert "cancels on 01 Feb 2030" in logged_in.get("/credits").get_data(as_text=True)
    send(
        client,
        "customer.subscription.deleted",
        subscription(sub_id, user.id, status="canceled"),
        created=ts(JAN_1) + 20,
    )
    assert the_subscription().status == "canceled"
    page = logged_in.get("/credits").get_data(as_text=True)
    assert "ended" in page and 'data-plan="basic"' in page
    assert balance_of(user.id) == 1000  # granted credits run to their own expiry


def test_a_renewal_paid_after_cancellation_grants_once_and_the_subscription_stays_ended(
    client, user, sub_id, fixed_clock
):
    send(client, "invoice.paid", invoice(sub_id, user.id))
    send(
        client,
        "customer.subscription.deleted",
        subscription(sub_id, user.id, status="canceled"),
        created=ts(JAN_1) + 20,
    )
    renewal = invoice(sub_id, user.id, reason="subscription_cycle", start=FEB_1, end=MAR_1)
    send(client, "invoice.paid", renewal)
    send(client, "invoice.paid", renewal)
    assert balance_of(user.id) == 2000 == ledger_sum(user.id)
    assert the_subscription().status == "canceled"


def test_an_older_subscription_event_changes_nothing(client, user, sub_id):
    send(
        client,
        "customer.subscription.updated",
        subscription(sub_id, user.id, cancel_at_period_end=True),
        created=2_000_000_000,
    )
    send(
        client,
        "customer.subscription.updated",
        subscription(sub_id, user.id, status="past_due"),
        created=1_999_999_000,
    )
    record = the_subscription()
    assert record.status == "active" and record.cancel_at_period_end
    send(
        client,
        "customer.subscription.deleted",
        subscription(sub_id, user.id, status="canceled"),
        created=2_000_000_100,
    )
    send(
        client,
        "invoice.payment_failed",
        invoice(sub_id, user.id, status="open"),
        created=2_000_000_050,
    )
    send(
        client,
        "customer.subscription.updated",
        subscription(sub_id, user.id),
        created=2_000_000_050,
    )
    assert the_subscription().status == "canceled"


class TestPlansWithConfiguredPriceIds:
    @pytest.fixture
    def config_overrides(self):
        return {"PLANS": "basic:1000:900:expire:price_basic,pro:5000:3900:rollover:price_pro"}

    def test_a_plan_change_by_price_id_shows_in_the_next_periods_grant(
        self, client, user, sub_id, fixed_clock
    ):
        send(client, "invoice.paid", invoice(sub_id, user.id, price="price_basic"))
        # The portal switches the price; the metadata still names the first plan.
        send(
            client,
            "customer.subscription.updated",
            subscription(sub_id, user.id, plan="basic", price="price_pro"),
        )
        assert the_subscription().plan_code == "pro"
        send(
            client,
            "invoice.paid",
            invoice(
                sub_id,
                user.id,
                plan="basic",
                price="price_pro",
                reason="subscription_cycle",
                start=FEB_1,
                end=MAR_1,
                amount_paid=3900,
            ),
        )
        assert [(g.plan_code, g.credits, g.expires_at) for g in grants()] == [
            ("basic", 1000, FEB_1),
            ("pro", 5000, None),
        ]


def test_subscription_events_nobody_can_be_matched_to_are_recorded_unmatched(client, sub_id):
    send(client, "invoice.paid", invoice(sub_id, None))
    outcome = db.session.scalar(sa.select(StripeEvent.outcome))
    assert outcome == "unmatched" and grants() == []


def test_the_owner_is_found_by_stripe_customer_when_metadata_is_missing(
    client, user, sub_id, fixed_clock
):
    user.stripe_customer_id = "cus_QXg1o8vcGmoR32"
    db.session.commit()
    paid = invoice(sub_id, None)
    paid["lines"]["data"][0]["metadata"] = {"plan": "basic"}
    send(client, "invoice.paid", paid)
    assert balance_of(user.id) == 1000


def test_an_invoice_paid_after_its_period_ended_grants_credits_that_are_already_gone(
    client, user, sub_id, fixed_clock
):
    fixed_clock.set(FEB_1 + timedelta(days=1))
    send(client, "invoice.paid", invoice(sub_id, user.id))
    assert ledger.expire_account_grants(user.id) == 1000
    assert balance_of(user.id) == 0 == ledger_sum(user.id)


def test_topup_sessions_still_go_to_purchases(client, user):
    session = subscription_session(new_id("sub"), user.id)
    session["metadata"]["purpose"] = "credits_topup"
    send(client, "checkout.session.completed", session)
    assert db.session.scalar(sa.select(StripeEvent.outcome)) == "unmatched"
    assert db.session.scalars(sa.select(Subscription)).all() == []


def test_an_unpaid_subscription_session_waits_until_its_first_invoice_is_paid(
    client, logged_in, user, sub_id, fixed_clock
):
    send(
        client,
        "checkout.session.completed",
        subscription_session(sub_id, user.id, payment_status="unpaid"),
    )
    assert the_subscription().status == "incomplete"
    assert "waiting for the first payment" in logged_in.get("/credits").get_data(as_text=True)
    send(client, "invoice.paid", invoice(sub_id, user.id))
    assert the_subscription().status == "active" and balance_of(user.id) == 1000


def test_a_payment_failure_heard_first_records_a_past_due_subscription(client, user, sub_id):
    send(client, "invoice.payment_failed", invoice(sub_id, user.id, status="open"))
    assert the_subscription().status == "past_due" and grants() == []
