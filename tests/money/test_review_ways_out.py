"""Defect 7: a purchase under review can be credited or refunded by an admin, audited."""

import sqlalchemy as sa

from tests.conftest import login
from tests.payments import MismatchedPayment, Payment, balance_of, ledger_sum
from tests.stripe_fakes import deliver, event
from webapp.extensions import db
from webapp.models import AdminAction, LedgerEntry, Purchase


def under_review(client, stripe_double, user):
    payment = MismatchedPayment(stripe_double, user)
    assert deliver(client, payment.completed()).status_code == 200
    assert payment.purchase().status == "needs_review" and balance_of(user.id) == 0
    return payment


def actions(purchase_id):
    return db.session.execute(
        sa.select(AdminAction.action, AdminAction.admin_id).where(
            AdminAction.target_type == "purchase", AdminAction.target_id == purchase_id
        )
    ).all()


def test_credit_it_credits_the_recorded_credits_once_and_later_refunds_find_it(
    client, admin, user, stripe_double
):
    payment = under_review(client, stripe_double, user)
    login(client, admin.email)
    page = client.get(f"/admin/purchases/{payment.purchase_id}").get_data(as_text=True)
    assert "Credit it" in page and "Refund it" in page
    url = f"/admin/purchases/{payment.purchase_id}/review/credit"
    assert client.post(url, data={"reason": "customer paid the old price"}).status_code == 303
    assert client.post(url, data={"reason": "double click"}).status_code == 400
    assert balance_of(user.id) == 1000 == ledger_sum(user.id)
    purchase = payment.purchase()
    assert purchase.status == "paid" and purchase.credited_at is not None
    assert (purchase.amount_cents, purchase.currency) == (1200, "usd")  # what Stripe charged
    row = db.session.scalars(sa.select(LedgerEntry)).one()
    assert (row.kind, row.purchase_id, row.actor_id) == ("purchase", purchase.id, admin.id)
    assert actions(purchase.id) == [("review_credited", admin.id)]
    # The linked purchase is found by later refunds of its charge: half the money back.
    assert deliver(client, payment.refunded(600)).status_code == 200
    assert balance_of(user.id) == 500 == ledger_sum(user.id)


def test_refund_it_asks_stripe_for_everything_and_the_refund_closes_the_review(
    client, admin, user, stripe_double
):
    payment = under_review(client, stripe_double, user)
    login(client, admin.email)
    url = f"/admin/purchases/{payment.purchase_id}/review/refund"
    assert client.post(url).status_code == 303
    [sent] = stripe_double.requests_to("post", "/v1/refunds")
    assert sent["params"] == {"payment_intent": payment.intent["id"]}
    assert actions(payment.purchase_id) == [("review_refund_requested", admin.id)]
    refunded = event("charge.refunded", stripe_double.objects[payment.charge["id"]])
    assert deliver(client, refunded).status_code == 200
    assert deliver(client, refunded).status_code == 200
    assert deliver(client, payment.completed()).status_code == 200  # a late replay
    purchase = payment.purchase()
    assert purchase.status == "refunded" and purchase.credited_at is None
    assert balance_of(user.id) == 0 == ledger_sum(user.id)
    page = client.get("/admin/purchases?status=needs_review").get_data(as_text=True)
    assert f'/admin/purchases/{payment.purchase_id}"' not in page


def test_only_purchases_under_review_have_these_ways_out(client, admin, user, stripe_double):
    paid = Payment(stripe_double, user, 1000)
    deliver(client, paid.completed())
    login(client, admin.email)
    for action in ("credit", "refund"):
        response = client.post(
            f"/admin/purchases/{paid.purchase_id}/review/{action}", data={"reason": "x"}
        )
        assert response.status_code == 400
    assert balance_of(user.id) == 1000
    assert stripe_double.requests_to("post", "/v1/refunds") == []
    assert actions(paid.purchase_id) == []


def test_non_admins_cannot_use_them(logged_in, user, stripe_double):
    payment = MismatchedPayment(stripe_double, user)
    deliver(logged_in, payment.completed())
    response = logged_in.post(
        f"/admin/purchases/{payment.purchase_id}/review/credit", data={"reason": "me"}
    )
    assert response.status_code == 403 and balance_of(user.id) == 0
    assert db.session.get(Purchase, payment.purchase_id).status == "needs_review"
