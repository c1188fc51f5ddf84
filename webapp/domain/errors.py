"""Errors the domain raises; views and handlers turn them into answers."""


class DomainError(Exception):
    """Base of every error a caller is expected to handle."""


class InvalidPurchaseError(DomainError):
    """The requested credits are not a purchase this store accepts."""


class UnknownPackError(InvalidPurchaseError):
    """The pack asked for is not one on offer (not configured, or its Price is not valid)."""


class InsufficientCreditsError(DomainError):
    def __init__(self, balance: int):
        super().__init__(f"insufficient credits (balance {balance})")
        self.balance = balance


class InvalidAmountError(DomainError):
    """A credits or money amount that is not acceptable here."""


class PaymentProviderError(DomainError):
    """Stripe could not be reached or refused the request; the message is safe to show."""


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
