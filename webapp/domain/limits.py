"""Bounds on numbers people type: anything larger is a mistake, refused with a clear message."""

from webapp.domain.errors import InvalidAmountError

# The most credits one request (usage, adjustment, grant) may move: a trillion, far beyond any
# real use and far below what a BIGINT balance holds (so no sum of them overflows).
MAX_CREDITS = 10**12


def check_credits(credits: int, *, allow_negative: bool = False) -> int:
    """`credits` when within ±MAX_CREDITS (and >= 1 unless negatives are allowed), else
    InvalidAmountError saying the bounds."""
    low = -MAX_CREDITS if allow_negative else 1
    if (
        isinstance(credits, bool)
        or not isinstance(credits, int)
        or not low <= credits <= MAX_CREDITS
    ):
        raise InvalidAmountError(out_of_bounds_message(allow_negative))
    return credits


def out_of_bounds_message(allow_negative: bool = False) -> str:
    if allow_negative:
        return f"credits must be a whole number between -{MAX_CREDITS:,} and {MAX_CREDITS:,}."
    return f"credits must be a whole number from 1 to {MAX_CREDITS:,}."
