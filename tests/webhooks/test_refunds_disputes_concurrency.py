"""The same refund and dispute events delivered by several processes at once take once."""

from tests.concurrency import app_in_process, run_processes
from tests.conftest import requires_postgres
from tests.payments import Payment, balance_of, entries, ledger_sum
from tests.stripe_fakes import deliver

PROCESSES = 3


def _deliver_in_process(events, barrier, results):
    client = app_in_process().test_client()
    barrier.wait(timeout=60)
    statuses = []
    for evt in events:
        statuses.append(deliver(client, evt).status_code)
    results.put(statuses)


def _run_everywhere(event_lists):
    run = run_processes(_deliver_in_process, [(events,) for events in event_lists], together=True)
    assert run.exitcodes == [0] * len(event_lists)
    return run.answers


@requires_postgres
def test_refund_and_dispute_events_delivered_at_once_take_exactly_once(
    app, client, user, stripe_double, database_url
):
    first, second = (Payment(stripe_double, user, 1000) for _ in range(2))
    for payment in (first, second):
        assert deliver(client, payment.completed()).status_code == 200
    # First purchase: refunds (same amount under distinct event ids, and a larger one),
    # then a dispute that is won. Second: a dispute that is lost, closed and created
    # racing each other. Every process gets every event, each in another order.
    refund_events = [first.refunded(300) for _ in range(PROCESSES)]
    shared = [
        first.refunded(500),
        first.dispute("charge.dispute.created", 500, dispute_id="dp_race"),
        first.dispute("charge.dispute.closed", 500, "won", dispute_id="dp_race"),
        second.dispute("charge.dispute.created", 1000, dispute_id="dp_lost_race"),
        second.dispute("charge.dispute.closed", 1000, "lost", dispute_id="dp_lost_race"),
    ]
    event_lists = []
    for number in range(PROCESSES):
        events = [refund_events[number], *shared]
        turn = number * 2 % len(events)
        event_lists.append(events[turn:] + events[:turn])
    answers = _run_everywhere(event_lists)
    assert all(status == 200 for statuses in answers for status in statuses)

    # 2000 credited; refunds take 500 of the first; its dispute is won; the second is lost.
    assert balance_of(user.id) == 500 == ledger_sum(user.id)
    assert len(entries(user.id, "purchase")) == 2
    refunds = [e.credits for e in entries(user.id, "refund")]
    assert sum(refunds) == -500 and len(refunds) <= 2
    disputes = {e.reference: e.credits for e in entries(user.id, "dispute")}
    assert len(entries(user.id, "dispute")) == len(disputes)  # at most one row per dispute
    assert disputes["dp_lost_race"] == -1000
    assert [e.credits for e in entries(user.id, "dispute_reversal")] == (
        [-disputes["dp_race"]] if "dp_race" in disputes else []
    )
    assert first.purchase().status == "partially_refunded"
    assert second.purchase().status == "disputed"
