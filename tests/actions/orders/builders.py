"""Small, explicit order scenarios for service tests (the demo data is too random to assert exact outcomes)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from actions.orders import rules
from actions.orders.enums import (
    Carrier,
    ItemCategory,
    MembershipTier,
    OrderStatus,
    PaymentMethod,
    TrackingEventType,
)
from actions.orders.models import Customer, Order, OrderItem, Shipment, TrackingEvent
from actions.orders.policy import StorePolicy

PHONE = "13812345678"
LAST4 = PHONE[-4:]


@dataclass(frozen=True)
class ItemSpec:
    sku: str = "AP-1001"
    name: str = "男士纯棉圆领T恤"
    category: ItemCategory = ItemCategory.APPAREL
    quantity: int = 1
    price_cents: int = 7900


class Scenario:
    """Inserts customers and orders whose dates are derived from the policy rules."""

    def __init__(self, factory: sessionmaker[Session], policy: StorePolicy, now: datetime) -> None:
        self.factory = factory
        self.policy = policy
        self.now = now
        self._customer_id: int | None = None
        self._tracking = 0

    def customer(self, tier: MembershipTier = MembershipTier.GOLD, phone: str = PHONE, name: str = "张伟") -> int:
        with self.factory() as session, session.begin():
            customer = Customer(name=name, phone=phone, tier=tier, created_at=self.now - timedelta(days=400))
            session.add(customer)
            session.flush()
            self._customer_id = customer.id
            return customer.id

    def order(
        self,
        number: str,
        status: OrderStatus,
        *,
        placed_days_ago: float = 10,
        delivered_days_ago: float | None = None,
        days_late: int | None = None,
        items: tuple[ItemSpec, ...] = (ItemSpec(),),
        payment: PaymentMethod = PaymentMethod.ALIPAY,
        province: str = "浙江",
        city: str = "杭州",
        express: bool = False,
        phone: str = PHONE,
        carrier: Carrier = Carrier.SF,
        customer_id: int | None = None,
    ) -> Order:
        """One order in ``status``; ``days_late`` moves the promised date so the order is that late now."""
        if customer_id is None and self._customer_id is None:
            self.customer()
        subtotal = sum(i.price_cents * i.quantity for i in items)
        fee = rules.shipping_fee_cents(subtotal, express, self.policy)
        placed_at = self.now - timedelta(days=placed_days_ago)
        paid = status is not OrderStatus.UNPAID and not (status is OrderStatus.CANCELLED and placed_days_ago < 0.02)
        paid_at = placed_at + timedelta(minutes=3) if paid else None
        promised: date | None = None
        if paid_at is not None:
            promised = rules.promised_delivery_date(paid_at, province, city, express, self.policy)
        delivered_at = self.now - timedelta(days=delivered_days_ago) if delivered_days_ago is not None else None
        if days_late is not None:
            reference = delivered_at or self.now
            promised = rules.local_date(reference, self.policy) - timedelta(days=days_late)
        shipped = status in {
            OrderStatus.SHIPPED,
            OrderStatus.IN_TRANSIT,
            OrderStatus.DELAYED,
            OrderStatus.DELIVERED,
            OrderStatus.LOST,
            OrderStatus.RETURNED,
        }
        order = Order(
            number=number,
            customer_id=customer_id or self._customer_id,
            status=status,
            payment_method=payment,
            subtotal_cents=subtotal,
            shipping_fee_cents=fee,
            total_cents=subtotal + fee,
            express=express,
            recipient_name="张伟",
            recipient_phone=phone,
            province=province,
            city=city,
            district="西湖区",
            address_line="文一西路969号3幢201室",
            placed_at=placed_at,
            paid_at=paid_at,
            shipped_at=placed_at + timedelta(days=1) if shipped else None,
            delivered_at=delivered_at,
            cancelled_at=placed_at + timedelta(hours=1) if status is OrderStatus.CANCELLED else None,
            promised_delivery_date=promised,
            is_presale=False,
            presale_ship_date=None,
        )
        order.items = [
            OrderItem(sku=i.sku, name=i.name, category=i.category, quantity=i.quantity, unit_price_cents=i.price_cents)
            for i in items
        ]
        if shipped:
            self._tracking += 1
            shipment = Shipment(
                carrier=carrier, tracking_number=f"SF{self._tracking:012d}", shipped_at=placed_at + timedelta(days=1)
            )
            shipment.events = [
                TrackingEvent(
                    occurred_at=placed_at + timedelta(days=1),
                    event_type=TrackingEventType.PICKED_UP,
                    city="杭州",
                    description_zh="【杭州市】顺丰速运已揽收",
                    description_en="[Hangzhou] Picked up by SF Express",
                ),
                TrackingEvent(
                    occurred_at=placed_at + timedelta(days=1, hours=4),
                    event_type=TrackingEventType.DEPARTED,
                    city="杭州",
                    description_zh="快件已从【杭州转运中心】发出",
                    description_en="Departed Hangzhou sorting centre",
                ),
            ]
            order.shipments = [shipment]
        with self.factory() as session, session.begin():
            session.add(order)
        return order
