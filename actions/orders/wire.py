"""JSON form of the service results and errors (docs/MERCHANT_API.md), shared by client and fake server.

The dataclasses in :mod:`actions.orders.service` are the schema: pydantic validates incoming JSON
against them, so a merchant API that drifts from the contract fails loudly at the boundary.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, TypeVar

from pydantic import TypeAdapter

from actions.orders.errors import (
    BackendTimeout,
    BackendUnavailable,
    InvalidInput,
    InvalidOrderNumber,
    ItemNotFound,
    NotVerified,
    OrderNotFound,
    OrderServiceError,
)

T = TypeVar("T")

API_PREFIX = "/v1"

# HTTP status per error code; the client maps (status, code) back to the same exception type.
ERROR_STATUS: dict[str, int] = {
    InvalidInput.code: 400,
    NotVerified.code: 403,
    OrderNotFound.code: 404,
    ItemNotFound.code: 404,
    InvalidOrderNumber.code: 422,
    BackendUnavailable.code: 503,
    BackendTimeout.code: 504,
}


@lru_cache(maxsize=64)
def _adapter(tp: Any) -> TypeAdapter[Any]:
    return TypeAdapter(tp)


def to_wire(value: Any, tp: Any | None = None) -> Any:
    """Dataclass (or list of them) -> JSON-compatible data."""
    return _adapter(tp if tp is not None else type(value)).dump_python(value, mode="json")


def from_wire(tp: type[T] | Any, data: Any) -> T:
    """JSON data -> dataclass, validated (raises pydantic.ValidationError)."""
    result: T = _adapter(tp).validate_python(data)
    return result


def error_body(exc: OrderServiceError) -> dict[str, Any]:
    """Error JSON: {"error": code, "detail": text, ...fields the client needs to rebuild the exception}."""
    body: dict[str, Any] = {"error": exc.code, "detail": str(exc)}
    for attribute in ("reason", "field", "number", "sku"):
        if hasattr(exc, attribute):
            body[attribute] = getattr(exc, attribute)
    return body


def error_from_body(body: Any) -> OrderServiceError | None:
    """Rebuild the typed error from an error JSON body; None when the body is not ours."""
    if not isinstance(body, dict) or not isinstance(body.get("error"), str):
        return None
    code = body["error"]
    number = str(body.get("number", ""))
    if code == InvalidOrderNumber.code:
        return InvalidOrderNumber(str(body.get("reason", "format")))
    if code == InvalidInput.code:
        return InvalidInput(str(body.get("field", "unknown")), str(body.get("reason", "invalid")))
    if code == OrderNotFound.code:
        return OrderNotFound(number)
    if code == ItemNotFound.code:
        return ItemNotFound(number, str(body.get("sku", "")))
    if code == NotVerified.code:
        return NotVerified(number)
    if code == BackendTimeout.code:
        return BackendTimeout(str(body.get("detail", "merchant backend timed out")))
    if code == BackendUnavailable.code:
        return BackendUnavailable(str(body.get("detail", "merchant backend unavailable")))
    return None
