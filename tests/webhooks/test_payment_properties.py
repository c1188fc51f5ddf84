"""Random deliveries, duplicates and reorderings over several purchases keep the books right."""

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.payments import Payment, balance_of, deliver_until_done, ledger_sum
from webapp.domain import users
from webapp.extensions import db
from webapp.models import CreditAccount, EntryKind, LedgerEntry

CREDITS = 1000  # each purchase; at 3 cents a credit its amount_total is 3000
TAKING_KINDS = (EntryKind.REFUND, EntryKind.DISPUTE, EntryKind.DISPUTE_WON)

purchase_plans = st.fixed_dictionaries(
    {
        "delayed": st.booleans(),
        "refunds": st.lists(st.integers(0, 3000), max_size=3),  # cumulative, any order
        "dispute": st.none()
        | st.tuples(st.integers(1, 3000), st.sampled_from([None, "won", "lost"])),
        "owner": st.integers(0, 1),
    }
)


def expected_outcome(plan, amount):
    """Credits the purchase leaves on its owner's balance, and its final status."""
    refunded = max(plan["refunds"], default=0)
    taken = CREDITS if refunded >= amount else CREDITS * refunded // amount
    dispute = plan["dispute"]
    if dispute and dispute[1] != "won":
        taken += CREDITS * dispute[0] // amount
    if dispute and dispute[1] != "won":
        status = "disputed"
    elif refunded >= amount:
        status = "refunded"
    else:
        status = "partially_refunded" if refunded else "paid"
    return CREDITS - taken, status


def events_for(payment, plan, number):
    events = (
        [payment.completed("unpaid"), payment.async_succeeded()]
        if plan["delayed"]
        else [payment.completed()]
    )
    events += [payment.refunded(amount) for amount in plan["refunds"]]
    if plan["dispute"]:
        amount, outcome = plan["dispute"]
        dispute_id = f"dp_{payment.purchase_id}_{number}"
        events.append(payment.dispute("charge.dispute.created", amount, dispute_id=dispute_id))
        if outcome:
            events.append(
                payment.dispute("charge.dispute.closed", amount, outcome, dispute_id=dispute_id)
            )
    return events


def check_invariants(payments):
    accounts = db.session.scalars(sa.select(CreditAccount)).all()
    for account in accounts:
        assert account.balance == ledger_sum(account.user_id)
    for payment in payments:
        rows = db.session.scalars(
            sa.select(LedgerEntry).where(LedgerEntry.purchase_id == payment.purchase_id)
        ).all()
        credited = [row for row in rows if row.kind == EntryKind.PURCHASE]
        assert len(credited) <= 1
        taken = -sum(row.credits for row in rows if row.kind in TAKING_KINDS)
        assert 0 <= taken <= sum(row.credits for row in credited)


@pytest.mark.parametrize("config_overrides", [{"CREDIT_UNIT_AMOUNT": 3}])
def test_random_deliveries_keep_every_invariant(client, app, user, stripe_double):
    owners = [user, users.create_user("second@example.com", "correct-horse")]

    @settings(
        max_examples=12, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    @given(plans=st.lists(purchase_plans, min_size=1, max_size=3), data=st.data())
    def run(plans, data):
        before = {owner.id: balance_of(owner.id) for owner in owners}
        payments, events = [], []
        for number, plan in enumerate(plans):
            if plan["dispute"]:  # a dispute covers at most what was not refunded
                refunded = max(plan["refunds"], default=0)
                if refunded >= 3000:
                    plan = {**plan, "dispute": None}
                else:
                    plan = {
                        **plan,
                        "dispute": (min(plan["dispute"][0], 3000 - refunded), plan["dispute"][1]),
                    }
                plans[number] = plan
            payment = Payment(stripe_double, owners[plan["owner"]], CREDITS)
            payments.append(payment)
            events += events_for(payment, plan, number)
        duplicates = data.draw(st.lists(st.sampled_from(events), max_size=4))
        ordered = data.draw(st.permutations(events + duplicates))
        deliver_until_done(client, ordered)

        check_invariants(payments)
        expected = dict(before)
        for payment, plan in zip(payments, plans, strict=True):
            kept, status = expected_outcome(plan, payment.amount)
            expected[payment.user_id] += kept
            assert payment.purchase().status == status
        for owner in owners:
            assert balance_of(owner.id) == expected[owner.id]

    run()
