"""The time domain rules see (expiry, renewals); tests fix it instead of sleeping."""

from datetime import datetime

from webapp.models.types import utcnow

_fixed: datetime | None = None


def now() -> datetime:
    """The current UTC time, or the moment a test fixed."""
    return _fixed if _fixed is not None else utcnow()


def fix(moment: datetime | None) -> None:
    """Make now() return `moment` (timezone-aware) until fixed again; None releases it."""
    global _fixed
    if moment is not None and moment.tzinfo is None:
        raise ValueError("fix the clock with a timezone-aware datetime")
    _fixed = moment
