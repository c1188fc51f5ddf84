"""CREDIT_PACKS with Stripe Price ids: read through the gateway, checked, cached, sold."""

from datetime import timedelta

import pytest
import sqlalchemy as sa

from tests.stripe_fakes import add_price, deliver, event
from webapp.domain import clock
from webapp.extensions import db
from webapp.models import CatalogPrice, CreditAccount, LedgerEntry, Purchase
from webapp.models.types import utcnow

PACK = "price_tokens_50"


@pytest.fixture
def config_overrides():
    return {"CREDIT_PACKS": (500, PACK)}


@pytest.fixture
def fixed_clock():
    yield clock.fix
    clock.fix(None)


def price_reads(stripe_double):
    return stripe_double.requests_to("get", "/v1/prices/")


def test_a_price_pack_is_shown_with_its_own_name_and_amount(logged_in, stripe_double):
    add_price(stripe_double, PACK, credits="5000", amount=4500, product_name="Tokens 50")
    page = logged_in.get("/credits").get_data(as_text=True)
    assert "Tokens 50" in page and "45.00 USD" in page
    assert f'name="pack" value="{PACK}"' in page
    assert 'name="credits" value="500"' in page  # the plain pack is still there
    [read] = price_reads(stripe_double)
    assert read["path"] == f"/v1/prices/{PACK}" and read["params"] == {"expand": ["product"]}


def test_prices_are_read_once_and_then_served_from_the_cache(logged_in, stripe_double, fixed_clock):
    add_price(stripe_double, PACK)
    start = utcnow()
    fixed_clock(start)
    logged_in.get("/credits")
    logged_in.get("/credits")
    assert len(price_reads(stripe_double)) == 1
    fixed_clock(start + timedelta(hours=1, seconds=1))  # PRICE_CACHE_SECONDS later
    logged_in.get("/credits")
    assert len(price_reads(stripe_double)) == 2


def test_a_price_pack_is_bought_end_to_end_through_the_signed_webhook(
    logged_in, client, stripe_double, user
):
    add_price(stripe_double, PACK, credits="5000", amount=4500)
    response = logged_in.post("/credits/checkout", data={"pack": PACK})
    assert response.status_code == 303
    purchase = db.session.scalar(sa.select(Purchase))
    assert (purchase.credits, purchase.amount_cents, purchase.stripe_price_id) == (5000, 4500, PACK)
    [sent] = stripe_double.requests_to("post", "/v1/checkout/sessions")
    assert sent["params"]["line_items"] == [{"price": PACK, "quantity": "1"}]
    assert sent["params"]["metadata"]["credits"] == "5000"

    session = stripe_double.complete_checkout_session(purchase.stripe_checkout_session_id)
    assert session["amount_total"] == 4500
    assert deliver(client, event("checkout.session.completed", session)).status_code == 200
    assert deliver(client, event("checkout.session.completed", session)).status_code == 200
    db.session.expire_all()
    assert db.session.get(CreditAccount, user.id).balance == 5000
    entries = db.session.scalars(sa.select(LedgerEntry)).all()
    assert [(e.kind, e.credits) for e in entries] == [("purchase", 5000)]
    assert db.session.get(Purchase, purchase.id).status == "paid"


def test_the_recorded_price_is_kept_when_the_price_changes_in_stripe(
    logged_in, client, stripe_double, user
):
    add_price(stripe_double, PACK, credits="5000", amount=4500)
    logged_in.post("/credits/checkout", data={"pack": PACK})
    purchase = db.session.scalar(sa.select(Purchase))
    # The Price's amount as Stripe charges it differs from what was recorded: review.
    session = stripe_double.complete_checkout_session(purchase.stripe_checkout_session_id)
    deliver(client, event("checkout.session.completed", {**session, "amount_total": 3000}))
    db.session.expire_all()
    assert db.session.get(Purchase, purchase.id).status == "needs_review"
    assert db.session.get(CreditAccount, user.id).balance == 0


@pytest.mark.parametrize(
    "config_overrides", [{"CREDIT_PACKS": (PACK,), "CUSTOMER_PAYS_FEES": True}]
)
def test_the_fee_line_applies_to_price_packs(logged_in, stripe_double):
    add_price(stripe_double, PACK, credits="250", amount=250)
    logged_in.post("/credits/checkout", data={"pack": PACK})
    items = stripe_double.requests_to("post", "/v1/checkout/sessions")[0]["params"]["line_items"]
    assert items[0] == {"price": PACK, "quantity": "1"}
    assert items[1]["price_data"]["unit_amount"] == "39"
    assert items[1]["price_data"]["product_data"]["name"] == "Processing fee"
    purchase = db.session.scalar(sa.select(Purchase))
    assert (purchase.value_cents, purchase.fee_cents, purchase.amount_cents) == (250, 39, 289)


@pytest.mark.parametrize("pack", ["price_not_listed", "500", "", "price_" + "x" * 300])
def test_a_pack_not_on_offer_is_refused_without_calling_stripe(logged_in, stripe_double, pack):
    add_price(stripe_double, "price_not_listed")  # valid in Stripe, but not in CREDIT_PACKS
    response = logged_in.post("/credits/checkout", data={"pack": pack})
    assert response.status_code == 400
    assert stripe_double.requests_to("post", "/v1/checkout/sessions") == []
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Purchase)) == 0


def test_an_invalid_price_is_not_offered_and_cannot_be_bought(logged_in, stripe_double):
    add_price(stripe_double, PACK, active=False)
    page = logged_in.get("/credits").get_data(as_text=True)
    assert PACK not in page and 'name="credits" value="500"' in page
    response = logged_in.post("/credits/checkout", data={"pack": PACK})
    assert response.status_code == 400 and "not on offer" in response.get_data(as_text=True)
    assert stripe_double.requests_to("post", "/v1/checkout/sessions") == []


def test_stripe_unreachable_at_startup_serves_plain_packs_and_retries_later(
    logged_in, stripe_double, fixed_clock
):
    add_price(stripe_double, PACK, product_name="Tokens 50")
    stripe_double.unreachable.add("/v1/prices")
    start = utcnow()
    fixed_clock(start)
    response = logged_in.get("/credits")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert 'name="credits" value="500"' in page and PACK not in page
    assert logged_in.post("/credits/checkout", data={"pack": PACK}).status_code == 400
    assert db.session.scalar(sa.select(sa.func.count()).select_from(CatalogPrice)) == 0

    stripe_double.unreachable.clear()
    fixed_clock(start + timedelta(seconds=30))  # before PRICE_RETRY_SECONDS: not asked again
    attempts = len(stripe_double.requests)
    assert PACK not in logged_in.get("/credits").get_data(as_text=True)
    assert len(stripe_double.requests) == attempts
    fixed_clock(start + timedelta(seconds=61))
    assert "Tokens 50" in logged_in.get("/credits").get_data(as_text=True)
    assert logged_in.post("/credits/checkout", data={"pack": PACK}).status_code == 303


def test_a_cached_price_is_still_sold_while_stripe_is_unreachable(
    logged_in, stripe_double, fixed_clock
):
    add_price(stripe_double, PACK, product_name="Tokens 50")
    start = utcnow()
    fixed_clock(start)
    logged_in.get("/credits")
    stripe_double.unreachable.add("/v1/prices")
    fixed_clock(start + timedelta(hours=2))
    assert "Tokens 50" in logged_in.get("/credits").get_data(as_text=True)


@pytest.mark.parametrize("config_overrides", [{"CREDIT_PACKS": (10, "bogus", PACK, 20_000_000)}])
def test_bad_plain_entries_never_stop_the_page(logged_in, stripe_double):
    add_price(stripe_double, PACK, product_name="Tokens 50")
    response = logged_in.get("/credits")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Tokens 50" in page and "bogus" not in page
    assert 'value="10"' not in page and 'value="20000000"' not in page


def test_the_api_buys_a_price_pack(client, user, stripe_double):
    from webapp.domain import api_keys

    add_price(stripe_double, PACK, credits="5000", amount=4500)
    key = api_keys.mint(user.id).secret
    headers = {"Authorization": f"Bearer {key}"}
    response = client.post("/api/v1/checkout", json={"pack": PACK}, headers=headers)
    assert response.status_code == 201
    purchase = db.session.scalar(sa.select(Purchase))
    assert response.get_json()["id"] == purchase.stripe_checkout_session_id
    assert (purchase.credits, purchase.amount_cents) == (5000, 4500)
    for body in ({"pack": "price_other"}, {"pack": 5}, {"pack": None}, {"pack": ["x"]}):
        refused = client.post("/api/v1/checkout", json=body, headers=headers)
        assert refused.status_code == 400 and refused.get_json()["error"] == "unknown_pack"
    assert len(stripe_double.requests_to("post", "/v1/checkout/sessions")) == 1
