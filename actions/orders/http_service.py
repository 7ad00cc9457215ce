"""OrderService over a merchant's own REST API (contract: docs/MERCHANT_API.md).

Failure policy, chosen for a chat bot that must answer within seconds:
* every request has a timeout (default 2 s); a timeout is *not* retried -> :class:`BackendTimeout`
  (a slow backend gets slower under retries, and the customer is waiting);
* connection errors and 5xx responses are retried with exponential back-off, then
  :class:`BackendUnavailable`; POSTs carry an ``Idempotency-Key`` that stays the same across
  retries so a retried cancel/return cannot happen twice; cancel and address change take the
  caller's key for the requested change, so a call made again after a timeout replays the first
  one's real result instead of applying it twice;
* 4xx responses map to the typed errors and are never retried;
* only ``200 <= status < 300`` with a body matching the schema counts as success.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from actions.orders.enums import ReturnReason
from actions.orders.errors import BackendTimeout, BackendUnavailable, InvalidInput
from actions.orders.policy import StorePolicy, load_policy
from actions.orders.service import (
    AddressChangeResult,
    CancelResult,
    CompensationChoice,
    CompensationResult,
    ExchangeResult,
    LostParcelRefundResult,
    NewAddress,
    OrderInfo,
    OrderSummary,
    RefundOverview,
    ReshipResult,
    ReturnResult,
    TrackingInfo,
)
from actions.orders.validation import normalise_order_number
from actions.orders.wire import API_PREFIX, error_from_body, from_wire, to_wire
from actions.settings import ActionServerSettings

logger = logging.getLogger(__name__)

T = TypeVar("T")
IDEMPOTENCY_HEADER = "Idempotency-Key"


class HttpOrderService:
    """One httpx client per service instance; call :meth:`close` (or use ``with``) at shutdown."""

    def __init__(
        self,
        base_url: str,
        *,
        policy: StorePolicy,
        token: str | None = None,
        timeout_s: float = 2.0,
        retries: int = 2,
        backoff_s: float = 0.2,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._client = httpx.Client(
            base_url=base_url.rstrip("/") + API_PREFIX,
            headers=headers,
            timeout=httpx.Timeout(timeout_s),
            transport=transport,
        )
        self._policy = policy
        self._retries = retries
        self._backoff_s = backoff_s
        self._sleep = sleep

    @classmethod
    def from_settings(cls, settings: ActionServerSettings) -> HttpOrderService:
        if not settings.merchant_api_url:
            raise ValueError("ORDERS_MERCHANT_API_URL must be set for the http order backend")
        token = settings.merchant_api_token.get_secret_value() if settings.merchant_api_token else None
        return cls(
            settings.merchant_api_url,
            policy=load_policy(settings.policy_path),
            token=token,
            timeout_s=settings.merchant_api_timeout_s,
            retries=settings.merchant_api_retries,
            backoff_s=settings.merchant_api_backoff_s,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HttpOrderService:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- transport -------------------------------------------------------------------------------

    def _path(self, number: str, suffix: str = "") -> str:
        canonical = normalise_order_number(number, self._policy)  # bad input never leaves the process
        return f"/orders/{quote(canonical, safe='')}{suffix}"

    def _send(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        """Send with retries; return the decoded JSON of a 2xx response or raise a typed error.

        ``idempotency_key``: the caller's key for this change (the same for every call that requests the same
        change, e.g. after a timeout); without one each call gets a fresh key, shared only by its own retries."""
        headers = {IDEMPOTENCY_HEADER: idempotency_key or uuid.uuid4().hex} if method == "POST" else {}
        attempts = 1 + self._retries
        last_problem = "no attempt made"
        for attempt in range(attempts):
            if attempt:
                self._sleep(self._backoff_s * 2 ** (attempt - 1))
            try:
                response = self._client.request(method, path, json=json, params=params, headers=headers)
            except httpx.TimeoutException as exc:
                raise BackendTimeout(f"merchant API {method} {path} timed out") from exc
            except httpx.ConnectError as exc:
                last_problem = f"connection failed ({exc.__class__.__name__})"
                logger.warning(
                    "merchant API %s %s: %s (attempt %d/%d)", method, path, last_problem, attempt + 1, attempts
                )
                continue
            except httpx.TransportError as exc:
                raise BackendUnavailable(f"merchant API transport error ({exc.__class__.__name__})") from exc
            if response.status_code >= 500:
                last_problem = f"HTTP {response.status_code}"
                logger.warning(
                    "merchant API %s %s: %s (attempt %d/%d)", method, path, last_problem, attempt + 1, attempts
                )
                continue
            return self._decode(method, path, response)
        raise BackendUnavailable(f"merchant API {method} {path} failed after {attempts} attempts: {last_problem}")

    @staticmethod
    def _decode(method: str, path: str, response: httpx.Response) -> Any:
        try:
            body = response.json()
        except ValueError:
            body = None
        if 200 <= response.status_code < 300:
            if body is None:
                raise BackendUnavailable(f"merchant API {method} {path}: response is not JSON")
            return body
        error = error_from_body(body)
        if error is not None:
            raise error
        raise BackendUnavailable(f"merchant API {method} {path}: unexpected HTTP {response.status_code}")

    @staticmethod
    def _parse(tp: type[T] | Any, body: Any) -> T:
        try:
            return from_wire(tp, body)
        except ValidationError as exc:
            raise BackendUnavailable(
                f"merchant API response does not match the contract: {exc.error_count()} errors"
            ) from exc

    # --- OrderService ----------------------------------------------------------------------------

    def get_order(self, number: str) -> OrderInfo:
        return self._parse(OrderInfo, self._send("GET", self._path(number)))

    def verify(self, number: str, phone_last4: str) -> bool:
        body = self._send("POST", self._path(number, "/verify"), json={"phone_last4": phone_last4})
        if not isinstance(body, dict) or not isinstance(body.get("verified"), bool):
            raise BackendUnavailable("merchant API verify response does not match the contract")
        return body["verified"]

    def tracking(self, number: str) -> TrackingInfo:
        return self._parse(TrackingInfo, self._send("GET", self._path(number, "/tracking")))

    def cancel_order(self, number: str, *, phone_last4: str, idempotency_key: str | None = None) -> CancelResult:
        body = self._send(
            "POST", self._path(number, "/cancel"), json={"phone_last4": phone_last4}, idempotency_key=idempotency_key
        )
        return self._parse(CancelResult, body)

    def change_address(
        self, number: str, address: NewAddress, *, phone_last4: str, idempotency_key: str | None = None
    ) -> AddressChangeResult:
        payload = {"phone_last4": phone_last4, "address": to_wire(address)}
        body = self._send("POST", self._path(number, "/address"), json=payload, idempotency_key=idempotency_key)
        return self._parse(AddressChangeResult, body)

    def create_return(
        self,
        number: str,
        sku: str,
        reason: ReturnReason,
        *,
        phone_last4: str,
        quantity: int = 1,
        note: str | None = None,
    ) -> ReturnResult:
        payload = {
            "phone_last4": phone_last4,
            "sku": sku,
            "reason": ReturnReason(reason).value,
            "quantity": quantity,
            "note": note,
        }
        return self._parse(ReturnResult, self._send("POST", self._path(number, "/returns"), json=payload))

    def create_exchange(
        self,
        number: str,
        sku: str,
        reason: ReturnReason,
        *,
        phone_last4: str,
        quantity: int = 1,
        requested_variant: str | None = None,
    ) -> ExchangeResult:
        payload = {
            "phone_last4": phone_last4,
            "sku": sku,
            "reason": ReturnReason(reason).value,
            "quantity": quantity,
            "requested_variant": requested_variant,
        }
        return self._parse(ExchangeResult, self._send("POST", self._path(number, "/exchanges"), json=payload))

    def refund_status(self, number: str) -> RefundOverview:
        return self._parse(RefundOverview, self._send("GET", self._path(number, "/refunds")))

    def issue_delay_coupon(
        self, number: str, *, phone_last4: str, choice: CompensationChoice = CompensationChoice.COUPON
    ) -> CompensationResult:
        payload = {"phone_last4": phone_last4, "choice": CompensationChoice(choice).value}
        body = self._send("POST", self._path(number, "/delay-compensation"), json=payload)
        return self._parse(CompensationResult, body)

    def reship_lost_parcel(self, number: str, *, phone_last4: str, idempotency_key: str | None = None
                           ) -> ReshipResult:
        body = self._send(
            "POST", self._path(number, "/reship"), json={"phone_last4": phone_last4}, idempotency_key=idempotency_key
        )
        return self._parse(ReshipResult, body)

    def refund_lost_parcel(self, number: str, *, phone_last4: str, idempotency_key: str | None = None
                           ) -> LostParcelRefundResult:
        body = self._send(
            "POST", self._path(number, "/lost-parcel-refund"), json={"phone_last4": phone_last4},
            idempotency_key=idempotency_key,
        )
        return self._parse(LostParcelRefundResult, body)

    def list_orders_for_customer(self, customer_id: int, *, limit: int = 10) -> list[OrderSummary]:
        if customer_id < 1:
            raise InvalidInput("customer_id", "not_positive")
        body = self._send("GET", f"/customers/{customer_id}/orders", params={"limit": limit})
        if not isinstance(body, dict):
            raise BackendUnavailable("merchant API order list response does not match the contract")
        return self._parse(list[OrderSummary], body.get("orders"))
