"""Defects 3 and 4: plan grants follow what the invoice charged; unmatchable ones are kept."""

import pytest
import sqlalchemy as sa

from tests.conftest import login
from tests.payments import balance_of
from tests.stripe_fakes import deliver, event
from tests.subscription_fakes import invoice, new_id, subscription_session
from webapp.extensions import db
from webapp.models import CreditGrant, StripeEvent


def send(client, evt, status=200):
    response = deliver(client, evt)
    assert response.status_code == status, response.get_data(as_text=True)


def held_reasons():
    db.session.expire_all()
    return db.session.scalars(
        sa.select(CreditGrant.review_reason).where(CreditGrant.review_reason.is_not(None))
    ).all()


def admin_sees(client, admin, text):
    login(client, admin.email)
    page = client.get("/admin/subscriptions").get_data(as_text=True)
    return "Invoices held for review" in page and text in page


@pytest.mark.parametrize(
    "fields, why",
    [
        ({"amount_paid": 0}, "paid 0.00 USD"),  # a trial
        (
            {"amount_paid": 0, "total_discount_amounts": [{"amount": 900, "discount": "di_1"}]},
            "nothing was paid",
        ),  # a 100% coupon
        ({"amount_paid": 100}, "paid 1.00 USD but the basic plan costs 9.00 USD"),
        ({"currency": "eur"}, "paid 9.00 EUR"),
    ],
)
def test_an_invoice_that_did_not_pay_the_plan_grants_nothing_and_is_held(
    client, user, admin, fields, why
):
    paid = invoice(new_id("sub"), user.id, **fields)
    send(client, event("invoice.paid", paid))
    assert balance_of(user.id) == 0
    assert len(held_reasons()) == 1 and why in held_reasons()[0]
    send(client, event("invoice.paid", paid))  # once per invoice
    assert len(held_reasons()) == 1
    assert admin_sees(client, admin, paid["id"])


def test_a_discount_stripe_reports_is_part_of_the_price(client, user):
    paid = invoice(
        new_id("sub"),
        user.id,
        amount_paid=450,
        total_discount_amounts=[{"amount": 450, "discount": "di_half"}],
    )
    send(client, event("invoice.paid", paid))
    assert balance_of(user.id) == 1000 and held_reasons() == []


def test_added_tax_is_not_taken_for_a_price_mismatch(client, user):
    paid = invoice(
        new_id("sub"),
        user.id,
        amount_paid=990,
        total_taxes=[{"amount": 90, "tax_behavior": "exclusive"}],
    )
    send(client, event("invoice.paid", paid))
    assert balance_of(user.id) == 1000


class TestConfiguredPrices:
    @pytest.fixture
    def config_overrides(self):
        return {"PLANS": "basic:1000:900:expire:price_basic,pro:5000:3900:rollover:price_pro"}

    def test_a_price_not_in_plans_does_not_fall_back_to_the_old_plan(self, client, user, admin):
        sub_id = new_id("sub")
        send(client, event("invoice.paid", invoice(sub_id, user.id, price="price_basic")))
        assert balance_of(user.id) == 1000
        # Switched in Stripe to a $1 Price nobody configured: no Pro, no Basic.
        renewal = invoice(
            sub_id,
            user.id,
            plan="pro",
            price="price_cheap",
            amount_paid=100,
            reason="subscription_cycle",
        )
        send(client, event("invoice.paid", renewal))
        assert balance_of(user.id) == 1000
        assert "price_cheap is not a plan's Price" in held_reasons()[0]
        assert admin_sees(client, admin, renewal["id"])


class TestPlanRemoved:
    @pytest.fixture
    def config_overrides(self):
        return {"PLANS": "pro:5000:3900:rollover"}

    def test_an_invoice_for_a_plan_no_longer_configured_is_held_not_lost(self, client, user, admin):
        paid = invoice(new_id("sub"), user.id, plan="basic")
        send(client, event("invoice.paid", paid))
        assert balance_of(user.id) == 0
        assert "no plan in PLANS matches" in held_reasons()[0]
        assert admin_sees(client, admin, paid["id"])


def test_an_invoice_of_ours_nobody_can_be_found_for_answers_500_and_shows_on_events(client, admin):
    stranger = invoice(new_id("sub"), 999_999)  # our metadata, a user that does not exist
    send(client, event("invoice.paid", stranger, event_id="evt_lost_invoice"), status=500)
    failed = db.session.scalars(sa.select(StripeEvent)).one()
    assert (failed.stripe_event_id, failed.outcome) == ("evt_lost_invoice", "failed")
    assert "UnmatchedInvoiceError" in failed.error
    login(client, admin.email)
    assert "evt_lost_invoice" in client.get("/admin/events").get_data(as_text=True)


def test_a_subscription_session_then_matching_invoice_still_grants(client, user):
    sub_id = new_id("sub")
    send(client, event("checkout.session.completed", subscription_session(sub_id, user.id)))
    send(client, event("invoice.paid", invoice(sub_id, user.id)))
    assert balance_of(user.id) == 1000 and held_reasons() == []
