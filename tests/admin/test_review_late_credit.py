"""A purchase credited after review: what refunds and disputes recorded while it waited
take their share, and the tax Stripe charged is kept."""

import pytest

from tests.conftest import login
from tests.payments import MismatchedPayment, balance_of, ledger_sum
from tests.stripe_fakes import deliver, event
from webapp.domain import checkout
from webapp.extensions import db
from webapp.models import Purchase


def test_crediting_a_reviewed_purchase_after_a_partial_refund_takes_the_refunded_share(
    client, admin, user, stripe_double
):
    """A purchase under review (Stripe charged 12.00 for 1,000 credits recorded at 10.00) is
    partly refunded at Stripe (6.00): charge.refunded records amount_refunded and, the
    purchase being uncredited, takes nothing. The admin then credits it after review:
    all 1,000 credits arrive and the refunded half is never taken back, although the
    contract says refunds take floor(credits x amount_refunded / amount_total) in total."""
    payment = MismatchedPayment(stripe_double, user)
    assert deliver(client, payment.completed()).status_code == 200
    assert payment.purchase().status == "needs_review"
    assert deliver(client, payment.refunded(600)).status_code == 200  # from the Dashboard
    assert payment.purchase().status == "needs_review"  # still waiting for an admin

    login(client, admin.email)
    url = f"/admin/purchases/{payment.purchase_id}/review/credit"
    assert client.post(url, data={"reason": "customer paid the old price"}).status_code == 303

    purchase = payment.purchase()
    assert balance_of(user.id) == ledger_sum(user.id)
    assert (purchase.amount_cents, purchase.amount_refunded_cents) == (1200, 600)
    assert balance_of(user.id) == 500, "half the money went back, all the credits stayed"
    assert purchase.status == "partially_refunded"


def test_crediting_a_reviewed_purchase_with_an_open_dispute_gives_the_dispute_its_credits(
    client, admin, user, stripe_double
):
    """The customer disputes all of a purchase under review (charge.dispute.created takes
    nothing: nothing was credited). The admin then credits it after review: 1,000 credits
    arrive while the bank holds the whole payment, and when the dispute is lost the
    customer has both the money and the credits (the contract: a dispute takes
    floor(credits x amount / amount_total), lost keeps it)."""
    payment = MismatchedPayment(stripe_double, user)
    assert deliver(client, payment.completed()).status_code == 200
    opened = payment.dispute("charge.dispute.created", dispute_id="dp_review")
    assert deliver(client, opened).status_code == 200

    login(client, admin.email)
    url = f"/admin/purchases/{payment.purchase_id}/review/credit"
    assert client.post(url, data={"reason": "customer paid the old price"}).status_code == 303
    lost = payment.dispute("charge.dispute.closed", status="lost", dispute_id="dp_review")
    assert deliver(client, lost).status_code == 200

    assert balance_of(user.id) == ledger_sum(user.id)
    assert balance_of(user.id) == 0, "the bank took the whole payment back; the credits stay"


@pytest.mark.parametrize("config_overrides", [{"STRIPE_AUTOMATIC_TAX": True}])
def test_review_credit_keeps_the_tax_stripe_charged(
    client, admin, user, stripe_double, config_overrides
):
    """A taxed session that did not match (Stripe charged 1100 + 110 tax for a purchase
    recorded at 1000) is credited by an admin: the purchase takes amount_total (tax
    included) as its amount and records no tax, so the tax Stripe charged is lost from the
    purchase, its export and the revenue split."""
    stripe_double.tax_percent = 10
    purchase = checkout.start_checkout(user, 1000, "https://credits.example.test")
    sid = purchase.stripe_checkout_session_id
    stripe_double.objects[sid]["amount_total"] = 1210
    stripe_double.objects[sid]["total_details"]["amount_tax"] = 110
    session = stripe_double.complete_checkout_session(sid)
    assert deliver(client, event("checkout.session.completed", session)).status_code == 200
    db.session.expire_all()
    assert db.session.get(Purchase, purchase.id).status == "needs_review"
    login(client, admin.email)
    url = f"/admin/purchases/{purchase.id}/review/credit"
    assert client.post(url, data={"reason": "paid the old price"}).status_code == 303
    db.session.expire_all()
    credited = db.session.get(Purchase, purchase.id)
    assert credited.status == "paid"
    assert (credited.amount_cents, credited.tax_cents) == (1100, 110)
