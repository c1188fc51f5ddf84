"""Bodies the JSON parser or the driver cannot take are a 400, never a 500."""

from tests.payments import balance_of, ledger_sum
from webapp.domain import api_keys, ledger


def test_usage_with_a_lone_surrogate_in_the_description_is_400_not_500(app, client, user):
    """JSON may escape a lone UTF-16 surrogate ("\\ud800"); Python decodes it to a str that
    no database driver can encode, so the debit's INSERT blows up: 500, where the contract
    says no input, however odd, gets a 5xx from the API."""
    ledger.adjust(user.id, 100, "seed")
    secret = api_keys.mint(user.id, "test").secret
    response = client.post(
        "/api/v1/usage",
        data='{"credits": 1, "description": "a\\ud800b"}',
        headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
    )
    assert response.status_code < 500, response.get_data(as_text=True)[:300]
    assert balance_of(user.id) == ledger_sum(user.id)


def test_usage_with_an_integer_of_thousands_of_digits_is_400_not_500(app, client, user):
    """A JSON integer longer than Python's int-parsing limit (4,300 digits) makes the body
    parser raise a ValueError nobody turns into a 400: /api/v1/usage (and /holds,
    /checkout) answer 500, where the contract says no input gets a 5xx from the API."""
    ledger.adjust(user.id, 100, "seed")
    secret = api_keys.mint(user.id, "test").secret
    response = client.post(
        "/api/v1/usage",
        data='{"credits": ' + "9" * 5000 + "}",
        headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert balance_of(user.id) == 100
