"""Defect 8: revenue nets lost disputes, shows money held under review, counts plan invoices."""

from tests.conftest import login
from tests.payments import MismatchedPayment, Payment
from tests.stripe_fakes import deliver, event
from tests.subscription_fakes import invoice, new_id
from webapp.domain import admin_reports


def send(client, evt):
    assert deliver(client, evt).status_code == 200


def test_revenue_counts_every_kind_of_money_once(client, admin, user, stripe_double):
    kept = Payment(stripe_double, user, 1000)
    send(client, kept.completed())
    lost = Payment(stripe_double, user, 500)
    send(client, lost.completed())
    send(client, lost.dispute("charge.dispute.created", 500, dispute_id="dp_lost"))
    send(client, lost.dispute("charge.dispute.closed", 500, "lost", dispute_id="dp_lost"))
    won = Payment(stripe_double, user, 700)
    send(client, won.completed())
    send(client, won.dispute("charge.dispute.created", 700, dispute_id="dp_won"))
    send(client, won.dispute("charge.dispute.closed", 700, "won", dispute_id="dp_won"))
    review = MismatchedPayment(stripe_double, user, 1000, charged=1200)
    send(client, review.completed())
    plan_invoice = invoice(new_id("sub"), user.id)  # 9.00 for the basic plan
    send(client, event("invoice.paid", plan_invoice))
    charge = {
        **stripe_double.templates("charge"),
        "id": new_id("ch"),
        "amount": 900,
        "amount_refunded": 300,
        "refunded": False,
        "currency": "usd",
        "payment_intent": plan_invoice["payments"]["data"][0]["payment"]["payment_intent"],
    }
    send(client, event("charge.refunded", charge))
    held = invoice(new_id("sub"), user.id, amount_paid=100)  # did not pay the plan: held
    send(client, event("invoice.paid", held))

    [usd] = admin_reports.revenue_by_currency()
    assert usd.currency == "usd"
    assert usd.charged == 1000 + 500 + 700 + 900
    assert usd.refunded == 300
    assert usd.disputes_lost == 500
    assert usd.net == 1000 + 700 + 600
    assert usd.under_review == 1200 + 100

    login(client, admin.email)
    page = client.get("/admin/").get_data(as_text=True)
    revenue = page.split('id="revenue"')[1].split("</section>")[0]
    for shown in ("31.00 USD", "3.00 USD", "5.00 USD", "23.00 USD", "13.00 USD"):
        assert shown in revenue, shown
