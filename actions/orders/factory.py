"""Choose the order backend from settings (own database or merchant REST API) at start-up."""

from __future__ import annotations

from actions.orders.http_service import HttpOrderService
from actions.orders.service import OrderService
from actions.orders.sql_service import SqlOrderService
from actions.settings import ActionServerSettings, get_settings


def build_order_service(settings: ActionServerSettings | None = None) -> OrderService:
    """The one place that knows which implementation runs; actions receive an OrderService."""
    cfg = settings or get_settings()
    if cfg.backend == "http":
        return HttpOrderService.from_settings(cfg)
    return SqlOrderService.from_settings(cfg)
