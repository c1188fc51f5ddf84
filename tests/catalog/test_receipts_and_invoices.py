"""Receipt and invoice links: fetched once, stored, shown only for paid purchases."""

import pytest
import sqlalchemy as sa

from tests.conftest import login
from tests.stripe_fakes import deliver, event, fixture
from webapp.extensions import db
from webapp.models import Purchase, StripeEvent


@pytest.fixture
def config_overrides():
    return {"CHECKOUT_INVOICES": True}


def start(client) -> Purchase:
    assert client.post("/credits/checkout", data={"credits": "1000"}).status_code == 303
    return db.session.scalar(sa.select(Purchase).order_by(Purchase.id.desc()))


def payments_page(client) -> str:
    return client.get("/credits/history?tab=payments").get_data(as_text=True)


def stored(purchase_id: int) -> Purchase:
    db.session.expire_all()
    return db.session.get(Purchase, purchase_id)


def receipt_reads(stripe_double):
    return stripe_double.requests_to("get", "/v1/payment_intents/")


def test_sessions_ask_stripe_for_an_invoice_carrying_the_purchase(logged_in, stripe_double, user):
    purchase = start(logged_in)
    params = stripe_double.requests_to("post", "/v1/checkout/sessions")[0]["params"]
    assert params["invoice_creation"] == {
        "enabled": "true",
        "invoice_data": {"metadata": params["metadata"]},
    }
    assert params["metadata"]["purchase_id"] == str(purchase.id)


@pytest.mark.parametrize("config_overrides", [{"CHECKOUT_INVOICES": False}])
def test_no_invoice_is_asked_for_by_default(logged_in, stripe_double):
    start(logged_in)
    assert (
        "invoice_creation"
        not in stripe_double.requests_to("post", "/v1/checkout/sessions")[0]["params"]
    )


@pytest.mark.parametrize("invoice_first", [True, False])
def test_a_paid_purchase_links_its_invoice_and_receipt(
    logged_in, client, stripe_double, invoice_first
):
    purchase = start(logged_in)
    session = stripe_double.complete_checkout_session(purchase.stripe_checkout_session_id)
    invoice = stripe_double.objects[session["invoice"]]
    charge = stripe_double.objects[
        stripe_double.objects[session["payment_intent"]]["latest_charge"]
    ]
    deliveries = [
        event("invoice.finalized", invoice),
        event("invoice.paid", invoice),
        event("checkout.session.completed", session),
    ]
    for evt in deliveries if invoice_first else reversed(deliveries):
        assert deliver(client, evt).status_code == 200
    paid = stored(purchase.id)
    assert paid.status == "paid" and paid.stripe_invoice_id == invoice["id"]
    assert paid.invoice_url == invoice["hosted_invoice_url"]
    assert paid.invoice_pdf_url == invoice["invoice_pdf"]

    page = payments_page(logged_in)
    assert f'href="{charge["receipt_url"]}"' in page
    assert f'href="{invoice["hosted_invoice_url"]}"' in page
    assert f'href="{invoice["invoice_pdf"]}"' in page
    [read] = receipt_reads(stripe_double)
    assert read["params"] == {"expand": ["latest_charge"]}
    assert stored(purchase.id).receipt_url == charge["receipt_url"]
    payments_page(logged_in)
    assert len(receipt_reads(stripe_double)) == 1  # stored: Stripe is not asked again


def test_the_invoice_is_fetched_on_first_view_when_no_invoice_event_came(
    logged_in, client, stripe_double
):
    purchase = start(logged_in)
    session = stripe_double.complete_checkout_session(purchase.stripe_checkout_session_id)
    deliver(client, event("checkout.session.completed", session))
    invoice = stripe_double.objects[session["invoice"]]
    assert f'href="{invoice["hosted_invoice_url"]}"' in payments_page(logged_in)
    assert len(stripe_double.requests_to("get", "/v1/invoices/")) == 1
    payments_page(logged_in)
    assert len(stripe_double.requests_to("get", "/v1/invoices/")) == 1


def test_pending_and_failed_purchases_show_no_links_and_ask_stripe_nothing(
    logged_in, client, stripe_double
):
    pending = start(logged_in)
    session = stripe_double.complete_checkout_session(pending.stripe_checkout_session_id)
    invoice = stripe_double.objects[session["invoice"]]
    deliver(client, event("invoice.paid", invoice))  # the invoice is known, the payment is not
    failed = start(logged_in)
    delayed = stripe_double.complete_checkout_session(failed.stripe_checkout_session_id, paid=False)
    deliver(client, event("checkout.session.completed", delayed))
    deliver(client, event("checkout.session.async_payment_failed", delayed))
    assert stored(failed.id).status == "failed" and stored(pending.id).status == "pending"
    assert stored(pending.id).invoice_url == invoice["hosted_invoice_url"]

    page = payments_page(logged_in)
    assert "receipt-link" not in page and "invoice-link" not in page
    assert invoice["hosted_invoice_url"] not in page
    assert receipt_reads(stripe_double) == []


def test_a_stripe_failure_on_first_view_leaves_the_page_working(logged_in, client, stripe_double):
    purchase = start(logged_in)
    session = stripe_double.complete_checkout_session(purchase.stripe_checkout_session_id)
    deliver(client, event("checkout.session.completed", session))
    stripe_double.unreachable.add("/v1/")
    page = logged_in.get("/credits/history?tab=payments")
    assert page.status_code == 200 and "receipt-link" not in page.get_data(as_text=True)
    assert stored(purchase.id).receipt_url is None
    stripe_double.unreachable.clear()
    assert "receipt-link" in payments_page(logged_in)


def test_the_admin_purchase_page_links_the_receipt_of_a_paid_purchase(
    logged_in, client, stripe_double, admin
):
    paid = start(logged_in)
    session = stripe_double.complete_checkout_session(paid.stripe_checkout_session_id)
    deliver(client, event("checkout.session.completed", session))
    pending = start(logged_in)
    logged_in.post("/auth/logout")
    login(client, admin.email)
    charge = stripe_double.objects[
        stripe_double.objects[session["payment_intent"]]["latest_charge"]
    ]
    page = client.get(f"/admin/purchases/{paid.id}").get_data(as_text=True)
    assert f'href="{charge["receipt_url"]}"' in page
    assert "receipt-link" not in client.get(f"/admin/purchases/{pending.id}").get_data(as_text=True)
    csv_text = client.get("/admin/purchases.csv").get_data(as_text=True)
    assert charge["receipt_url"] in csv_text


def test_invoice_events_that_are_not_a_known_top_up_change_nothing(client, user):
    other = fixture("invoice", id="in_other", metadata={}, hosted_invoice_url="https://x.test/i")
    stranger = fixture(
        "invoice",
        id="in_stranger",
        hosted_invoice_url="https://x.test/j",
        metadata={"purpose": "credits_topup", "purchase_id": "999", "user_id": str(user.id)},
    )
    for evt in (event("invoice.finalized", other), event("invoice.paid", stranger)):
        assert deliver(client, evt).status_code == 200
    outcomes = dict(db.session.execute(sa.select(StripeEvent.object_id, StripeEvent.outcome)).all())
    assert outcomes == {"in_other": "ignored", "in_stranger": "unmatched"}
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Purchase)) == 0
