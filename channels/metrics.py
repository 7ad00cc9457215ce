"""``GET /metrics``: the gateway's operations metrics in Prometheus' text format, for the monitoring a deployment
already has.

Who may scrape: only a caller with ``METRICS_TOKEN`` (``Authorization: Bearer <token>``, compared in constant time).
Without a configured token the route answers 404, as if it did not exist: the gateway is the customer-facing
service, so being on loopback proves nothing (a reverse proxy on the same host makes every customer a loopback
client). Every call, right or wrong, counts against ``METRICS_LIMIT`` per client address (``conversations/protect``
throttle): 429 + Retry-After beyond it, before the token is even compared.

What it shows (docs/KPIS.md, "Operations metrics"):

* histograms fed by the running code paths (``conversations/metrics.py``): the gateway's end-to-end turn per
  channel, each Rasa request per endpoint, each outbox call to a messaging platform; error counters;
* values read from Redis when scraped: handoffs waiting (per effective priority) and the oldest wait, open tickets,
  open alerts, agents online, the outbox's pending / undelivered entries and the age of the oldest pending one per
  channel, dead letters, the analytics consumer's backlog; the Rasa model each worker has loaded (its ``/status``)
  and the model ``models/CURRENT`` names for deployment.

The action server has its own ``/metrics`` (same token; ``actions/metrics.py``).
"""
from __future__ import annotations

import asyncio
import hmac
import logging
import time
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Gauge, generate_latest
from redis.exceptions import RedisError, ResponseError

from bot.shared.paths import REPO_ROOT
from conversations import keys, metrics, protect

router = APIRouter(tags=["ops"])
logger = logging.getLogger(__name__)
OUTBOX_GROUP = "outbox"  # channels/outbox.py
ANALYTICS_GROUP = "analytics"  # analytics/consumer.py
MODEL_MARKER = REPO_ROOT / "models" / "CURRENT"


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _entry_age_s(entry_id: str, now: float) -> float:
    return max(0.0, now - int(entry_id.split("-", 1)[0]) / 1000.0)


def authorised(supplied: str | None, expected: str) -> bool:
    """``Bearer <METRICS_TOKEN>``, constant time; an unset token authorises nobody."""
    if not expected or not supplied or not supplied.startswith("Bearer "):
        return False
    return hmac.compare_digest(supplied[len("Bearer "):].encode("utf-8"), expected.encode("utf-8"))


async def _group_backlog(redis: Any, stream: str, group: str) -> tuple[int, int | None, float]:
    """(pending = delivered, not acknowledged; lag = not yet delivered, None when Redis cannot tell; age in
    seconds of the oldest pending entry, 0 when none)."""
    pending, lag, oldest = 0, None, 0.0
    try:
        groups = await redis.xinfo_groups(stream)
    except ResponseError:  # no such stream yet
        return 0, 0, 0.0
    for g in groups:
        if _s(g.get("name")) != group:
            continue
        pending = int(g.get("pending") or 0)
        lag = int(g["lag"]) if g.get("lag") is not None else None
    if pending:
        summary = await redis.xpending(stream, group)
        if summary.get("min"):
            oldest = _entry_age_s(_s(summary["min"]), time.time())
    return pending, lag, oldest


async def live_registry(app: Any) -> CollectorRegistry:
    """The values read from Redis (and Rasa's /status) at scrape time, in a registry of their own."""
    registry = CollectorRegistry()
    redis = app.state.redis
    now = app.state.desk.clock.timestamp()

    waiting = Gauge("csbot_handoff_queue_length", "Handoffs waiting for an agent, by effective priority "
                    "(1 = most urgent).", ["priority"], registry=registry)
    oldest = Gauge("csbot_handoff_queue_oldest_wait_seconds", "Wait of the longest-waiting queued handoff.",
                   registry=registry)
    queue = await redis.zrange(keys.queue(), 0, -1, withscores=True)
    per_priority: dict[int, int] = {}
    created: list[float] = []
    for _, score in queue:
        per_priority[int(score // 1e13)] = per_priority.get(int(score // 1e13), 0) + 1
        created.append((score % 1e13) / 1000.0)
    for priority in range(1, 5):
        waiting.labels(priority=str(priority)).set(per_priority.pop(priority, 0))
    for priority, n in per_priority.items():
        waiting.labels(priority=str(priority)).set(n)
    oldest.set(max(0.0, now - min(created)) if created else 0.0)
    Gauge("csbot_tickets_open", "Open tickets (handoffs outside service hours or with nobody online).",
          registry=registry).set(await redis.zcard(keys.tickets()))
    Gauge("csbot_alerts_open", "Open desk alerts (pickup SLA, complaint escalations, undelivered handoffs).",
          registry=registry).set(await redis.zcard(keys.alerts()))
    Gauge("csbot_agents_online", "Agents seen within the presence TTL.",
          registry=registry).set(len(await app.state.agents.online_ids()))

    pending = Gauge("csbot_outbox_pending", "Outbox batches handed to a worker and not yet sent (retrying).",
                    ["channel"], registry=registry)
    lag = Gauge("csbot_outbox_lag", "Outbox batches not yet handed to any worker.", ["channel"], registry=registry)
    age = Gauge("csbot_outbox_oldest_pending_seconds", "Age of the oldest outbox batch still being retried.",
                ["channel"], registry=registry)
    for name in sorted(getattr(app.state, "channels", {}) or {}):
        p, lg, a = await _group_backlog(redis, keys.outbox(name), OUTBOX_GROUP)
        pending.labels(channel=name).set(p)
        age.labels(channel=name).set(a)
        if lg is not None:
            lag.labels(channel=name).set(lg)
    Gauge("csbot_outbox_dead_letters", "Outbox batches given up (dead-letter stream length).",
          registry=registry).set(await redis.xlen(keys.outbox_dead()))
    p, lg, a = await _group_backlog(redis, keys.desk_events(), ANALYTICS_GROUP)
    Gauge("csbot_analytics_desk_backlog", "Desk events not yet written to the analytics record (pending + lag).",
          registry=registry).set(p + (lg or 0))

    models = await app.state.rasa.loaded_models() if hasattr(app.state.rasa, "loaded_models") else {}
    loaded = Gauge("csbot_rasa_model_info", "The model each Rasa worker has loaded (value 1; 'none': down or no "
                   "model; worker 'canary': the canary worker, RASA_CANARY_URL).", ["worker", "model"],
                   registry=registry)
    for worker, model in models.items():
        loaded.labels(worker=worker, model=model or "none").set(1)
    running = app.state.rasa.canary
    Gauge("csbot_canary_share", "Share of new conversations the canary worker answers (0: no canary running).",
          registry=registry).set(running.share if running else 0.0)
    deployed = await asyncio.to_thread(_deployed_model)
    Gauge("csbot_model_deployed_info", "The model models/CURRENT names (what a restart would load; value 1).",
          ["model"], registry=registry).labels(model=deployed or "none").set(1)
    return registry


def _deployed_model() -> str | None:
    try:
        return MODEL_MARKER.read_text(encoding="utf-8").strip()[:200] or None
    except OSError:
        return None


@router.get("/metrics", include_in_schema=False)
async def scrape(request: Request) -> Response:
    settings = request.app.state.settings
    token = settings.metrics_token.get_secret_value()
    if not token:
        raise HTTPException(404, "Not Found")
    client = protect.client_ref(protect.client_ip(request, settings.trusted_proxies), settings.client_salt)
    limited = await request.app.state.throttle.hit("metrics", client)
    if limited:
        raise HTTPException(429, "Too many requests.", headers={"Retry-After": str(limited.retry_after_s)})
    if not authorised(request.headers.get("authorization"), token):
        raise HTTPException(401, "A valid metrics token is required.", headers={"WWW-Authenticate": "Bearer"})
    body = generate_latest(REGISTRY)
    try:
        body += generate_latest(await live_registry(request.app))
    except (RedisError, OSError) as exc:
        metrics.error("gateway", "redis")
        logger.warning("metrics: live values not read: %s", exc)
    return Response(body, media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})
