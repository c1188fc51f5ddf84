"""`flask credits packs`: refreshes the Price cache and says why a pack is not offered."""

import pytest

from tests.stripe_fakes import add_price

GOOD = "price_good"
ON_PRODUCT = "price_credits_on_product"
CASES = {
    "price_missing": "no such Price in Stripe",
    "price_inactive": "the Price is archived (inactive)",
    "price_recurring": "the Price is recurring, not one-time",
    "price_in_eur": "in EUR, but CURRENCY is USD",
    "price_no_credits": "no `credits` in the Price's or the Product's metadata",
    "price_bad_credits": "the Price's metadata credits='12.5' is not a positive whole number",
    "price_zero_credits": "the Price's metadata credits='0' is not a positive whole number",
    "price_bad_product_credits": "the Product's metadata credits='lots' is not a positive",
    "price_archived_product": "its Product prod_",
    "price_custom_amount": "the Price has no fixed positive amount",
    "price_too_many_credits": "Buy between 50 and 1,000,000 credits.",
}


@pytest.fixture
def config_overrides():
    return {"CREDIT_PACKS": (500, GOOD, ON_PRODUCT, *CASES, "oops")}


@pytest.fixture
def prices(stripe_double):
    add_price(stripe_double, GOOD, credits="5000", amount=4500, product_name="Tokens 50")
    add_price(stripe_double, ON_PRODUCT, credits=None, product_credits="750", amount=700)
    add_price(stripe_double, "price_inactive", active=False)
    add_price(
        stripe_double,
        "price_recurring",
        type="recurring",
        recurring={"interval": "month", "interval_count": 1},
    )
    add_price(stripe_double, "price_in_eur", currency="eur")
    add_price(stripe_double, "price_no_credits", credits=None)
    add_price(stripe_double, "price_bad_credits", credits="12.5")
    add_price(stripe_double, "price_zero_credits", credits="0")
    add_price(stripe_double, "price_bad_product_credits", credits=None, product_credits="lots")
    add_price(stripe_double, "price_archived_product", product_active=False)
    add_price(
        stripe_double,
        "price_custom_amount",
        amount=None,
        billing_scheme="per_unit",
        custom_unit_amount={"maximum": None, "minimum": 500, "preset": None},
    )
    add_price(stripe_double, "price_too_many_credits", credits="2000000")


def line_for(output: str, entry: str) -> str:
    [line] = [line for line in output.splitlines() if line.split()[:1] == [entry]]
    return line


def test_the_command_prints_each_pack_and_why_a_price_is_not_offered(runner, prices, caplog):
    result = runner.invoke(args=["credits", "packs"])
    assert result.exit_code == 0, result.output
    assert line_for(result.output, "500").split()[1:5] == ["500", "5.00", "USD", "usd"]
    good = line_for(result.output, GOOD)
    assert good.split()[1:6] == ["5,000", "45.00", "USD", "usd", "yes"] and "Tokens 50" in good
    assert line_for(result.output, ON_PRODUCT).split()[1:6] == ["750", "7.00", "USD", "usd", "yes"]
    for entry, reason in CASES.items():
        assert f"no: {reason}" in line_for(result.output, entry), entry
    assert "neither a number of credits nor a Stripe Price id" in line_for(result.output, "oops")
    assert result.output.splitlines()[-1] == f"3 of {len(CASES) + 4} packs offered"
    for entry, reason in CASES.items():
        assert f"price pack {entry} is not offered: {reason}" in caplog.text


def test_invalid_prices_are_not_offered_on_the_page_and_the_rest_are(runner, prices, logged_in):
    runner.invoke(args=["credits", "packs"])
    page = logged_in.get("/credits").get_data(as_text=True)
    assert f'value="{GOOD}"' in page and f'value="{ON_PRODUCT}"' in page
    for entry in CASES:
        assert entry not in page
        assert logged_in.post("/credits/checkout", data={"pack": entry}).status_code == 400


def test_the_command_refreshes_what_the_app_serves(runner, prices, logged_in, stripe_double):
    assert f'value="{GOOD}"' in logged_in.get("/credits").get_data(as_text=True)
    stripe_double.objects[GOOD]["active"] = False  # archived in the Dashboard
    assert f'value="{GOOD}"' in logged_in.get("/credits").get_data(as_text=True)  # cached
    result = runner.invoke(args=["credits", "packs"])
    assert "no: the Price is archived (inactive)" in line_for(result.output, GOOD)
    assert f'value="{GOOD}"' not in logged_in.get("/credits").get_data(as_text=True)


def test_the_command_says_when_stripe_cannot_be_asked(runner, prices, stripe_double):
    runner.invoke(args=["credits", "packs"])
    stripe_double.unreachable.add("/v1/prices")
    result = runner.invoke(args=["credits", "packs"])
    assert result.exit_code == 0
    assert "yes" in line_for(result.output, GOOD)
    assert "Stripe could not be asked; last reading kept" in line_for(result.output, GOOD)
