"""The whole loop in the development sandbox: save a test card, spend, the worker recharges.

The worker is another process under `make run`: here a second app instance, whose own
sandbox double sees the same Stripe state through the shared file.
"""

import pytest
import sqlalchemy as sa

from tests.conftest import make_config
from webapp import create_app
from webapp.domain import jobs
from webapp.extensions import db
from webapp.models import Purchase


@pytest.fixture
def config_overrides(tmp_path):
    return {
        "SANDBOX_ENABLED": True,
        "STRIPE_SECRET_KEY": "",
        "STRIPE_HTTP_CLIENT": None,
        "PUBLIC_BASE_URL": "",
        "SANDBOX_STATE_PATH": str(tmp_path / "stripe.json"),
    }


def save_card(client, card: str) -> None:
    checkout_url = client.post("/credits/auto-recharge/card").location
    assert checkout_url.startswith("/sandbox/checkout/cs_test_")
    page = client.get(checkout_url).get_data(as_text=True)
    assert "•••• 0002: is declined" in page and "•••• 3184: needs the card holder" in page
    back = client.post(f"{checkout_url}/pay", data={"card": card}, follow_redirects=True)
    assert f"•••• {card}" in back.get_data(as_text=True)


def worker_run(database_url, config_overrides) -> None:
    """A worker process: its own app, its own sandbox double, the same Stripe state."""
    worker_app = create_app(make_config(database_url, **config_overrides))
    with worker_app.app_context():
        jobs.run_due()
        db.session.remove()


def attempts() -> list[Purchase]:
    db.session.expire_all()
    return list(db.session.scalars(sa.select(Purchase).where(Purchase.source == "auto_recharge")))


@pytest.mark.parametrize(
    ("card", "status", "balance"),
    [
        ("4242", "paid", 1000 - 900 + 500),
        ("0002", "failed", 100),
        ("3184", "needs_action", 100),
    ],
)
def test_a_sandbox_card_recharges_declines_or_asks_for_the_card_holder(
    logged_in, database_url, config_overrides, card, status, balance
):
    logged_in.post("/credits/checkout", data={"credits": "1000"})
    purchase_url = db.session.scalar(sa.select(Purchase.checkout_url))
    logged_in.post(f"{purchase_url}/pay")
    save_card(logged_in, card)
    assert (
        logged_in.post(
            "/credits/auto-recharge",
            data={"enabled": "y", "threshold": "200", "amount": "500", "monthly_limit": ""},
        ).status_code
        == 303
    )
    assert logged_in.post("/api/v1/usage", json={"credits": 900}).status_code == 200

    worker_run(database_url, config_overrides)
    logged_in.get("/credits")  # the app delivers what the sandbox Stripe sent meanwhile

    [attempt] = attempts()
    assert attempt.status == status
    assert logged_in.get("/api/v1/balance").get_json()["balance"] == balance
    if status == "needs_action":
        confirm = logged_in.get(f"/credits/auto-recharge/confirm/{attempt.id}")
        assert confirm.location.startswith("/sandbox/checkout/")
        logged_in.post(f"{confirm.location}/pay")
        assert attempts()[0].status == "paid"
        assert logged_in.get("/api/v1/balance").get_json()["balance"] == 600
    elif status == "failed":
        assert attempt.failure_reason == "Your card was declined."


def test_a_card_replaced_in_the_sandbox_portal_is_charged_next(
    logged_in, database_url, config_overrides
):
    logged_in.post("/credits/checkout", data={"credits": "1000"})
    logged_in.post(f"{db.session.scalar(sa.select(Purchase.checkout_url))}/pay")
    save_card(logged_in, "0002")
    logged_in.post(
        "/credits/auto-recharge",
        data={"enabled": "y", "threshold": "200", "amount": "500", "monthly_limit": ""},
    )
    portal = logged_in.post("/billing/portal").location
    assert logged_in.post(f"{portal}/card", data={"card": "4242"}).status_code == 302

    logged_in.post("/api/v1/usage", json={"credits": 900})
    worker_run(database_url, config_overrides)

    assert [a.status for a in attempts()] == ["paid"]
    assert "•••• 4242" in logged_in.get("/credits").get_data(as_text=True)
