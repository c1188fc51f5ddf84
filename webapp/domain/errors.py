"""Errors the domain raises; views and handlers turn them into answers."""


class DomainError(Exception):
    """Base of every error a caller is expected to handle."""


class InvalidPurchaseError(DomainError):
    """The requested credits are not a purchase this store accepts."""


class UnknownPackError(InvalidPurchaseError):
    """The pack asked for is not one on offer (not configured, or its Price is not valid)."""


class InsufficientCreditsError(DomainError):
    def __init__(self, balance: int, available: int | None = None):
        super().__init__(f"insufficient credits (balance {balance})")
        self.balance = balance
        self.available = available


class InvalidAmountError(DomainError):
    """A credits or money amount that is not acceptable here."""


class JobRunningError(DomainError):
    """A job a worker holds the lease on cannot be put back in line: it would run twice."""


class PaymentProviderError(DomainError):
    """Stripe could not be reached or refused the request; the message is safe to show."""


class CardUnavailableError(PaymentProviderError):
    """Stripe refused a charge because the card is gone (detached, deleted): asking
    again with it cannot succeed."""


class SignatureError(DomainError):
    """A webhook delivery whose signature or body cannot be trusted."""


class NotFoundError(DomainError):
    """The object does not exist or does not belong to the caller."""


class IdempotencyKeyReusedError(DomainError):
    """The same Idempotency-Key came with a different request body."""


class UnknownPlanError(DomainError):
    """No plan with that code is configured."""


class PurchaseNotSettledError(DomainError):
    """A refund or dispute for a purchase whose payment has not been confirmed yet."""


class UnmatchedInvoiceError(DomainError):
    """A paid invoice of one of our subscriptions that no user or plan can be found for:
    the webhook answers 500 (Stripe retries, /admin/events shows it) rather than lose it."""


class SubscriptionExistsError(DomainError):
    """The user already has a live subscription; a second one is refused."""


class NotUnderReviewError(DomainError):
    """An admin's way out of review for a purchase that is not under review."""


class HoldNotOpenError(DomainError):
    """A capture or release of a hold that is no longer held; `error` names why."""

    def __init__(self, error: str, message: str):
        super().__init__(message)
        self.error = error  # hold_expired, hold_released or hold_already_settled


class CaptureExceedsHoldError(DomainError):
    """A capture of more credits than the hold reserved."""
