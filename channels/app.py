"""The gateway service: every customer channel enters here (the website chat now, messaging apps later).

It stores each message in Redis, asks the conversation's owner (bot or human agent) and relays the answer; the
agent desk (queue, claims, console at /agent) lives in the same service so ownership has one source of truth.
Create with ``uvicorn channels.app:create_app --factory``.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from redis.exceptions import RedisError

import handoff
from analytics import wiring as analytics
from channels import admin as channel_admin
from channels import metrics as ops_metrics
from channels import signed_webhook, telegram, webchat, wechat, wecom, whatsapp
from channels.base import Channel
from channels.outbox import OutboxWorker, Relay
from channels.routes import ChannelRoutes
from channels.settings import ChannelSettings, get_channel_settings
from conversations import keys
from conversations.clock import Clock
from conversations.customers import CustomerLinks
from conversations.protect import BodyLimitMiddleware, SecurityHeadersMiddleware, Throttle
from conversations.rasa_client import RasaClient, follow_rollout
from conversations.redis_client import connect, moving_window, stopping
from conversations.settings import GatewaySettings, get_settings
from conversations.store import ConversationStore
from handoff.agents import AgentStore
from handoff.api import accounts, agent, cases, internal, order_tools, reply_tools
from handoff.canned import CannedAnswers
from handoff.complaints import ComplaintSla
from handoff.handoffs import HandoffService
from handoff.login_guard import LoginGuard
from handoff.policy import DeskPolicy
from handoff.undelivered import UndeliveredConsumer
from handoff.webhook import WebhookPusher
from workbench import wiring as workbench

WEBCHAT_STATIC = Path(__file__).parent / "static" / "webchat"  # the web chat channel's page
AGENT_STATIC = Path(handoff.__file__).parent / "static" / "agent"  # the desk's console
logger = logging.getLogger(__name__)


def build_channels(cs: ChannelSettings) -> dict[str, Channel]:
    """The messaging channels whose credentials are configured (the others are off: their routes answer 404)."""
    built: dict[str, Channel] = {}
    if cs.telegram_enabled:
        built[telegram.NAME] = telegram.TelegramChannel(cs)
    if cs.whatsapp_enabled:
        built[whatsapp.NAME] = whatsapp.WhatsAppChannel(cs)
    if cs.wechat_enabled:
        built[wechat.NAME] = wechat.WeChatChannel(cs)
    if cs.wecom_enabled:
        built[wecom.NAME] = wecom.WeComChannel(cs)
    if cs.signed_webhook_enabled:
        built[signed_webhook.NAME] = signed_webhook.SignedWebhookChannel(cs)
    return built


def channel_rates(cs: ChannelSettings) -> dict[str, str]:
    return {telegram.NAME: cs.telegram_rate_limit, whatsapp.NAME: cs.whatsapp_rate_limit,
            wechat.NAME: cs.wechat_rate_limit, wecom.NAME: cs.wecom_rate_limit,
            signed_webhook.NAME: cs.signed_webhook_rate_limit}


def create_app(settings: GatewaySettings | None = None, channel_settings: ChannelSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    channel_settings = channel_settings or get_channel_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = connect(settings.redis_url)  # retries a connection broken by a Redis restart
        app.state.settings = settings
        app.state.redis = redis
        app.state.store = ConversationStore(redis, settings.web_conversation_ttl_s)
        app.state.throttle = Throttle(settings.redis_url, settings.client_limits())
        app.state.rasa = RasaClient(settings.rasa_url, settings.rasa_token, settings.rasa_timeout_s,
                                    connect_timeout_s=settings.rasa_connect_timeout_s,
                                    down_s=settings.rasa_worker_down_s, canary_url=settings.rasa_canary_url)
        app.state.agents = AgentStore(redis, settings.handoff_session_ttl_s, settings.handoff_presence_ttl_s,
                                      settings.handoff_agent_max_concurrent, settings.handoff_login_hash_workers)
        app.state.login_guard = LoginGuard(redis, settings.redis_url, settings.handoff_login_max_failures,
                                           settings.handoff_login_ip_max_failures, settings.handoff_login_window_s,
                                           settings.handoff_login_lock_s)
        app.state.clock = Clock.from_setting(settings.handoff_clock)
        app.state.customers = CustomerLinks(redis, settings.client_salt, settings.customer_link_ttl_s,
                                            settings.web_conversation_ttl_s)
        app.state.desk = HandoffService(
            redis, app.state.store, app.state.agents, app.state.rasa, DeskPolicy.load(settings.handoff_policy_path),
            app.state.clock, settings.handoff_sla_pickup_s, settings.handoff_earlier_conversations,
            retention_s=settings.handoff_retention_s, audit_retention_s=settings.handoff_audit_retention_s,
            audit_maxlen=settings.handoff_audit_maxlen, desk_events_maxlen=settings.handoff_desk_events_maxlen,
            customers=app.state.customers, earlier_messages=settings.handoff_earlier_messages,
        )
        app.state.complaint_sla = ComplaintSla(redis, app.state.desk)
        app.state.canned = CannedAnswers(settings.handoff_kb_dir)
        app.state.webhook = WebhookPusher(redis, settings.handoff_webhook_url, settings.handoff_webhook_attempts,
                                          settings.handoff_webhook_backoff_s, settings.handoff_webhook_timeout_s,
                                          secret=settings.handoff_webhook_secret)
        app.state.undelivered = UndeliveredConsumer(
            redis, app.state.desk, app.state.store, app.state.webhook, settings.handoff_undelivered_attempts,
            settings.handoff_undelivered_backoff_s)
        tasks = [asyncio.create_task(_sla_loop(app, settings.handoff_sla_check_interval_s)),
                 asyncio.create_task(app.state.undelivered.run_forever()),
                 asyncio.create_task(follow_rollout(redis, app.state.rasa))]
        if app.state.webhook.enabled:
            tasks.append(asyncio.create_task(app.state.webhook.run_forever()))
        tasks += _start_channels(app, redis, settings, channel_settings)
        tasks += analytics.start(app, redis)
        tasks += workbench.start(app, redis)
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            # Bounded: a background loop stuck in a blocking Redis read must not keep the process from stopping.
            _, stuck = await asyncio.wait(tasks, timeout=5)
            if stuck:
                logger.warning("background tasks still running at shutdown: %s", [t.get_coro() for t in stuck])
            await workbench.stop(app)
            await app.state.webhook.close()
            for channel in app.state.channels.values():
                await channel.close()
            await app.state.rasa.close()
            await redis.aclose()

    docs = settings.web_docs_enabled
    app = FastAPI(title="Customer-service gateway", version="0.2.0", lifespan=lifespan,
                  docs_url="/docs" if docs else None, redoc_url=None, openapi_url="/openapi.json" if docs else None)
    # Outermost first: headers on every answer (413s included), then the body cap before any route reads a body.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.web_max_body_bytes,
                       larger=[(webchat.PHOTO_PATH, settings.web_max_upload_bytes)])
    app.add_middleware(SecurityHeadersMiddleware)
    app.include_router(webchat.router)
    app.include_router(telegram.router)
    app.include_router(whatsapp.router)
    app.include_router(wechat.router)
    app.include_router(wecom.router)
    app.include_router(signed_webhook.router)
    app.include_router(channel_admin.router)
    app.include_router(ops_metrics.router)
    app.include_router(internal.router)
    app.include_router(agent.router)
    app.include_router(reply_tools.router)
    app.include_router(order_tools.router)
    app.include_router(cases.router)
    app.include_router(accounts.router)
    app.mount("/static/webchat", StaticFiles(directory=WEBCHAT_STATIC), name="static-webchat")
    app.mount("/static/agent", StaticFiles(directory=AGENT_STATIC), name="static-agent")
    analytics.install(app)
    workbench.install(app)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', [])[1:]) or 'body'}: {e.get('msg')}" for e in exc.errors()
        )
        return JSONResponse(status_code=422, content={"detail": f"Invalid request: {problems}"})

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(WEBCHAT_STATIC / "index.html")

    @app.get("/agent", include_in_schema=False)
    async def agent_console() -> FileResponse:
        return FileResponse(AGENT_STATIC / "index.html")

    @app.get("/healthz", tags=["ops"])
    async def healthz(request: Request) -> dict:
        await request.app.state.redis.ping()
        return {"status": "ok"}

    return app


def _start_channels(app: FastAPI, redis: Any, settings: GatewaySettings, cs: ChannelSettings
                    ) -> list[asyncio.Task[None]]:
    """The enabled messaging channels, the relay and one outbox worker per channel (every gateway runs them; the
    consumer group and the cursors share the work without doubles)."""
    app.state.channel_settings = cs
    app.state.channels = build_channels(cs)
    app.state.channel_routes = ChannelRoutes(redis, app.state.store)
    app.state.channel_throttle = Throttle(settings.redis_url, cs.user_limits())
    app.state.outbox_workers = {}
    if not app.state.channels:
        return []
    limiter = moving_window(settings.redis_url, keys.channel_rate_limit_prefix())
    rates = channel_rates(cs)
    tasks = []
    for name, channel in app.state.channels.items():
        channel.redis = redis  # shared platform state (e.g. WeChat's access token)
        worker = OutboxWorker(redis, channel, app.state.channel_routes, limiter, rates.get(name, ""),
                              cs.outbox_attempts, cs.outbox_backoff_s, cs.outbox_backoff_max_s, cs.outbox_dead_maxlen)
        app.state.outbox_workers[name] = worker
        tasks.append(asyncio.create_task(worker.run_forever(poll_s=cs.outbox_poll_s)))
    app.state.relay = Relay(redis, app.state.channel_routes, cs.channel_relay_max_conversations)
    tasks.append(asyncio.create_task(app.state.relay.run_forever(poll_s=cs.outbox_poll_s)))
    return tasks


async def _sla_loop(app: FastAPI, interval_s: float) -> None:
    """Raise pickup-SLA alerts and complaint escalations (48 h unanswered, handoff/complaints.py); the
    state lives in Redis, so any number of gateway processes may run this."""
    while not stopping():
        await asyncio.sleep(interval_s)
        try:
            await app.state.desk.check_sla()
            await app.state.complaint_sla.check()
        except (RedisError, OSError) as exc:
            logger.warning("SLA check skipped: %s", exc)
