"""The Stripe double refuses what Stripe would: checked against stripe.params' typed classes."""

import pytest
import stripe

from tests.stripe_fakes import new_double


@pytest.fixture
def client():
    return stripe.StripeClient("sk_test_double", http_client=new_double())


def _session(**changes):
    params = {
        "mode": "payment",
        "success_url": "https://credits.example.test/credits/success",
        "line_items": [
            {
                "quantity": 1,
                "price_data": {
                    "currency": "usd",
                    "unit_amount": 500,
                    "product_data": {"name": "500 credits"},
                },
            }
        ],
        "metadata": {"purpose": "credits_topup"},
    }
    params.update(changes)
    return params


def test_a_valid_session_is_created(client):
    session = client.v1.checkout.sessions.create(params=_session())
    assert session.id.startswith("cs_test") and session.amount_total == 500


@pytest.mark.parametrize(
    ("params", "param"),
    [
        (_session(sucess_url="https://x.test"), "sucess_url"),  # misspelt top-level field
        (
            _session(
                line_items=[
                    {
                        "quantity": 1,
                        "price_data": {
                            "currency": "usd",
                            "unit_amount": 500,
                            "product_data": {"nam": "x"},
                        },
                    }
                ]
            ),
            "line_items[0][price_data][product_data][nam]",
        ),
        (_session(invoice_creation={"enabled": "yes"}), "invoice_creation[enabled]"),  # a bool
        (_session(line_items=[{"quantity": "one", "price": "price_1"}]), "line_items[0][quantity]"),
    ],
)
def test_unknown_misspelt_or_mistyped_parameters_are_refused(client, params, param):
    with pytest.raises(stripe.InvalidRequestError) as error:
        client.v1.checkout.sessions.create(params=params)
    assert error.value.http_status == 400
    assert error.value.param == param


def test_unknown_refund_fields_and_missing_required_ones_are_refused(client):
    with pytest.raises(stripe.InvalidRequestError) as error:
        client.v1.refunds.create(
            params={"amount": 100, "reason": "requested_by_customer", "metadta": {"a": "b"}}
        )
    assert error.value.param == "metadta"
    no_currency = [
        {"quantity": 1, "price_data": {"unit_amount": 500, "product_data": {"name": "500 credits"}}}
    ]
    with pytest.raises(stripe.InvalidRequestError) as error:
        client.v1.checkout.sessions.create(params=_session(line_items=no_currency))
    assert error.value.param == "line_items[0][price_data][currency]"
