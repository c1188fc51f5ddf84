"""Request and response schemas of the JSON API: they validate input and make the OpenAPI document."""

from datetime import UTC, date, datetime

import marshmallow as ma
from marshmallow import fields, validate

from webapp.domain.ledger.holds import DEFAULT_EXPIRES_IN, MAX_EXPIRES_IN, MIN_EXPIRES_IN
from webapp.domain.sql import MAX_BIGINT
from webapp.domain.text import has_nul, strip_controls
from webapp.domain.usage import MAX_KEY_LENGTH

# No number of credits in one call goes beyond this: larger input is a 400, never a 500.
MAX_CREDITS = 10**12
MAX_DESCRIPTION_LENGTH = 500


class StrictInteger(fields.Integer):
    """A JSON integer: true, 3.0 and "3" are not."""

    def __init__(self, **kwargs):
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class Moment(fields.String):
    """A UTC instant given as an ISO date (midnight) or date-time ("Z" or an offset)."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            if len(text) == 10:
                return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
        except (ValueError, OverflowError) as exc:  # overflow: 9999-12-31T23:00-14:00
            raise ma.ValidationError("Not an ISO date or date-time.") from exc


class Text(fields.String):
    """Text without NUL (PostgreSQL refuses it) and stripped of other control and
    bidi-override characters (tab and newlines aside)."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if has_nul(text):
            raise ma.ValidationError("NUL characters are not allowed.")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:  # a lone surrogate ("\ud800"): no text to store
            raise ma.ValidationError("Not valid Unicode text.") from exc
        # Other control and bidi-override characters are dropped, so an admin reading a
        # description or label sees what was really spent (webapp/domain/text.py).
        return strip_controls(text)


def credits_field(minimum: int = 1, **kwargs) -> StrictInteger:
    bounds = f"credits must be a whole number from {minimum} to {MAX_CREDITS:,}."
    return StrictInteger(
        validate=validate.Range(min=minimum, max=MAX_CREDITS, error=bounds), **kwargs
    )


def description_field() -> fields.String:
    return Text(load_default="", validate=validate.Length(max=MAX_DESCRIPTION_LENGTH))


class Body(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE  # fields this version does not know are ignored


class CheckoutBody(Body):
    credits = credits_field(metadata={"description": "A custom amount (or send `pack`)."})
    pack = Text(
        validate=validate.Length(min=1, max=255),
        metadata={"description": "A pack on offer, by its Stripe Price id."},
    )


class UsageBody(Body):
    credits = credits_field(required=True)
    description = description_field()


class HoldBody(Body):
    credits = credits_field(required=True)
    expires_in = StrictInteger(
        load_default=DEFAULT_EXPIRES_IN,
        validate=validate.Range(min=MIN_EXPIRES_IN, max=MAX_EXPIRES_IN),
        metadata={"description": "Seconds until the hold expires by itself."},
    )
    description = description_field()


class CaptureBody(Body):
    credits = credits_field(
        minimum=0, load_default=None, metadata={"description": "Omitted: all that is held."}
    )


class IdempotencyHeader(Body):
    idempotency_key = Text(
        data_key="Idempotency-Key",
        validate=validate.Length(min=1, max=MAX_KEY_LENGTH),
        metadata={"description": "Retries with the same key replay the first answer."},
    )


class UsageQuery(Body):
    from_ = Moment(data_key="from", metadata={"description": "First instant (ISO), inclusive."})
    to = Moment(metadata={"description": "Last instant (ISO), exclusive."})
    before = fields.Integer(
        validate=validate.Range(min=1, max=MAX_BIGINT),
        metadata={"description": "The `next_before` of the previous page."},
    )
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=100))


# --- answers


class Answer(ma.Schema):
    class Meta:
        unknown = ma.INCLUDE  # answers may grow fields; clients ignore what they do not know


class Error(Answer):
    error = fields.String(required=True, metadata={"description": "A stable error code."})
    message = fields.String()
    fields = fields.Dict(metadata={"description": "What was wrong with each input field."})


class InsufficientCredits(Error):
    balance = fields.Integer()
    available = fields.Integer(required=True)


class Expiring(Answer):
    credits = fields.Integer(required=True)
    expires_at = fields.String(required=True)


class Balance(Answer):
    balance = fields.Integer(required=True)
    purchased = fields.Integer(required=True)
    used = fields.Integer(required=True)
    held = fields.Integer(required=True)
    available = fields.Integer(required=True)
    expiring = fields.List(fields.Nested(Expiring), required=True)


class CheckoutCreated(Answer):
    id = fields.String(required=True)
    url = fields.String(required=True)


class BalanceAfter(Answer):
    balance = fields.Integer(required=True)


class Figures(Answer):
    balance = fields.Integer(required=True)
    held = fields.Integer(required=True)
    available = fields.Integer(required=True)


_STATUSES = ("held", "captured", "released", "expired")


class Hold(Answer):
    id = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(_STATUSES))
    credits = fields.Integer(required=True)
    description = fields.String()
    expires_at = fields.String(required=True)
    created_at = fields.String()
    captured = fields.Integer()
    released = fields.Integer()


class HoldPlaced(Hold, Figures):
    pass


class HoldSettled(Figures):
    id = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(("captured", "released")))
    captured = fields.Integer(required=True)
    released = fields.Integer(required=True)


class ApiKeyRef(Answer):
    id = fields.Integer(required=True)
    label = fields.String(required=True)
    prefix = fields.String(required=True)


class UsageItem(Answer):
    id = fields.Integer(required=True)
    credits = fields.Integer(required=True, metadata={"description": "Credits spent."})
    description = fields.String(required=True)
    reference = fields.String(allow_none=True)
    api_key = fields.Nested(ApiKeyRef, allow_none=True, required=True)
    created_at = fields.String(required=True)


class UsageList(Answer):
    data = fields.List(fields.Nested(UsageItem), required=True)
    next_before = fields.Integer(allow_none=True, required=True)
