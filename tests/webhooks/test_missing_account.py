"""A purchase is never marked paid unless its credits land (here: no account row)."""

import sqlalchemy as sa

from tests.payments import Payment, entries
from tests.stripe_fakes import deliver
from webapp.extensions import db
from webapp.models import CreditAccount, StripeEvent


def test_a_delivery_that_cannot_credit_changes_nothing_and_is_retried(client, user, stripe_double):
    payment = Payment(stripe_double, user)
    db.session.execute(sa.delete(CreditAccount).where(CreditAccount.user_id == user.id))
    db.session.commit()
    answer = deliver(client, payment.completed())
    purchase = payment.purchase()
    assert answer.status_code == 500
    assert purchase.credited_at is None and purchase.status == "pending"
    assert entries(user.id) == []
    assert db.session.scalars(sa.select(StripeEvent.outcome)).all() == ["failed"]
