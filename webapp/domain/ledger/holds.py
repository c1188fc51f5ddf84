"""Holds: reserve credits, then capture what the work used and release the rest.

Every change is decided by one conditional UPDATE: a new hold raises the account's `held`
only where the credits that outlive it cover it; a capture or release moves a hold out of
`held` status only while it is held and unexpired. Locks are taken account first, then
hold, everywhere (debits and expiry too), so racing calls queue instead of deadlocking.

The rule a new hold keeps: for every moment T of its life, (holds still open at T) <=
balance - (grant credits expiring by T). The left only falls over time and the right
changes only when a grant expires, so checking now and each grant expiry up to the hold's
end is enough (`room_until`); with no grant expiring in its life it is balance - held.
Expiry alone then never leaves held > balance: expiry lowers both sides of the right by
the same remainder; a release or expiry of a hold lowers the left; a debit of d (usage,
capture, removal) draws the soonest-expiring credits first, so the right is unchanged when
d <= those credits and is otherwise balance - d, which the debit's own check (d <= balance
- held) keeps above the left. Only refunds and disputes, which may take a balance below
zero, can break it.
"""

import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from webapp.domain import clock
from webapp.domain.errors import (
    CaptureExceedsHoldError,
    HoldNotOpenError,
    InsufficientCreditsError,
    InvalidAmountError,
    NotFoundError,
)
from webapp.domain.ledger.entries import lock_account
from webapp.domain.ledger.grants import debit_usage, lock_with_due_settled
from webapp.domain.ledger.hold_expiry import held_now
from webapp.domain.transaction import atomic
from webapp.extensions import db
from webapp.models import CreditAccount, CreditGrant, Hold, HoldStatus

PUBLIC_ID = re.compile(r"hold_[0-9a-f]{24}")
MIN_EXPIRES_IN = 60
MAX_EXPIRES_IN = 86400
DEFAULT_EXPIRES_IN = 900

_holds = Hold.__table__.c
_accounts = CreditAccount.__table__.c


@dataclass(frozen=True)
class Figures:
    """An account's balance, held and available credits at one moment."""

    balance: int
    held: int

    @property
    def available(self) -> int:
        return self.balance - self.held

    def as_json(self) -> dict[str, int]:
        return {"balance": self.balance, "held": self.held, "available": self.available}


def place_hold(
    user_id: int,
    credits: int,
    *,
    expires_in: int = DEFAULT_EXPIRES_IN,
    description: str = "",
    api_key_id: int | None = None,
) -> dict[str, Any]:
    """Reserve `credits` (>= 1) for `expires_in` seconds; returns the answer body; commits.

    Moves no balance. Credits of grants expiring at or before the hold does are not
    counted: they would be gone before the capture. Too few credits raise
    InsufficientCreditsError (`available`: what a hold this long could reserve) and change
    nothing. The fast path, for an account with no grant expiring within the hold's life,
    is one UPDATE and one INSERT; otherwise the account is locked and its due grants and
    due holds settled first, in the same transaction.
    """
    if credits < 1 or not MIN_EXPIRES_IN <= expires_in <= MAX_EXPIRES_IN:
        raise InvalidAmountError("credits must be >= 1 and expires_in 60 to 86400 seconds")
    now = clock.now()
    expires_at = now + timedelta(seconds=expires_in)
    with atomic():
        figures = _reserve(user_id, credits, now, expires_at)
        if figures is None:
            figures = _reserve_beyond_expiring(user_id, credits, now, expires_at)
        hold = Hold(
            public_id="hold_" + secrets.token_hex(12),
            user_id=user_id,
            api_key_id=api_key_id,
            credits=credits,
            status=HoldStatus.HELD,
            description=description[:500] or None,
            expires_at=expires_at,
            created_at=now,
        )
        db.session.add(hold)
        db.session.flush()
        return {**hold_json(hold, now), **figures.as_json()}


def _reserve_beyond_expiring(
    user_id: int, credits: int, now: datetime, expires_at: datetime
) -> Figures:
    """The slow path of place_hold: on the locked account, its due grants expired and due
    holds released, reserve the hold when `room_until` its end covers it. Joins; raises
    InsufficientCreditsError (`available`: that room) when it does not."""
    if not lock_with_due_settled(user_id, now):
        raise InsufficientCreditsError(0, available=0)
    account = db.session.get(CreditAccount, user_id, populate_existing=True)
    room = room_until(account, now, expires_at)
    figures = _reserve(user_id, credits, now, expires_at, locked_room=room)
    if figures is None:
        raise InsufficientCreditsError(account.balance, available=max(0, room))
    return figures


def room_until(account: CreditAccount, now: datetime, until: datetime) -> int:
    """The most a new hold lasting until `until` can reserve on the locked, settled
    account: at now and at each grant expiry up to `until`, the credits that outlive that
    moment less the holds still open then (the rule in the module docstring)."""
    grants = db.session.execute(
        sa.select(CreditGrant.expires_at, CreditGrant.remaining)
        .where(
            CreditGrant.user_id == account.user_id,
            CreditGrant.expired_at.is_(None),
            CreditGrant.remaining > 0,
            CreditGrant.expires_at <= until,
        )
        .order_by(CreditGrant.expires_at)
    ).all()
    holds = db.session.execute(
        sa.select(_holds.expires_at, _holds.credits).where(
            _holds.user_id == account.user_id,
            _holds.status == HoldStatus.HELD,
            _holds.expires_at > now,
        )
    ).all()
    room = account.balance - sum(credits for _, credits in holds)
    gone = 0
    for moment, remaining in grants:
        gone += remaining
        still_held = sum(credits for ends, credits in holds if ends > moment)
        room = min(room, account.balance - gone - still_held)
    return room


def _reserve(
    user_id: int,
    credits: int,
    now: datetime,
    expires_at: datetime,
    *,
    locked_room: int | None = None,
) -> Figures | None:
    """The one conditional UPDATE that places a hold; None when it places nothing.

    Without `locked_room` (the fast path) it needs balance - held to cover the hold and no
    grant expiring at or before `expires_at`. With it, the room_until of an account the
    caller has locked and settled, it needs the hold within that room.
    """
    if locked_room is None:
        enough = sa.and_(
            _accounts.balance - _accounts.held >= credits,
            sa.or_(_accounts.next_expiry_at.is_(None), _accounts.next_expiry_at > expires_at),
        )
    elif credits > locked_room:
        return None
    else:
        enough = _accounts.balance - _accounts.held >= credits
    keeps_earlier = sa.or_(
        _accounts.next_hold_expiry_at.is_(None), _accounts.next_hold_expiry_at > expires_at
    )
    row = db.session.execute(
        sa.update(CreditAccount.__table__)
        .where(_accounts.user_id == user_id, enough)
        .values(
            held=_accounts.held + credits,
            next_hold_expiry_at=sa.case(
                (keeps_earlier, sa.literal(expires_at, _accounts.next_hold_expiry_at.type)),
                else_=_accounts.next_hold_expiry_at,
            ),
        )
        .returning(_accounts.balance, _accounts.held, _accounts.next_hold_expiry_at)
    ).first()
    return _after(user_id, row, row.balance, now) if row is not None else None


def capture_hold(
    user_id: int, public_id: str, credits: int | None = None, *, api_key_id: int | None = None
) -> dict[str, Any]:
    """Take `credits` (0..held; None = all) of a hold as usage and release the rest; commits.

    Returns the answer body. The capture is one `usage` ledger row (reference: the hold
    id) drawn from expiring credits first; 0 writes none. The same capture again returns
    the first answer; otherwise a hold no longer held raises HoldNotOpenError, more than
    held CaptureExceedsHoldError, a hold of another user NotFoundError.
    """
    hold = find_hold(user_id, public_id)
    amount = hold.credits if credits is None else credits
    if amount < 0:
        raise InvalidAmountError("credits must be an integer >= 0")
    if amount > hold.credits:
        raise CaptureExceedsHoldError(f"The hold reserves {hold.credits} credits.")
    with atomic():
        now = clock.now()
        account = _settle(user_id, hold, HoldStatus.CAPTURED, amount, now)
        if account is None:
            return _settled_before(hold, HoldStatus.CAPTURED, amount, now)
        balance = account.balance
        if amount:
            balance = debit_usage(
                user_id,
                amount,
                hold.description or f"Hold {public_id}",
                reference=public_id,
                api_key_id=api_key_id,
            )
        return _record_answer(
            hold, HoldStatus.CAPTURED, amount, _after(user_id, account, balance, now)
        )


def release_hold(
    user_id: int,
    public_id: str,
    *,
    on_release: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Give a hold's credits back without taking any; returns the answer body; commits.

    Releasing again returns the first answer; a captured hold raises HoldNotOpenError
    (hold_already_settled), an expired one HoldNotOpenError (hold_expired). `on_release`
    runs with the answer, in the same transaction, only when this call released it (an
    admin's audit row: a repeat records nothing).
    """
    hold = find_hold(user_id, public_id)
    with atomic():
        now = clock.now()
        account = _settle(user_id, hold, HoldStatus.RELEASED, 0, now)
        if account is None:
            return _settled_before(hold, HoldStatus.RELEASED, 0, now)
        answer = _record_answer(
            hold, HoldStatus.RELEASED, 0, _after(user_id, account, account.balance, now)
        )
        if on_release is not None:
            on_release(answer)
        return answer


def _settle(user_id: int, hold: Hold, status: str, captured: int, now: datetime):
    """Move the hold from held to `status` and out of the account's `held`: one
    conditional UPDATE on the hold (held and unexpired), after locking the account.
    Returns the account's balance, held and next_hold_expiry_at, or None (not held)."""
    lock_account(user_id)
    moved = db.session.execute(
        sa.update(Hold.__table__)
        .where(_holds.id == hold.id, _holds.status == HoldStatus.HELD, _holds.expires_at > now)
        .values(status=status, captured=captured, settled_at=now)
    ).rowcount
    if moved != 1:
        return None
    return db.session.execute(
        sa.update(CreditAccount.__table__)
        .where(_accounts.user_id == user_id)
        .values(held=_accounts.held - hold.credits)
        .returning(_accounts.balance, _accounts.held, _accounts.next_hold_expiry_at)
    ).one()


def _after(user_id: int, account, balance: int, now: datetime) -> Figures:
    """The figures once settled: no read unless a hold of the account is due (the debit
    may then have released it; reading the account again tells)."""
    if account.next_hold_expiry_at is None or account.next_hold_expiry_at > now:
        return Figures(balance, account.held)
    current = db.session.get(CreditAccount, user_id, populate_existing=True)
    return Figures(current.balance, held_now(current, now))


def _record_answer(hold: Hold, status: str, captured: int, figures: Figures) -> dict[str, Any]:
    """The settle answer, stored on the hold so that the same call again replays it."""
    answer = {
        "id": hold.public_id,
        "status": str(status),
        "captured": captured,
        "released": hold.credits - captured,
        **figures.as_json(),
    }
    db.session.execute(
        sa.update(Hold.__table__)
        .where(_holds.id == hold.id)
        .values(settle_answer=json.dumps(answer))
    )
    return answer


def _settled_before(hold: Hold, wanted: str, amount: int, now: datetime) -> dict[str, Any]:
    """Why a hold could not be settled: the first answer when this is the same call
    again, else HoldNotOpenError naming the hold's state."""
    db.session.refresh(hold)
    if hold.status == wanted and (wanted == HoldStatus.RELEASED or hold.captured == amount):
        return json.loads(hold.settle_answer)
    if hold.status == HoldStatus.RELEASED:
        raise HoldNotOpenError("hold_released", "The hold was released.")
    if hold.status == HoldStatus.CAPTURED:
        raise HoldNotOpenError("hold_already_settled", "The hold was captured already.")
    raise HoldNotOpenError("hold_expired", "The hold expired.")


def find_hold(user_id: int, public_id: str) -> Hold:
    """The user's hold by its public id (NotFoundError for anyone else's or none)."""
    if not PUBLIC_ID.fullmatch(public_id):
        raise NotFoundError("No such hold.")  # never sent to the database: it may hold NUL
    hold = db.session.scalar(
        sa.select(Hold).where(Hold.public_id == public_id, Hold.user_id == user_id)
    )
    if hold is None:
        raise NotFoundError("No such hold.")
    return hold


def hold_status(hold: Hold, now: datetime | None = None) -> str:
    """held, captured, released or expired; a held hold past expires_at is expired."""
    if hold.status == HoldStatus.HELD and hold.expires_at <= (now or clock.now()):
        return HoldStatus.EXPIRED
    return hold.status


def hold_json(hold: Hold, now: datetime | None = None) -> dict[str, Any]:
    status = hold_status(hold, now)
    body: dict[str, Any] = {
        "id": hold.public_id,
        "status": str(status),
        "credits": hold.credits,
        "description": hold.description or "",
        "expires_at": _iso_z(hold.expires_at),
        "created_at": _iso_z(hold.created_at),
    }
    if status == HoldStatus.CAPTURED:
        body.update(captured=hold.captured, released=hold.credits - hold.captured)
    elif status == HoldStatus.RELEASED:
        body.update(captured=0, released=hold.credits)
    return body


def _iso_z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def open_holds(user_id: int) -> list[Hold]:
    """The user's holds still reserving credits (held and unexpired), soonest expiry first."""
    return list(
        db.session.scalars(
            sa.select(Hold)
            .where(
                Hold.user_id == user_id,
                Hold.status == HoldStatus.HELD,
                Hold.expires_at > clock.now(),
            )
            .order_by(Hold.expires_at, Hold.id)
        )
    )
