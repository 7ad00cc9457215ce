"""The action server's own ``GET /metrics`` (Prometheus text format, ``prometheus_client``).

What it measures, from the requests it serves: ``csbot_action_seconds{action}`` (one custom action run, as Rasa
asks for it on ``POST /webhook``; the label is a registered action name, anything else is ``other``),
``csbot_action_errors_total{action,status}`` (webhook answers with a 4xx/5xx status: a rejected or failed action),
plus the process metrics prometheus_client exports by default (CPU, memory, open files).

Who may scrape: the server binds loopback (``ACTION_SERVER_HOST``) and ``/metrics`` additionally requires
``Authorization: Bearer <METRICS_TOKEN>`` (the same token as the gateway's ``/metrics``; unset: 404). The action
token (``X-Action-Token``) does not open it and it does not open the actions: a scraper holds only the metrics token.
"""
from __future__ import annotations

import hmac
import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest

PATH = "/metrics"
ACTION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)
ACTION_SECONDS = Histogram("csbot_action_seconds", "One custom action run on the action server (POST /webhook).",
                           ["action"], buckets=ACTION_BUCKETS)
ACTION_ERRORS = Counter("csbot_action_errors_total", "Action calls answered with an error status.",
                        ["action", "status"])


def authorised(supplied: str | None, expected: str) -> bool:
    if not expected or not supplied or not supplied.startswith("Bearer "):
        return False
    return hmac.compare_digest(supplied[len("Bearer "):].encode("utf-8"), expected.encode("utf-8"))


def install(app: Any, executor: Any, metrics_token: str) -> None:
    """Time every ``/webhook`` call and serve ``/metrics`` on a rasa-sdk Sanic app."""
    from sanic import response

    def action_of(request: Any) -> str:
        try:
            name = (request.json or {}).get("next_action") if isinstance(request.json, dict) else None
        except Exception:  # noqa: BLE001 - an unreadable body is the action server's problem to answer
            name = None
        return name if isinstance(name, str) and name in executor.actions else "other"

    @app.on_request
    async def _started(request: Any) -> None:
        if request.path == "/webhook":
            request.ctx.csbot_started = time.perf_counter()

    @app.on_response
    async def _timed(request: Any, resp: Any) -> None:
        started = getattr(request.ctx, "csbot_started", None)
        if started is None:
            return
        action = action_of(request)
        ACTION_SECONDS.labels(action=action).observe(time.perf_counter() - started)
        if resp is not None and resp.status >= 400:
            ACTION_ERRORS.labels(action=action, status=str(resp.status)).inc()

    @app.get(PATH)
    async def scrape(request: Any) -> Any:
        if not metrics_token:
            return response.json({"error": "not found"}, status=404)
        if not authorised(request.headers.get("authorization"), metrics_token):
            return response.json({"error": "a valid metrics token is required"}, status=401,
                                 headers={"WWW-Authenticate": "Bearer"})
        return response.raw(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
