"""Admins see each user's auto-recharge and can list the attempts."""

from tests.conftest import login


def test_the_user_page_shows_card_settings_and_attempts(recharge, client, admin, app):
    recharge.setup(balance=1000, threshold=200, amount=500, last4="0002")
    recharge.spend(850)
    recharge.run_worker()
    admin_client = app.test_client()
    login(admin_client, admin.email)

    page = admin_client.get(f"/admin/users/{recharge.user_id}").get_data(as_text=True)

    assert 'id="auto-recharge"' in page
    assert "Visa •••• 0002" in page
    assert "below 200 credits, buy 500" in page
    assert "Your card was declined." in page
    assert "Failures in a row</dt><dd>1" in page


def test_purchases_filter_by_source(recharge, admin, app):
    recharge.setup(balance=1000, threshold=200, amount=777)
    recharge.client.post("/credits/checkout", data={"credits": "555"})
    recharge.spend(850)
    recharge.run_worker()
    admin_client = app.test_client()
    login(admin_client, admin.email)

    only_auto = admin_client.get("/admin/purchases?source=auto_recharge").get_data(as_text=True)
    every = admin_client.get("/admin/purchases").get_data(as_text=True)

    assert ">777<" in only_auto and ">555<" not in only_auto
    assert ">777<" in every and ">555<" in every
    assert admin_client.get("/admin/purchases?source=bogus").status_code == 200
