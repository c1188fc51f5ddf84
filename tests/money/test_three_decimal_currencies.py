"""Defect 8: KWD, BHD, JOD, OMR and TND have three decimals (1 KWD = 1000 fils)."""

import pytest

from tests.conftest import login
from tests.payments import Payment
from tests.stripe_fakes import deliver
from webapp.domain import pricing
from webapp.domain.errors import InvalidPurchaseError


@pytest.mark.parametrize("currency", ["kwd", "bhd", "jod", "omr", "tnd"])
def test_three_decimal_currencies_format_and_parse_with_three_decimals(app, currency):
    assert pricing.minor_units_per_major(currency) == 1000
    assert pricing.format_money(12_345, currency) == f"12.345 {currency.upper()}"
    assert pricing.format_major(-1_230, currency) == "-1.230"
    assert pricing.parse_money("1.23", currency) == 1230
    with pytest.raises(ValueError):
        pricing.parse_money("1.2345", currency)
    with pytest.raises(ValueError):  # Stripe takes these only in multiples of 10
        pricing.parse_money("1.234", currency)


def test_two_and_zero_decimal_currencies_are_unchanged(app):
    assert pricing.format_money(1250, "usd") == "12.50 USD"
    assert pricing.format_money(1250, "jpy") == "1,250 JPY"
    assert pricing.format_major(1250, "eur") == "12.50"


@pytest.mark.parametrize(
    "config_overrides", [{"CURRENCY": "kwd", "CREDIT_UNIT_AMOUNT": 5, "CREDIT_PACKS": (500, 1000)}]
)
class TestKuwaitiDinars:
    def test_the_credits_page_and_checkout_charge_three_decimal_amounts(
        self, logged_in, stripe_double
    ):
        page = logged_in.get("/credits").get_data(as_text=True)
        assert "2.500 KWD" in page and 'data-per-major="1000"' in page
        assert logged_in.post("/credits/checkout", data={"credits": "500"}).status_code == 303
        [sent] = stripe_double.requests_to("post", "/v1/checkout/sessions")
        line = sent["params"]["line_items"][0]["price_data"]
        assert (line["currency"], line["unit_amount"]) == ("kwd", "2500")

    def test_amounts_stripe_cannot_take_are_refused_before_anything_is_sent(
        self, logged_in, stripe_double
    ):
        with pytest.raises(InvalidPurchaseError, match="multiple of 2 credits"):
            pricing.quote(501)  # 2.505 KWD: Stripe wants the last digit 0
        response = logged_in.post("/credits/checkout", data={"credits": "501"})
        assert response.status_code == 400
        assert stripe_double.requests_to("post", "/v1/checkout/sessions") == []

    def test_the_admin_sees_and_exports_dinars_with_three_decimals(
        self, client, admin, user, stripe_double
    ):
        payment = Payment(stripe_double, user, 500)
        deliver(client, payment.completed())
        login(client, admin.email)
        page = client.get(f"/admin/purchases/{payment.purchase_id}").get_data(as_text=True)
        assert "2.500 KWD" in page
        csv = client.get("/admin/purchases.csv").get_data(as_text=True)
        assert ",2.500,0.000,0.000,kwd," in csv


@pytest.mark.parametrize(
    "config_overrides",
    [
        {
            "CURRENCY": "kwd",
            "CREDIT_UNIT_AMOUNT": 5,
            "CREDIT_PACKS": (500,),
            "CUSTOMER_PAYS_FEES": True,
        }
    ],
)
def test_a_fee_rounds_the_total_up_to_what_stripe_can_take(app):
    quote = pricing.quote(501)
    assert quote.amount_cents % 10 == 0 and quote.value_cents == 2505
    assert quote.amount_cents - quote.fee_cents == 2505
