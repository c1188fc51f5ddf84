import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from tests.conftest import login
from webapp.domain import checkout, ledger, users
from webapp.domain.transaction import atomic
from webapp.extensions import db
from webapp.models import AdminAction, Job, LedgerEntry, Purchase, StripeEvent
from webapp.models.types import utcnow

ADMIN_PAGES = [
    "/admin/",
    "/admin/users",
    "/admin/users/{user}",
    "/admin/purchases",
    "/admin/purchases.csv",
    "/admin/purchases/{purchase}",
    "/admin/events",
    "/admin/jobs",
]
ADMIN_POSTS = [
    "/admin/users/{user}/adjust",
    "/admin/purchases/{purchase}/refund",
    "/admin/jobs/{job}/retry",
]


def paid_purchase(stripe_double, user, credits=1000):
    purchase = checkout.start_checkout(user, credits, "https://credits.example.test")
    session = stripe_double.complete_checkout_session(purchase.stripe_checkout_session_id)
    ledger.fulfil_checkout_session(session)
    return db.session.get(Purchase, purchase.id)


@pytest.fixture
def as_admin(client, admin):
    login(client, admin.email)
    return client


@pytest.mark.parametrize(
    "method,url", [("get", u) for u in ADMIN_PAGES] + [("post", u) for u in ADMIN_POSTS]
)
def test_every_admin_url_sends_anonymous_to_login_and_refuses_non_admins(
    app, client, user, stripe_double, method, url
):
    purchase = paid_purchase(stripe_double, user)
    job = db.session.scalar(sa.select(sa.func.max(Job.id)))  # the receipt's mail
    path = url.format(user=user.id, purchase=purchase.id, job=job)
    anonymous = getattr(client, method)(path, data={"credits": 5, "reason": "x", "amount": ""})
    assert anonymous.status_code == 302
    assert "/auth/login" in anonymous.headers["Location"]
    login(client, user.email)
    member = getattr(client, method)(path, data={"credits": 5, "reason": "x", "amount": ""})
    assert member.status_code == 403
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AdminAction)) == 0
    assert stripe_double.requests_to("post", "/v1/refunds") == []


def test_admin_nav_link_shows_for_admins_only(client, user, admin):
    login(client, user.email)
    assert ">Admin<" not in client.get("/credits").get_data(as_text=True)
    client.post("/auth/logout")
    login(client, admin.email)
    assert ">Admin<" in client.get("/credits").get_data(as_text=True)


def test_dashboard_shows_totals(as_admin, user, stripe_double):
    paid_purchase(stripe_double, user, 1000)
    checkout.start_checkout(user, 500, "https://credits.example.test")  # stays pending
    ledger.debit_usage(user.id, 300, "work")
    with atomic():
        db.session.add(
            StripeEvent(
                stripe_event_id="evt_bad",
                type="charge.refunded",
                outcome="failed",
                error="boom: handler crashed",
            )
        )
        db.session.add(
            StripeEvent(
                stripe_event_id="evt_old",
                type="charge.refunded",
                outcome="failed",
                error="old",
                received_at=utcnow() - timedelta(days=2),
            )
        )
    page = as_admin.get("/admin/").get_data(as_text=True)
    assert 'id="credits-sold">1,000<' in page
    assert 'id="outstanding">700<' in page
    assert "10.00 USD" in page
    assert 'id="failed-events"><a href="/admin/events?outcome=failed">1</a>' in page
    assert "boom: handler crashed" in page and "evt_old" not in page
    assert "Waiting for payment" in page


def test_user_search_by_email_shows_balances_and_highlights_negatives(as_admin, user):
    debtor = users.create_user("debtor@example.com", "correct-horse")
    with atomic():
        ledger.post_entry(debtor.id, -40, "refund", description="refund after use")
    ledger.adjust(user.id, 25, "seed")
    page = as_admin.get("/admin/users?q=DEBT").get_data(as_text=True)
    assert "debtor@example.com" in page and "buyer@example.com" not in page
    assert 'class="negative"' in page and "-40" in page
    everyone = as_admin.get("/admin/users").get_data(as_text=True)
    assert "buyer@example.com" in everyone and "boss@example.com" in everyone


def test_user_search_treats_wildcards_literally(as_admin, user):
    page = as_admin.get("/admin/users?q=%25").get_data(as_text=True)
    assert "buyer@example.com" not in page and "No users match" in page


def test_user_list_is_paginated_by_keyset(app, as_admin):
    app.config["HISTORY_PAGE_SIZE"] = 2
    for n in range(3):
        users.create_user(f"u{n}@example.com", "correct-horse")
    first = as_admin.get("/admin/users").get_data(as_text=True)
    assert "u2@example.com" in first and "u1@example.com" in first
    assert "u0@example.com" not in first
    older = first.split('href="/admin/users?before=')[1].split('"')[0]
    second = as_admin.get(f"/admin/users?before={older}").get_data(as_text=True)
    assert "u0@example.com" in second and "u2@example.com" not in second


def test_user_page_shows_ledger_purchases_and_adjust_form(as_admin, user, stripe_double):
    purchase = paid_purchase(stripe_double, user)
    page = as_admin.get(f"/admin/users/{user.id}").get_data(as_text=True)
    assert user.email in page and 'id="ledger"' in page and "Bought 1,000 credits" in page
    assert f"/admin/purchases/{purchase.id}" in page
    assert f'action="/admin/users/{user.id}/adjust"' in page
    assert as_admin.get("/admin/users/99999").status_code == 404


def test_adjustment_is_recorded_with_the_admin_and_shown(as_admin, admin, user):
    response = as_admin.post(
        f"/admin/users/{user.id}/adjust", data={"credits": "250", "reason": "goodwill for outage"}
    )
    assert response.status_code == 303
    entry = db.session.scalar(sa.select(LedgerEntry).where(LedgerEntry.user_id == user.id))
    assert entry.kind == "adjustment" and entry.credits == 250 and entry.actor_id == admin.id
    assert entry.description == "goodwill for outage"
    action = db.session.scalar(sa.select(AdminAction))
    assert (action.admin_id, action.action, action.target_type, action.target_id) == (
        admin.id,
        "adjust_credits",
        "user",
        user.id,
    )
    page = as_admin.get(f"/admin/users/{user.id}").get_data(as_text=True)
    assert "goodwill for outage" in page and admin.email in page and "+250" in page


def test_negative_adjustment_removes_credits_but_never_below_zero(as_admin, user):
    ledger.adjust(user.id, 100, "seed")
    ok = as_admin.post(f"/admin/users/{user.id}/adjust", data={"credits": "-60", "reason": "x"})
    assert ok.status_code == 303
    too_much = as_admin.post(
        f"/admin/users/{user.id}/adjust", data={"credits": "-41", "reason": "oops"}
    )
    assert too_much.status_code == 400
    assert "insufficient credits" in too_much.get_data(as_text=True)
    assert ledger.current_balance(user.id) == 40
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AdminAction)) == 1


def test_adjustment_needs_a_reason_and_a_non_zero_whole_number(as_admin, user):
    for data in (
        {"credits": "10", "reason": ""},
        {"credits": "10"},
        {"credits": "0", "reason": "nothing"},
        {"credits": "ten", "reason": "x"},
        {"reason": "x"},
    ):
        response = as_admin.post(f"/admin/users/{user.id}/adjust", data=data)
        assert response.status_code == 400, data
    assert ledger.current_balance(user.id) == 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AdminAction)) == 0


def make_purchases(stripe_double, user, admin):
    other = users.create_user("someone@else.test", "correct-horse")
    paid = paid_purchase(stripe_double, user, 1000)
    pending = checkout.start_checkout(other, 600, "https://credits.example.test")
    old = checkout.start_checkout(user, 700, "https://credits.example.test")
    with atomic():
        db.session.get(Purchase, old.id).created_at = datetime(2026, 1, 15, 12, tzinfo=UTC)
        db.session.get(Purchase, pending.id).status = "needs_review"
        db.session.get(Purchase, pending.id).review_reason = "Stripe reported 1 usd"
    return paid, pending, old


def test_purchase_list_filters_by_status_email_and_dates(as_admin, user, admin, stripe_double):
    paid, review, old = make_purchases(stripe_double, user, admin)

    def ids(query):
        page = as_admin.get(f"/admin/purchases{query}").get_data(as_text=True)
        return {p.id for p in (paid, review, old) if f'/admin/purchases/{p.id}"' in page}

    assert ids("") == {paid.id, review.id, old.id}
    assert ids("?status=needs_review") == {review.id}
    assert ids("?status=paid") == {paid.id}
    assert ids("?q=buyer") == {paid.id, old.id}
    assert ids("?from=2026-01-15&to=2026-01-15") == {old.id}
    assert ids("?to=2026-01-14") == set()
    assert ids(f"?from={utcnow().date().isoformat()}") == {paid.id, review.id}
    assert ids("?status=bogus&from=not-a-date") == {paid.id, review.id, old.id}


def test_purchase_list_pages_keep_the_filters(app, as_admin, user, stripe_double):
    app.config["HISTORY_PAGE_SIZE"] = 1
    first = checkout.start_checkout(user, 500, "https://credits.example.test")
    checkout.start_checkout(user, 600, "https://credits.example.test")
    page = as_admin.get("/admin/purchases?q=buyer&status=pending").get_data(as_text=True)
    assert f"before={first.id + 1}" in page and "q=buyer" in page and "status=pending" in page


def test_purchases_csv_streams_the_same_filter(as_admin, user, admin, stripe_double):
    paid, review, old = make_purchases(stripe_double, user, admin)
    response = as_admin.get("/admin/purchases.csv?q=buyer")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.is_streamed
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [int(r["id"]) for r in rows] == [old.id, paid.id]
    paid_row = rows[1]
    assert paid_row["email"] == "buyer@example.com" and paid_row["status"] == "paid"
    assert paid_row["credits"] == "1000" and paid_row["amount"] == "10.00"
    assert paid_row["currency"] == "usd"
    assert paid_row["stripe_payment_intent_id"].startswith("pi_")
    review_only = as_admin.get("/admin/purchases.csv?status=needs_review").get_data(as_text=True)
    assert list(csv.DictReader(io.StringIO(review_only)))[0]["review_reason"] == (
        "Stripe reported 1 usd"
    )


def test_purchases_csv_reads_in_batches(monkeypatch, as_admin, user):
    from webapp.domain import admin_reports

    for credits in (500, 600, 700):
        checkout.start_checkout(user, credits, "https://credits.example.test")
    batches = []
    original = admin_reports.purchases_in_batches

    def small_batches(filters, batch_size=1000):
        for batch in original(filters, batch_size=2):
            batches.append(len(batch))
            yield batch

    monkeypatch.setattr(admin_reports, "purchases_in_batches", small_batches)
    text = as_admin.get("/admin/purchases.csv").get_data(as_text=True)
    assert batches == [2, 1]
    assert len(list(csv.DictReader(io.StringIO(text)))) == 3


def test_events_page_lists_deliveries_with_outcome_and_error(as_admin):
    with atomic():
        db.session.add(
            StripeEvent(
                stripe_event_id="evt_ok",
                type="checkout.session.completed",
                object_id="cs_test_1",
                outcome="processed",
            )
        )
        db.session.add(
            StripeEvent(
                stripe_event_id="evt_unknown",
                type="checkout.session.completed",
                outcome="unmatched",
                error="no purchase for this session",
            )
        )
        db.session.add(
            StripeEvent(
                stripe_event_id="evt_fail",
                type="charge.refunded",
                outcome="failed",
                error="database went away",
            )
        )
    page = as_admin.get("/admin/events").get_data(as_text=True)
    for text in (
        "evt_ok",
        "evt_unknown",
        "evt_fail",
        "unmatched",
        "database went away",
        "cs_test_1",
    ):
        assert text in page
    failed = as_admin.get("/admin/events?outcome=failed").get_data(as_text=True)
    assert "evt_fail" in failed and "evt_ok" not in failed


def test_purchase_page_shows_the_purchase_and_refund_form(as_admin, user, stripe_double):
    purchase = paid_purchase(stripe_double, user)
    page = as_admin.get(f"/admin/purchases/{purchase.id}").get_data(as_text=True)
    assert purchase.stripe_checkout_session_id in page and "10.00 USD" in page
    assert f'action="/admin/purchases/{purchase.id}/refund"' in page
    assert as_admin.get("/admin/purchases/424242").status_code == 404


def test_partial_refund_asks_stripe_and_leaves_the_ledger_alone(
    as_admin, admin, user, stripe_double
):
    purchase = paid_purchase(stripe_double, user)
    response = as_admin.post(f"/admin/purchases/{purchase.id}/refund", data={"amount": "2.50"})
    assert response.status_code == 303
    [sent] = stripe_double.requests_to("post", "/v1/refunds")
    assert sent["params"] == {"payment_intent": purchase.stripe_payment_intent_id, "amount": "250"}
    assert sent["idempotency_key"].startswith("refund-")
    assert ledger.current_balance(user.id) == 1000
    assert db.session.scalar(sa.select(sa.func.count()).select_from(LedgerEntry)) == 1
    action = db.session.scalar(sa.select(AdminAction))
    assert (action.admin_id, action.action, action.target_type, action.target_id) == (
        admin.id,
        "refund_requested",
        "purchase",
        purchase.id,
    )
    page = as_admin.get(f"/admin/purchases/{purchase.id}").get_data(as_text=True)
    assert "Refund of 2.50 USD requested" in page and admin.email in page


def test_empty_amount_refunds_everything_not_yet_refunded(as_admin, user, stripe_double):
    purchase = paid_purchase(stripe_double, user)
    with atomic():
        db.session.get(Purchase, purchase.id).amount_refunded_cents = 400
    as_admin.post(f"/admin/purchases/{purchase.id}/refund", data={"amount": ""})
    [sent] = stripe_double.requests_to("post", "/v1/refunds")
    assert sent["params"]["amount"] == "600"


def test_a_second_deliberate_refund_gets_its_own_idempotency_key(as_admin, user, stripe_double):
    purchase = paid_purchase(stripe_double, user)
    as_admin.post(f"/admin/purchases/{purchase.id}/refund", data={"amount": "1.00"})
    as_admin.post(f"/admin/purchases/{purchase.id}/refund", data={"amount": "1.00"})
    keys = [r["idempotency_key"] for r in stripe_double.requests_to("post", "/v1/refunds")]
    assert len(keys) == 2 and keys[0] != keys[1]


def test_refund_amounts_beyond_what_is_left_or_malformed_are_refused(as_admin, user, stripe_double):
    purchase = paid_purchase(stripe_double, user)
    for amount in ("10.01", "0", "-1", "abc", "1.234", "NaN", "Infinity"):
        response = as_admin.post(f"/admin/purchases/{purchase.id}/refund", data={"amount": amount})
        assert response.status_code == 400, amount
    assert stripe_double.requests_to("post", "/v1/refunds") == []
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AdminAction)) == 0


def test_an_unpaid_purchase_cannot_be_refunded(as_admin, user, stripe_double):
    purchase = checkout.start_checkout(user, 500, "https://credits.example.test")
    response = as_admin.post(f"/admin/purchases/{purchase.id}/refund", data={"amount": ""})
    assert response.status_code == 400
    assert "Nothing is left to refund" in response.get_data(as_text=True)
    assert stripe_double.requests_to("post", "/v1/refunds") == []


def test_a_refund_stripe_refuses_is_shown_and_not_recorded(as_admin, user, stripe_double):
    purchase = paid_purchase(stripe_double, user)
    stripe_double.fail_next("/v1/refunds", 400, "invalid_request_error")
    response = as_admin.post(f"/admin/purchases/{purchase.id}/refund", data={"amount": "1"})
    assert response.status_code == 502
    assert "Stripe did not accept the refund" in response.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AdminAction)) == 0


def test_date_filtered_purchases_page_along_creation_time(app, as_admin, user):
    app.config["HISTORY_PAGE_SIZE"] = 2
    made = [
        checkout.start_checkout(user, 500 + n, "https://credits.example.test") for n in range(5)
    ]
    with atomic():  # creation order differs from id order, as clock skew can make it
        for purchase, day in zip(made, (3, 1, 2, 4, 9), strict=True):
            db.session.get(Purchase, purchase.id).created_at = datetime(2026, 3, day, tzinfo=UTC)
    seen, query = [], "/admin/purchases?from=2026-03-01&to=2026-03-05"
    while query:
        page = as_admin.get(query).get_data(as_text=True)
        shown_at = {p.id: page.find(f'/admin/purchases/{p.id}"') for p in made}
        seen += sorted((pid for pid, at in shown_at.items() if at >= 0), key=shown_at.get)
        older = page.split('href="/admin/purchases?before=')
        query = (
            f"/admin/purchases?before={older[1].split('&')[0]}&from=2026-03-01&to=2026-03-05"
            if len(older) > 1
            else None
        )
    assert seen == [made[3].id, made[0].id, made[2].id, made[1].id]


def test_dashboard_splits_revenue_by_currency_and_nets_refunds(as_admin, user, stripe_double):
    usd = paid_purchase(stripe_double, user, 1000)
    eur = paid_purchase(stripe_double, user, 2000)
    with atomic():
        db.session.get(Purchase, eur.id).currency = "eur"
        db.session.get(Purchase, usd.id).amount_refunded_cents = 250
        db.session.get(Purchase, usd.id).status = "partially_refunded"
    page = as_admin.get("/admin/").get_data(as_text=True)
    revenue = page.split('id="revenue"')[1].split("</section>")[0]
    assert "EUR" in revenue and "20.00 EUR" in revenue
    assert "10.00 USD" in revenue and "2.50 USD" in revenue and "7.50 USD" in revenue
