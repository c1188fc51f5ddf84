"""Numbers that are not plain ASCII integers are refused with the page, never a 500."""

import pytest
import sqlalchemy as sa

from webapp.extensions import db
from webapp.models import Purchase


@pytest.mark.parametrize("raw", ["--5", "²"])
def test_checkout_form_malformed_credits_is_400_not_500(logged_in, stripe_double, raw):
    """Contract: POST /credits/checkout with a non-integer `credits` → the page again, 400,
    no Stripe call. `--5` / `²` pass parse_credits' isdigit() screen and int() raises."""
    response = logged_in.post("/credits/checkout", data={"credits": raw})
    assert response.status_code == 400
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Purchase)) == 0
    assert stripe_double.requests_to("post", "/v1/checkout/sessions") == []


def test_cancel_page_with_non_ascii_digit_purchase_is_not_500(logged_in):
    """`/credits/cancel?purchase=²`: str.isdigit() accepts '²', int() then raises → 500."""
    response = logged_in.get("/credits/cancel?purchase=%C2%B2")
    assert response.status_code < 500
