"""A local stand-in for a merchant's order REST API (docs/MERCHANT_API.md), backed by any OrderService.

Used by the HttpOrderService tests and handy for demos. Switches in :class:`FakeControls` make it
slow (sleep before answering) or failing (HTTP 500 for the next N requests, or always), and it logs
every request so tests can assert how many attempts a client made.

    python -m tests.fakes.merchant_api --url sqlite:///var/store.db --port 8090
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from actions.orders.enums import ReturnReason
from actions.orders.errors import OrderServiceError
from actions.orders.service import CompensationChoice, NewAddress, OrderService, OrderSummary
from actions.orders.wire import API_PREFIX, ERROR_STATUS, error_body, to_wire

FAIL_ALWAYS = -1


@dataclass
class FakeControls:
    """Mutable switches, read on every request (tests flip them between calls)."""

    delay_s: float = 0.0
    fail_next: int = 0  # answer this many next requests with fail_status; FAIL_ALWAYS = every request
    fail_status: int = 500
    token: str | None = None  # when set, requests must carry "Authorization: Bearer <token>"
    requests: list[tuple[str, str]] = field(default_factory=list)
    idempotency_keys: list[str] = field(default_factory=list)
    replies: dict[str, tuple[int, bytes]] = field(default_factory=dict)  # Idempotency-Key -> first 2xx answer
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def reset(self) -> None:
        with self._lock:
            self.delay_s, self.fail_next, self.fail_status = 0.0, 0, 500
            self.requests.clear()
            self.idempotency_keys.clear()
            self.replies.clear()

    def record(self, method: str, path: str, idempotency_key: str | None) -> bool:
        """Log the request; True when this one must fail."""
        with self._lock:
            self.requests.append((method, path))
            if idempotency_key:
                self.idempotency_keys.append(idempotency_key)
            if self.fail_next == FAIL_ALWAYS:
                return True
            if self.fail_next > 0:
                self.fail_next -= 1
                return True
            return False


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PhoneBody(_Body):
    phone_last4: str


class AddressBody(_Body):
    phone_last4: str
    address: NewAddress


class ReturnBody(_Body):
    phone_last4: str
    sku: str
    reason: ReturnReason
    quantity: int = 1
    note: str | None = None


class ExchangeBody(_Body):
    phone_last4: str
    sku: str
    reason: ReturnReason
    quantity: int = 1
    requested_variant: str | None = None


class CompensationBody(_Body):
    phone_last4: str
    choice: CompensationChoice = CompensationChoice.COUPON


class ControlsBody(_Body):
    delay_s: float | None = None
    fail_next: int | None = None
    fail_status: int | None = None


def _service(request: Request) -> OrderService:
    service: OrderService = request.app.state.order_service
    return service


ServiceDep = Annotated[OrderService, Depends(_service)]


def _orders_router() -> APIRouter:
    router = APIRouter(prefix=f"{API_PREFIX}/orders", tags=["orders"])

    @router.get("/{number}")
    def get_order(number: str, service: ServiceDep) -> Any:
        return to_wire(service.get_order(number))

    @router.post("/{number}/verify")
    def verify(number: str, body: PhoneBody, service: ServiceDep) -> Any:
        return {"verified": service.verify(number, body.phone_last4)}

    @router.get("/{number}/tracking")
    def tracking(number: str, service: ServiceDep) -> Any:
        return to_wire(service.tracking(number))

    @router.post("/{number}/cancel")
    def cancel(number: str, body: PhoneBody, service: ServiceDep) -> Any:
        return to_wire(service.cancel_order(number, phone_last4=body.phone_last4))

    @router.post("/{number}/address")
    def change_address(number: str, body: AddressBody, service: ServiceDep) -> Any:
        return to_wire(service.change_address(number, body.address, phone_last4=body.phone_last4))

    @router.post("/{number}/returns")
    def create_return(number: str, body: ReturnBody, service: ServiceDep) -> Any:
        result = service.create_return(
            number, body.sku, body.reason, phone_last4=body.phone_last4, quantity=body.quantity, note=body.note
        )
        return to_wire(result)

    @router.post("/{number}/exchanges")
    def create_exchange(number: str, body: ExchangeBody, service: ServiceDep) -> Any:
        result = service.create_exchange(
            number,
            body.sku,
            body.reason,
            phone_last4=body.phone_last4,
            quantity=body.quantity,
            requested_variant=body.requested_variant,
        )
        return to_wire(result)

    @router.get("/{number}/refunds")
    def refunds(number: str, service: ServiceDep) -> Any:
        return to_wire(service.refund_status(number))

    @router.post("/{number}/reship")
    def reship(number: str, body: PhoneBody, service: ServiceDep) -> Any:
        return to_wire(service.reship_lost_parcel(number, phone_last4=body.phone_last4))

    @router.post("/{number}/lost-parcel-refund")
    def lost_parcel_refund(number: str, body: PhoneBody, service: ServiceDep) -> Any:
        return to_wire(service.refund_lost_parcel(number, phone_last4=body.phone_last4))

    @router.post("/{number}/delay-compensation")
    def delay_compensation(number: str, body: CompensationBody, service: ServiceDep) -> Any:
        return to_wire(service.issue_delay_coupon(number, phone_last4=body.phone_last4, choice=body.choice))

    return router


def _customers_router() -> APIRouter:
    router = APIRouter(prefix=f"{API_PREFIX}/customers", tags=["customers"])

    @router.get("/{customer_id}/orders")
    def list_orders(customer_id: int, service: ServiceDep, limit: Annotated[int, Query()] = 10) -> Any:
        return {"orders": to_wire(service.list_orders_for_customer(customer_id, limit=limit), list[OrderSummary])}

    return router


def _fake_router(controls: FakeControls) -> APIRouter:
    """Switches over HTTP, for driving the fake from another process."""
    router = APIRouter(prefix="/_fake", tags=["fake"])

    @router.post("/controls")
    def set_controls(body: ControlsBody) -> Any:
        for key, value in body.model_dump(exclude_none=True).items():
            setattr(controls, key, value)
        return {"delay_s": controls.delay_s, "fail_next": controls.fail_next, "fail_status": controls.fail_status}

    @router.get("/requests")
    def requests_seen() -> Any:
        return {"requests": [list(r) for r in controls.requests]}

    return router


def create_app(service: OrderService, controls: FakeControls | None = None) -> FastAPI:
    """The fake merchant API over ``service``; ``app.state.controls`` holds the switches."""
    app = FastAPI(title="Fake merchant order API", version="1")
    app.state.order_service = service
    app.state.controls = controls or FakeControls()

    @app.middleware("http")
    async def switches(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        ctl: FakeControls = request.app.state.controls
        if request.url.path.startswith("/_fake"):
            return await call_next(request)
        if ctl.token and request.headers.get("authorization") != f"Bearer {ctl.token}":
            return JSONResponse({"error": "unauthorized", "detail": "missing or wrong token"}, status_code=401)
        fail = ctl.record(request.method, request.url.path, request.headers.get("idempotency-key"))
        if ctl.delay_s:
            await asyncio.sleep(ctl.delay_s)
        if fail:
            return JSONResponse({"error": "internal", "detail": "fake failure"}, status_code=ctl.fail_status)
        key = request.headers.get("idempotency-key") if request.method == "POST" else None
        if key and key in ctl.replies:  # a retried POST gets the first answer, not a second change
            status, body = ctl.replies[key]
            return Response(content=body, status_code=status, media_type="application/json")
        response = await call_next(request)
        if key and 200 <= response.status_code < 300:
            body = b"".join([chunk async for chunk in response.body_iterator])  # type: ignore[attr-defined]
            ctl.replies[key] = (response.status_code, body)
            return Response(content=body, status_code=response.status_code, media_type="application/json")
        return response

    @app.exception_handler(OrderServiceError)
    async def service_error(_request: Request, exc: OrderServiceError) -> JSONResponse:
        return JSONResponse(error_body(exc), status_code=ERROR_STATUS.get(exc.code, 500))

    app.include_router(_orders_router())
    app.include_router(_customers_router())
    app.include_router(_fake_router(app.state.controls))
    return app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve_in_thread(app: FastAPI, port: int | None = None) -> Iterator[str]:
    """Run ``app`` on a real loopback socket (real timeouts, real connection errors); yields the base URL."""
    chosen = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=chosen, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, name="fake-merchant-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("fake merchant API did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{chosen}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def main() -> None:
    from actions.orders.db import make_engine, make_session_factory
    from actions.orders.policy import load_policy
    from actions.orders.sql_service import SqlOrderService

    parser = argparse.ArgumentParser(description="fake merchant order API over a database")
    parser.add_argument("--url", required=True, help="database URL with the demo data")
    parser.add_argument("--port", type=int, default=8090)
    args = parser.parse_args()
    engine = make_engine(args.url)
    service = SqlOrderService(make_session_factory(engine), load_policy())
    uvicorn.run(create_app(service), host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
