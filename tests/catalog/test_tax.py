"""STRIPE_AUTOMATIC_TAX: the contract's tax parameters; amount_total = amount + amount_tax."""

import csv
import io

import pytest
import sqlalchemy as sa

from tests.concurrency import run_processes
from tests.conftest import login, requires_postgres
from tests.stripe_fakes import checkout_session, deliver, event
from tests.webhooks.test_webhook_concurrency import PROCESSES, _deliver_all
from webapp.domain import checkout, users
from webapp.extensions import db
from webapp.models import CreditAccount, LedgerEntry, Purchase

TAX_PARAMS = {
    "automatic_tax": {"enabled": "true"},
    "customer_update": {"address": "auto", "name": "auto"},
    "tax_id_collection": {"enabled": "true"},
}


@pytest.fixture
def config_overrides():
    return {"STRIPE_AUTOMATIC_TAX": True}


@pytest.fixture
def taxed(stripe_double):
    stripe_double.tax_percent = 10
    return stripe_double


def session_params(stripe_double) -> dict:
    return stripe_double.requests_to("post", "/v1/checkout/sessions")[-1]["params"]


def buy(client, stripe_double, credits: int = 1000) -> tuple[Purchase, dict]:
    assert client.post("/credits/checkout", data={"credits": str(credits)}).status_code == 303
    purchase = db.session.scalar(sa.select(Purchase).order_by(Purchase.id.desc()))
    return purchase, stripe_double.complete_checkout_session(purchase.stripe_checkout_session_id)


def balance(user_id: int) -> int:
    db.session.expire_all()
    return db.session.get(CreditAccount, user_id).balance


def test_payment_sessions_carry_the_tax_parameters(logged_in, stripe_double):
    logged_in.post("/credits/checkout", data={"credits": "1000"})
    params = session_params(stripe_double)
    assert {name: params[name] for name in TAX_PARAMS} == TAX_PARAMS
    assert params["line_items"][0]["price_data"]["tax_behavior"] == "exclusive"


def test_subscription_sessions_carry_the_tax_parameters(logged_in, stripe_double):
    assert logged_in.post("/billing/subscribe", data={"plan": "basic"}).status_code == 303
    params = session_params(stripe_double)
    assert params["mode"] == "subscription"
    assert {name: params[name] for name in TAX_PARAMS} == TAX_PARAMS
    assert params["line_items"][0]["price_data"]["tax_behavior"] == "exclusive"


@pytest.mark.parametrize("config_overrides", [{"STRIPE_AUTOMATIC_TAX": False}])
def test_without_automatic_tax_no_tax_parameters_are_sent(logged_in, stripe_double):
    logged_in.post("/credits/checkout", data={"credits": "1000"})
    params = session_params(stripe_double)
    assert not set(TAX_PARAMS) & set(params)
    assert "tax_behavior" not in params["line_items"][0]["price_data"]


def test_a_taxed_session_credits_exactly_the_recorded_credits(logged_in, client, taxed, user):
    purchase, session = buy(logged_in, taxed)
    assert (session["amount_total"], session["total_details"]["amount_tax"]) == (1100, 100)
    assert deliver(client, event("checkout.session.completed", session)).status_code == 200
    assert deliver(client, event("checkout.session.completed", session)).status_code == 200
    assert balance(user.id) == 1000
    assert [e.credits for e in db.session.scalars(sa.select(LedgerEntry))] == [1000]
    stored = db.session.get(Purchase, purchase.id)
    assert (stored.status, stored.amount_cents, stored.tax_cents) == ("paid", 1000, 100)


def test_the_success_page_credits_a_taxed_session_too(logged_in, taxed, user):
    purchase, _ = buy(logged_in, taxed)
    page = logged_in.get(f"/credits/success?session_id={purchase.stripe_checkout_session_id}")
    assert page.status_code == 200
    assert balance(user.id) == 1000
    assert db.session.get(Purchase, purchase.id).tax_cents == 100


@pytest.mark.parametrize(
    "total, tax",
    [
        (1150, 100),  # total is not amount + tax
        (1000, 100),  # tax included in the total: the recorded amount was not all paid
        (1100, 0),  # more than recorded, no tax to explain it
        (1100, -100),  # malformed tax
        (1100, "100"),
        (1100, "9" * 600),  # the review reason stays within its column
    ],
)
def test_a_total_that_is_not_amount_plus_tax_goes_to_review(
    logged_in, client, taxed, user, total, tax
):
    purchase, session = buy(logged_in, taxed)
    session = {
        **session,
        "amount_total": total,
        "total_details": {**session["total_details"], "amount_tax": tax},
    }
    assert deliver(client, event("checkout.session.completed", session)).status_code == 200
    assert balance(user.id) == 0
    stored = db.session.get(Purchase, purchase.id)
    assert stored.status == "needs_review" and stored.credited_at is None
    assert "before tax" in stored.review_reason
    # The right session arriving later credits nothing either: review is settled by hand.
    good = {**session, "amount_total": 1100, "total_details": {"amount_tax": 100}}
    deliver(client, event("checkout.session.completed", good))
    assert balance(user.id) == 0


def test_tax_is_shown_in_history_admin_page_and_csv(logged_in, client, taxed, user, admin):
    purchase, session = buy(logged_in, taxed)
    deliver(client, event("checkout.session.completed", session))
    history = logged_in.get("/credits/history?tab=payments").get_data(as_text=True)
    assert "11.00 USD" in history and "incl. tax 1.00 USD" in history
    logged_in.post("/auth/logout")
    login(client, admin.email)
    detail = client.get(f"/admin/purchases/{purchase.id}").get_data(as_text=True)
    assert "1.00 USD · total 11.00 USD" in detail
    rows = list(
        csv.DictReader(io.StringIO(client.get("/admin/purchases.csv").get_data(as_text=True)))
    )
    assert [(row["amount"], row["tax"]) for row in rows] == [("10.00", "1.00")]


@requires_postgres
def test_taxed_sessions_delivered_from_several_processes_credit_once(app):
    """The one-statement webhook path (PostgreSQL) applies the same tax rule under load."""
    user = users.create_user("taxed@example.com", "correct-horse")
    events, expected = [], {}
    for k in range(8):
        purchase = checkout.start_checkout(user, 100 + k, "https://x.test")
        tax = 0 if k % 4 == 0 else 7 + k  # some sessions without tax
        wrong = k == 5  # total is not amount + tax: review
        session = checkout_session(
            purchase.id,
            user.id,
            amount=purchase.amount_cents + tax + (1 if wrong else 0),
            session_id=purchase.stripe_checkout_session_id,
            total_details={"amount_discount": 0, "amount_shipping": 0, "amount_tax": tax},
        )
        expected[purchase.id] = ("needs_review", 0) if wrong else ("paid", tax)
        events += [event("checkout.session.completed", session)] * 2
        events.append(event("checkout.session.async_payment_succeeded", session))
    db.session.close()

    run = run_processes(
        _deliver_all,
        [(list(events), seed) for seed in range(PROCESSES)],
        together=True,
        answer_timeout=180,
    )
    statuses = [status for answer in run.answers for status in answer]

    assert run.exitcodes == [0] * PROCESSES
    assert statuses == [200] * (len(events) * PROCESSES)
    found = {p.id: (p.status, p.tax_cents) for p in db.session.scalars(sa.select(Purchase))}
    assert found == expected
    credited = sum(p.credits for p in db.session.scalars(sa.select(Purchase)) if p.status == "paid")
    assert balance(user.id) == credited
    assert db.session.scalar(sa.select(sa.func.count()).select_from(LedgerEntry)) == 7


def test_refunds_of_a_taxed_purchase_are_shares_of_the_whole_charge(logged_in, client, taxed, user):
    purchase, session = buy(logged_in, taxed)
    deliver(client, event("checkout.session.completed", session))
    charge = taxed.objects[taxed.objects[session["payment_intent"]]["latest_charge"]]
    assert charge["amount"] == 1100
    partial = {**charge, "amount_refunded": 1000, "refunded": False}
    assert deliver(client, event("charge.refunded", partial)).status_code == 200
    assert balance(user.id) == 1000 - 1000 * 1000 // 1100  # 909 credits taken back
    assert db.session.get(Purchase, purchase.id).status == "partially_refunded"
    full = {**charge, "amount_refunded": 1100, "refunded": True}
    assert deliver(client, event("charge.refunded", full)).status_code == 200
    assert balance(user.id) == 0
    assert db.session.get(Purchase, purchase.id).status == "refunded"


def test_the_admin_can_refund_the_tax_too(logged_in, client, taxed, user, admin):
    purchase, session = buy(logged_in, taxed)
    deliver(client, event("checkout.session.completed", session))
    logged_in.post("/auth/logout")
    login(client, admin.email)
    assert "Up to 11.00 USD can be refunded" in client.get(
        f"/admin/purchases/{purchase.id}"
    ).get_data(as_text=True)
    response = client.post(f"/admin/purchases/{purchase.id}/refund", data={"amount": ""})
    assert response.status_code == 303
    [refund] = taxed.requests_to("post", "/v1/refunds")
    assert refund["params"]["amount"] == "1100"  # all of it, tax included
