"""The webhook's one-statement path and the ordinary path agree on every session state.

Each case runs twice on PostgreSQL, once through process_event with the fast path and once
without it, from the same starting state; the outcomes, purchases, ledger rows and event
rows must be identical, and each case's outcome is checked against what the rule says.
"""

import copy
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from tests.conftest import POSTGRES_URL, empty_all_tables, requires_postgres
from tests.payments import Payment
from webapp.domain import events, ledger, users
from webapp.domain.ledger import purchases as purchase_rules
from webapp.domain.ledger import totals
from webapp.extensions import db
from webapp.models import CreditAccount, CreditDay, Job, LedgerEntry, Purchase, StripeEvent
from webapp.webhooks.handlers import fast_path, handle_event

pytestmark = [requires_postgres, pytest.mark.parametrize("database_url", [POSTGRES_URL])]


def _deliver(evt, use_fast_path):
    try:
        return events.process_event(
            copy.deepcopy(evt), handle_event, fast_path if use_fast_path else None
        )
    except Exception as exc:  # the webhook answers 500; the failure is recorded
        return f"raised {type(exc).__name__}"


def _snapshot():
    db.session.expire_all()
    purchases = [
        (
            p.status,
            p.credits,
            p.credited_at is not None,
            p.stripe_checkout_session_id,
            p.stripe_payment_intent_id,
            p.review_reason,
            p.tax_cents,
            p.stripe_invoice_id,
        )
        for p in db.session.scalars(sa.select(Purchase).order_by(Purchase.id))
    ]
    ledger = [
        (e.kind, e.credits, e.balance_after, e.purchase_id is not None, e.reference, e.description)
        for e in db.session.scalars(sa.select(LedgerEntry).order_by(LedgerEntry.id))
    ]
    stripe_events = [
        (e.stripe_event_id, e.type, e.outcome, e.attempts, e.error is not None)
        for e in db.session.scalars(sa.select(StripeEvent).order_by(StripeEvent.id))
    ]
    balances = db.session.execute(
        sa.select(CreditAccount.balance, CreditAccount.purchased, CreditAccount.used)
    ).all()
    counted = (jobs_recorded(), totals.all_time(), credit_days())
    return _stable_ids((purchases, ledger, stripe_events, balances)) + (counted,)


def jobs_recorded():
    """Each job's kind, cause and payload (the receipt, say), in the order recorded."""
    return [
        (job.kind, job.dedupe_key, job.payload, job.status)
        for job in db.session.scalars(sa.select(Job).order_by(Job.id))
    ]


def credit_days():
    return db.session.execute(
        sa.select(CreditDay.day, CreditDay.bought, CreditDay.spent).order_by(CreditDay.day)
    ).all()


def _stable_ids(value, names=None):
    """Stripe ids (random per run) replaced by the order they first appear in."""
    names = {} if names is None else names
    if isinstance(value, list | tuple):
        return type(value)(_stable_ids(item, names) for item in value)
    if isinstance(value, str) and value.split("_")[0] in ("cs", "pi", "evt"):
        return names.setdefault(value, f"{value.split('_')[0]}#{len(names)}")
    return value


def _payment(stripe_double, paid=True):
    user = users.create_user("buyer@example.com", "correct-horse")
    return Payment(stripe_double, user, 1000, paid=paid)


def _forget_session_id(payment):
    db.session.execute(sa.update(Purchase).values(stripe_checkout_session_id=None))
    db.session.commit()


def _drop_account(payment):
    db.session.execute(sa.delete(CreditAccount))
    db.session.commit()


def _restore_account(payment):
    db.session.add(CreditAccount(user_id=payment.user_id, balance=0))
    db.session.commit()


def _claiming_in_metadata(**changes):
    """A paid completion whose metadata is the app's with `changes` (what a tampered or
    broken session could claim): the recorded purchase is credited all the same."""

    def completed(payment):
        return payment.completed(metadata={**payment.session["metadata"], **changes})

    return dict(deliveries=[completed], credited=True)


def _mark(rule, payment, evt):
    rule(copy.deepcopy(evt["data"]["object"]))


# Each case: (setup before the deliveries, events to deliver as (builder, between-step)).
# A builder takes the Payment and returns the event; the same event object delivered
# twice is a replay.
CASES = {
    "paid": dict(deliveries=[lambda p: p.completed()], credited=True),
    "unpaid completion (delayed method)": dict(
        deliveries=[lambda p: p.completed("unpaid")], credited=False, status="processing"
    ),
    "no payment required": dict(
        deliveries=[lambda p: p.completed("no_payment_required")], credited=True
    ),
    "known only by metadata": dict(
        setup=_forget_session_id, deliveries=[lambda p: p.completed()], credited=True
    ),
    "amount off": dict(
        deliveries=[lambda p: p.completed(amount_total=p.amount - 1)],
        credited=False,
        status="needs_review",
    ),
    "currency off": dict(
        deliveries=[lambda p: p.completed(currency="eur")], credited=False, status="needs_review"
    ),
    "needs review, then a matching session": dict(
        deliveries=[lambda p: p.completed(amount_total=1), lambda p: p.completed()],
        credited=False,
        status="needs_review",
    ),
    "already credited by another event": dict(
        deliveries=[lambda p: p.completed(), lambda p: p.async_succeeded()], credited=True
    ),
    "failed, then paid late": dict(
        deliveries=[lambda p: p.async_failed(), lambda p: p.async_succeeded()], credited=True
    ),
    "expired, then paid late": dict(
        deliveries=[lambda p: p.expired(), lambda p: p.completed()], credited=True
    ),
    "account missing": dict(
        setup=_drop_account, deliveries=[lambda p: p.completed()], credited=False, status="pending"
    ),
    "replay": dict(deliveries=["same"], credited=True),
    "failed event re-claimed": dict(
        setup=_drop_account, deliveries=[lambda p: p.completed(), "restore", "again"], credited=True
    ),
    "completed unpaid, then paid (from processing)": dict(
        deliveries=[lambda p: p.completed("unpaid"), lambda p: p.async_succeeded()],
        credited=True,
    ),
    "metadata claims other credits": _claiming_in_metadata(credits="999999"),
    "metadata names another user": _claiming_in_metadata(user_id="424242"),
    "metadata purchase id beyond an INTEGER": _claiming_in_metadata(purchase_id="99999999999"),
    "metadata user id beyond an INTEGER": _claiming_in_metadata(user_id="99999999999"),
    "metadata credits beyond any purchase": _claiming_in_metadata(credits="99" * 9),
    "metadata without numbers": _claiming_in_metadata(credits="many"),
    "tax on top, and an invoice": dict(
        deliveries=[
            lambda p: p.completed(
                amount_total=p.amount + 80, total_details={"amount_tax": 80}, invoice="in_tax1"
            )
        ],
        credited=True,
    ),
    "not our session": dict(
        deliveries=[
            lambda p: p.completed(
                metadata={"purpose": "credits_topup", "purchase_id": "999999", "user_id": "999999"},
                id="cs_test_someone_else",
            )
        ],
        credited=False,
        status="pending",
    ),
}


def _run(case, stripe_double, use_fast_path):
    payment = _payment(stripe_double)
    if case.get("setup"):
        case["setup"](payment)
    outcomes, last = [], None
    for step in case["deliveries"]:
        if step == "restore":
            _restore_account(payment)
            continue
        if step == "same":
            last = last or payment.completed()
            outcomes.append(_deliver(last, use_fast_path))
            step = None
        elif step == "again":
            outcomes.append(_deliver(last, use_fast_path))
            continue
        if step is not None:
            last = step(payment)
            outcomes.append(_deliver(last, use_fast_path))
    if case["deliveries"] == ["same"]:
        outcomes.append(_deliver(last, use_fast_path))
    return outcomes, _snapshot()


@pytest.mark.parametrize("name", list(CASES))
def test_both_paths_give_the_same_outcome_and_rows(name, app, stripe_double):
    case = CASES[name]
    fast = _run(case, stripe_double, use_fast_path=True)
    empty_all_tables()
    ordinary = _run(case, stripe_double, use_fast_path=False)

    assert fast == ordinary
    outcomes, (purchases, ledger, stripe_events, _, (jobs, figures, days)) = fast
    receipts = [job for job in jobs if job[1].startswith("mail:receipt:")]
    assert len(receipts) == (1 if case["credited"] else 0)
    if case["credited"]:
        assert figures[("credits.purchase", "")] == 1000 == days[0][1]
        assert figures[("purchases.paid", "")] == 1
        assert figures[("charged", "usd")] == 1000
    credited = [row for row in ledger if row[0] == "purchase"]
    assert len(credited) == (1 if case["credited"] else 0)
    if case["credited"]:
        assert purchases[0][0] == "paid" and purchases[0][2]
        assert credited[0][1] == 1000
        assert credited[0][5] == purchase_rules.purchase_description(1000)
    else:
        assert purchases[0][0] == case["status"] and not purchases[0][2]
    if name == "replay":
        assert outcomes[1] == events.DUPLICATE
    if name == "failed event re-claimed":
        assert outcomes[0].startswith("raised") and stripe_events[0][2:4] == ("processed", 2)
    if name == "not our session":
        assert stripe_events[0][2] == "unmatched"


def test_the_one_statement_stays_within_psycopgs_query_cache(app):
    """psycopg converts a query client-side on every execution unless it has at most 4,096
    characters and 50 parameters; past either, the one statement cost more CPU than the
    three round trips it replaces. A column added to it must keep it within both."""
    from psycopg import _queries

    compiled = events._claiming(ledger.one_statement_credit).compile(dialect=db.engine.dialect)
    assert len(str(compiled)) <= _queries.MAX_CACHED_STATEMENT_LENGTH
    assert len(compiled.params) <= _queries.MAX_CACHED_STATEMENT_PARAMS


def test_a_purchase_marked_paid_without_its_credit_fails_the_delivery(app):
    """Should the statement mark a purchase paid but move no balance (its account gone
    between the steps), the delivery must fail and roll back, never count as done."""
    row = SimpleNamespace(id=7, balance_after=None, receipt_id=None)
    with pytest.raises(LookupError):
        ledger.one_statement_done(row)
