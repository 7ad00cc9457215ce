"""Typed errors of the order service; actions map each one to a different answer for the customer.

Business refusals ("already shipped, cannot cancel") are *not* errors: they come back as results
with an outcome, because the bot has a normal answer for them. Errors are for "cannot answer".
"""

from __future__ import annotations


class OrderServiceError(Exception):
    """Base class; ``code`` is a stable machine-readable name (also used on the wire)."""

    code = "order_service_error"


class InvalidOrderNumber(OrderServiceError):
    """The input is not an order number (wrong format or unsafe content); never echo it back."""

    code = "invalid_order_number"

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid order number ({reason})")
        self.reason = reason


class InvalidInput(OrderServiceError):
    """Another argument (phone digits, sku, address...) is malformed."""

    code = "invalid_input"

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"invalid {field} ({reason})")
        self.field = field
        self.reason = reason


class OrderNotFound(OrderServiceError):
    code = "order_not_found"

    def __init__(self, number: str) -> None:
        super().__init__(f"order {number} not found")
        self.number = number


class ItemNotFound(OrderServiceError):
    """The order exists but has no line with that SKU."""

    code = "item_not_found"

    def __init__(self, number: str, sku: str) -> None:
        super().__init__(f"order {number} has no item {sku}")
        self.number = number
        self.sku = sku


class NotVerified(OrderServiceError):
    """The phone digits given for a state-changing call do not match the phone on the order."""

    code = "not_verified"

    def __init__(self, number: str) -> None:
        super().__init__(f"verification failed for order {number}")
        self.number = number


class BackendError(OrderServiceError):
    """The backend could not give an answer; the bot should apologise and offer a human."""

    code = "backend_error"


class BackendUnavailable(BackendError):
    code = "backend_unavailable"


class BackendTimeout(BackendError):
    code = "backend_timeout"
