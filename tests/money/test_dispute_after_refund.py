"""Defect 9 (contract wording): a dispute after a partial refund takes
min(floor(credits × dispute amount ÷ amount_total), credits not yet taken)."""

import pytest

from tests.payments import Payment, balance_of, entries, ledger_sum
from tests.stripe_fakes import deliver


@pytest.mark.parametrize(
    "refunded, disputed, dispute_takes",
    [
        (600, 1000, 400),  # the share (1,000) is more than is left (400): what is left
        (300, 500, 500),  # the share (500) fits in what is left (700): the share
        (300, 700, 700),  # exactly what is left
        (999, 1, 1),
    ],
)
def test_a_dispute_after_a_partial_refund_takes_the_smaller_of_its_share_and_what_is_left(
    client, user, stripe_double, refunded, disputed, dispute_takes
):
    payment = Payment(stripe_double, user, 1000)  # 1,000 credits for 1,000 cents
    assert deliver(client, payment.completed()).status_code == 200
    assert deliver(client, payment.refunded(refunded)).status_code == 200
    assert balance_of(user.id) == 1000 - refunded
    evt = payment.dispute("charge.dispute.created", disputed)
    assert deliver(client, evt).status_code == 200
    assert deliver(client, evt).status_code == 200  # replayed: nothing more
    share, left = 1000 * disputed // 1000, 1000 - refunded
    assert dispute_takes == min(share, left)
    assert [row.credits for row in entries(user.id, "dispute")] == [-dispute_takes]
    assert balance_of(user.id) == 1000 - refunded - dispute_takes == ledger_sum(user.id)
