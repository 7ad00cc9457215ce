"""HttpOrderService against the fake merchant API on a real socket: contract, typed errors, timeouts, retries."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from actions.orders.db import make_engine, make_session_factory
from actions.orders.enums import ItemCategory, OrderStatus, ReturnReason
from actions.orders.factory import build_order_service
from actions.orders.http_service import IDEMPOTENCY_HEADER, HttpOrderService
from actions.orders.models import Order
from actions.orders.policy import StorePolicy
from actions.orders.service import (
    BackendTimeout,
    BackendUnavailable,
    InvalidInput,
    InvalidOrderNumber,
    ItemNotFound,
    NewAddress,
    NotVerified,
    OrderNotFound,
    OrderService,
    Outcome,
)
from actions.orders.sql_service import SqlOrderService
from actions.settings import ActionServerSettings as OrderSettings
from tests.actions.orders.builders import LAST4, ItemSpec, Scenario
from tests.actions.orders.conftest import NOW
from tests.fakes.merchant_api import FAIL_ALWAYS, FakeControls, create_app, free_port, serve_in_thread

TEST_TOKEN = "test-token-not-a-secret"  # noqa: S105


@dataclass
class Fake:
    url: str
    controls: FakeControls
    sql: SqlOrderService
    scenario: Scenario
    factory: sessionmaker[Session]


@pytest.fixture(scope="module")
def fake(
    sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory, policy: StorePolicy, settings: OrderSettings
) -> Iterator[Fake]:
    """One fake merchant API over a SQLite order database for the module; tests use distinct orders."""
    path = tmp_path_factory.mktemp("merchant") / "store.db"
    path.write_bytes(sqlite_template.read_bytes())
    engine = make_engine(f"sqlite:///{path}", settings)
    factory = make_session_factory(engine)
    sql = SqlOrderService(factory, policy, clock=lambda: NOW)
    controls = FakeControls()
    with serve_in_thread(create_app(sql, controls)) as url:
        yield Fake(url, controls, sql, Scenario(factory, policy, NOW), factory)
    engine.dispose()


def ensure_order(fake: Fake, number: str, status: OrderStatus) -> None:
    """Create the order unless an earlier parametrised case of the module already did."""
    with fake.factory() as session:
        exists = session.scalar(select(Order.id).where(Order.number == number)) is not None
    if not exists:
        fake.scenario.order(number, status)


@pytest.fixture(autouse=True)
def _reset_switches(request: pytest.FixtureRequest) -> Iterator[None]:
    if "fake" in request.fixturenames:
        request.getfixturevalue("fake").controls.reset()
    yield


class SleepRecorder:
    """Records back-off delays instead of sleeping, so retry tests are fast and exact."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def client(fake: Fake, policy: StorePolicy, sleeps: SleepRecorder) -> Iterator[HttpOrderService]:
    """Default settings: 2 s timeout, 2 retries, 0.2 s first back-off."""
    with HttpOrderService(fake.url, policy=policy, sleep=sleeps) as service:
        yield service


def test_http_service_satisfies_the_interface(client: HttpOrderService) -> None:
    assert isinstance(client, OrderService)


def test_reads_over_http_equal_the_database_answers(fake: Fake, client: HttpOrderService) -> None:
    customer = fake.scenario.customer(phone="13700000001")
    fake.scenario.order(
        "DM2026112001",
        OrderStatus.IN_TRANSIT,
        days_late=4,
        customer_id=customer,
        phone="13812345678",
        items=(
            ItemSpec(),
            ItemSpec(sku="SN-7001", name="每日坚果礼盒", category=ItemCategory.SNACKS, price_cents=9800, quantity=2),
        ),
    )
    fake.scenario.order("DM2026112002", OrderStatus.DELIVERED, delivered_days_ago=2, customer_id=customer)
    fake.sql.create_return("DM2026112002", "AP-1001", ReturnReason.QUALITY, phone_last4=LAST4)
    # Dataclass equality: every field, type and timezone survives the JSON round trip.
    assert client.get_order("dm2026112001") == fake.sql.get_order("DM2026112001")
    assert client.tracking("DM2026112001") == fake.sql.tracking("DM2026112001")
    assert client.refund_status("DM2026112002") == fake.sql.refund_status("DM2026112002")
    assert client.list_orders_for_customer(customer, limit=5) == fake.sql.list_orders_for_customer(customer, limit=5)
    assert client.get_order("DM2026112001").status is OrderStatus.DELAYED
    assert client.verify("DM2026112001", LAST4) and not client.verify("DM2026112001", "9999")


def test_changes_over_http_reach_the_merchant_once(fake: Fake, client: HttpOrderService) -> None:
    fake.scenario.order("DM2026112003", OrderStatus.PAID, placed_days_ago=0.2)
    fake.scenario.order("DM2026112004", OrderStatus.PAID, placed_days_ago=0.2)
    cancelled = client.cancel_order("DM2026112003", phone_last4=LAST4)
    assert cancelled.outcome is Outcome.DONE and cancelled.refund is not None
    assert fake.sql.get_order("DM2026112003").status is OrderStatus.CANCELLED
    address = NewAddress("李娜", "13600001111", "上海", "上海", "浦东新区", "世纪大道100号")
    moved = client.change_address("DM2026112004", address, phone_last4=LAST4)
    assert moved.outcome is Outcome.DONE and fake.sql.get_order("DM2026112004").address.city == "上海"
    posts = [r for r in fake.controls.requests if r[0] == "POST"]
    assert posts == [("POST", "/v1/orders/DM2026112003/cancel"), ("POST", "/v1/orders/DM2026112004/address")]
    assert len(set(fake.controls.idempotency_keys)) == 2


def test_returns_exchanges_and_compensation_over_http(fake: Fake, client: HttpOrderService) -> None:
    # Two of the item: one returned, one exchanged (the same piece is not both returned and exchanged).
    fake.scenario.order("DM2026112005", OrderStatus.DELIVERED, delivered_days_ago=1, days_late=8,
                        items=(ItemSpec(quantity=2),))
    returned = client.create_return("DM2026112005", "AP-1001", ReturnReason.NO_REASON, phone_last4=LAST4)
    assert returned.outcome is Outcome.DONE and returned.return_request is not None
    exchanged = client.create_exchange(
        "DM2026112005", "AP-1001", ReturnReason.QUALITY, phone_last4=LAST4, requested_variant="换新同款"
    )
    assert exchanged.outcome is Outcome.DONE and exchanged.exchange is not None
    coupon = client.issue_delay_coupon("DM2026112005", phone_last4=LAST4)
    assert coupon.coupon is not None and coupon.coupon.amount_cents == 3000
    assert client.issue_delay_coupon("DM2026112005", phone_last4=LAST4).outcome is Outcome.ALREADY_DONE


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda c: c.get_order("DM2099123101"), OrderNotFound),
        (lambda c: c.cancel_order("DM2026112006", phone_last4="0000"), NotVerified),
        (lambda c: c.create_return("DM2026112006", "ZZ-9999", ReturnReason.QUALITY, phone_last4=LAST4), ItemNotFound),
        (
            lambda c: c.change_address(
                "DM2026112006",
                NewAddress("<b>x</b>", "13600001111", "上海", "上海", "浦东新区", "世纪大道1号"),
                phone_last4=LAST4,
            ),
            InvalidInput,
        ),
    ],
    ids=["404-not-found", "403-not-verified", "404-item", "400-invalid-input"],
)
def test_merchant_errors_become_typed_errors_without_retry(
    fake: Fake, client: HttpOrderService, sleeps: SleepRecorder, call: object, error: type[Exception]
) -> None:
    ensure_order(fake, "DM2026112006", OrderStatus.PAID)
    with pytest.raises(error):
        call(client)  # type: ignore[operator]
    assert len(fake.controls.requests) == 1 and sleeps.calls == []


@pytest.mark.parametrize("raw", ["DM2026112007' OR '1'='1", "<script>alert(1)</script>", "DM12"])
def test_invalid_order_numbers_are_rejected_before_any_request(fake: Fake, client: HttpOrderService, raw: str) -> None:
    with pytest.raises(InvalidOrderNumber):
        client.get_order(raw)
    assert fake.controls.requests == []


def test_slow_backend_times_out_at_2_seconds_and_is_not_retried(fake: Fake, client: HttpOrderService) -> None:
    fake.scenario.order("DM2026112008", OrderStatus.PAID)
    fake.controls.delay_s = 2.5
    started = time.perf_counter()
    with pytest.raises(BackendTimeout):
        client.get_order("DM2026112008")
    elapsed = time.perf_counter() - started
    assert 1.9 <= elapsed < 2.5, elapsed
    assert len(fake.controls.requests) == 1


def test_slow_but_in_time_answers_are_accepted(fake: Fake, client: HttpOrderService) -> None:
    fake.scenario.order("DM2026112009", OrderStatus.PAID)
    fake.controls.delay_s = 0.5
    assert client.get_order("DM2026112009").number == "DM2026112009"


def test_failing_backend_is_retried_with_backoff_then_unavailable(
    fake: Fake, client: HttpOrderService, sleeps: SleepRecorder
) -> None:
    fake.controls.fail_next = FAIL_ALWAYS
    with pytest.raises(BackendUnavailable, match="3 attempts: HTTP 500"):
        client.get_order("DM2026112010")
    assert len(fake.controls.requests) == 3
    assert sleeps.calls == [0.2, 0.4]


def test_one_failure_is_retried_with_the_same_idempotency_key(
    fake: Fake, client: HttpOrderService, sleeps: SleepRecorder
) -> None:
    fake.scenario.order("DM2026112011", OrderStatus.PAID)
    fake.controls.fail_next = 1
    result = client.cancel_order("DM2026112011", phone_last4=LAST4)
    assert result.outcome is Outcome.DONE
    assert len(fake.controls.requests) == 2 and sleeps.calls == [0.2]
    first, second = fake.controls.idempotency_keys
    assert first == second


def test_fake_replays_a_post_retried_with_the_same_key(fake: Fake) -> None:
    """The reference server honours Idempotency-Key: the second delivery returns the first answer."""
    fake.scenario.order("DM2026112017", OrderStatus.DELIVERED, delivered_days_ago=1)
    body = {"phone_last4": LAST4, "sku": "AP-1001", "reason": "no_reason"}
    headers = {IDEMPOTENCY_HEADER: "k" * 32}
    url = f"{fake.url}/v1/orders/DM2026112017/returns"
    first = httpx.post(url, json=body, headers=headers, timeout=5)
    second = httpx.post(url, json=body, headers=headers, timeout=5)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json() and first.json()["outcome"] == "done"
    fresh = httpx.post(url, json=body, headers={IDEMPOTENCY_HEADER: "n" * 32}, timeout=5)
    assert fresh.json()["outcome"] == "already_done"  # a new key reaches the service, which is idempotent too


def test_connection_refused_is_retried_then_unavailable(policy: StorePolicy, sleeps: SleepRecorder) -> None:
    with (
        HttpOrderService(f"http://127.0.0.1:{free_port()}", policy=policy, sleep=sleeps) as service,
        pytest.raises(BackendUnavailable, match="connection failed"),
    ):
        service.get_order("DM2026112012")
    assert sleeps.calls == [0.2, 0.4]


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (302, b""),
        (418, b'{"message": "teapot"}'),
        (200, b"<html>maintenance</html>"),
        (200, b'{"number": "DM2026112013"}'),  # JSON, but not an order
        (429, b'{"error": "rate_limited"}'),
    ],
    ids=["redirect", "unknown-4xx", "not-json", "contract-violation", "rate-limited"],
)
def test_responses_outside_the_contract_are_backend_unavailable(
    policy: StorePolicy, sleeps: SleepRecorder, status: int, body: bytes
) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(status, content=body, headers={"Content-Type": "application/json"})

    with (
        HttpOrderService(
            "http://merchant.test", policy=policy, transport=httpx.MockTransport(handler), sleep=sleeps
        ) as service,
        pytest.raises(BackendUnavailable),
    ):
        service.get_order("DM2026112013")
    assert seen == ["/v1/orders/DM2026112013"]  # 2xx/4xx are never retried


def test_bearer_token_is_sent(fake: Fake, policy: StorePolicy) -> None:
    fake.scenario.order("DM2026112014", OrderStatus.PAID)
    fake.controls.token = TEST_TOKEN
    try:
        with HttpOrderService(fake.url, policy=policy) as anonymous, pytest.raises(BackendUnavailable):
            anonymous.get_order("DM2026112014")
        with HttpOrderService(fake.url, policy=policy, token=TEST_TOKEN) as authorised:
            assert authorised.get_order("DM2026112014").number == "DM2026112014"
    finally:
        fake.controls.token = None


def test_post_requests_carry_an_idempotency_key_header(policy: StorePolicy) -> None:
    headers: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        headers.append(request.headers.get(IDEMPOTENCY_HEADER))
        return httpx.Response(200, json={"verified": True})

    with HttpOrderService("http://merchant.test", policy=policy, transport=httpx.MockTransport(handler)) as service:
        assert service.verify("DM2026112015", LAST4) is True
    assert len(headers) == 1 and headers[0] and len(headers[0]) == 32


def test_factory_builds_the_configured_backend(fake: Fake, tmp_path: Path) -> None:
    http_settings = OrderSettings(
        _env_file=None,
        backend="http",
        merchant_api_url=fake.url,  # type: ignore[call-arg]
        merchant_api_timeout_s=0.5,
    )
    service = build_order_service(http_settings)
    try:
        assert isinstance(service, HttpOrderService)
        fake.controls.delay_s = 1.0
        with pytest.raises(BackendTimeout):  # the configured 0.5 s timeout applies
            service.get_order("DM2026112016")
    finally:
        service.close()
    sql_settings = OrderSettings(_env_file=None, database_url=f"sqlite:///{tmp_path / 'x.db'}")  # type: ignore[call-arg]
    sql_service = build_order_service(sql_settings)
    try:
        assert isinstance(sql_service, SqlOrderService)
    finally:
        sql_service.close()


def test_reship_of_a_lost_parcel_over_http(fake: Fake, client: HttpOrderService) -> None:
    """``POST /orders/{n}/reship`` (the agent desk's reship): done once, then already done; refused when not lost."""
    fake.scenario.customer(phone="13700000077")
    fake.scenario.order("DM2026112377", OrderStatus.LOST, phone="13700000077", days_late=5)
    first = client.reship_lost_parcel("DM2026112377", phone_last4="0077", idempotency_key="a" * 32)
    assert first.outcome is Outcome.DONE and first.status is OrderStatus.SHIPPED and first.tracking_number
    again = client.reship_lost_parcel("DM2026112377", phone_last4="0077")
    assert again.outcome is Outcome.ALREADY_DONE and again.tracking_number == first.tracking_number
    assert len(fake.sql.tracking("DM2026112377").shipments) == 2
    fake.scenario.order("DM2026112378", OrderStatus.IN_TRANSIT, phone="13700000077")
    assert client.reship_lost_parcel("DM2026112378", phone_last4="0077").refusal == "not_lost"
    with pytest.raises(NotVerified):
        client.reship_lost_parcel("DM2026112378", phone_last4="1111")


def test_lost_parcel_refund_over_http(fake: Fake, client: HttpOrderService) -> None:
    """``POST /orders/{n}/lost-parcel-refund`` (the agent desk's full refund of a lost parcel): done once to the
    original method, then already done; a reship after it and a refund of a parcel that is not lost are refused."""
    fake.scenario.customer(phone="13700000078")
    fake.scenario.order("DM2026112379", OrderStatus.LOST, phone="13700000078", days_late=5)
    first = client.refund_lost_parcel("DM2026112379", phone_last4="0078", idempotency_key="b" * 32)
    assert first.outcome is Outcome.DONE and first.refund is not None and first.refund.amount_cents == 8700
    assert first.refund.expected_arrival_at is not None and first.status is OrderStatus.LOST
    again = client.refund_lost_parcel("DM2026112379", phone_last4="0078")
    assert again.outcome is Outcome.ALREADY_DONE and again.refund == first.refund
    assert client.reship_lost_parcel("DM2026112379", phone_last4="0078").refusal == "already_refunded"
    fake.scenario.order("DM2026112380", OrderStatus.IN_TRANSIT, phone="13700000078")
    assert client.refund_lost_parcel("DM2026112380", phone_last4="0078").refusal == "not_lost"
    with pytest.raises(NotVerified):
        client.refund_lost_parcel("DM2026112380", phone_last4="1111")
