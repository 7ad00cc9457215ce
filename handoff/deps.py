"""FastAPI dependencies: objects created once at start-up (see app.lifespan) and handed to routes, and the agent
desk's request checks (session, role, same origin)."""
from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request
from redis.asyncio import Redis

from conversations.protect import Throttle
from conversations.rasa_client import RasaClient
from conversations.settings import GatewaySettings
from conversations.store import ConversationStore
from handoff.agents import Agent, AgentStore
from handoff.canned import CannedAnswers
from handoff.handoffs import HandoffService
from handoff.login_guard import LoginGuard
from handoff.webhook import WebhookPusher

SESSION_COOKIE = "agent_session"


def get_store(request: Request) -> ConversationStore:
    return request.app.state.store


def get_rasa(request: Request) -> RasaClient:
    return request.app.state.rasa


def get_app_settings(request: Request) -> GatewaySettings:
    return request.app.state.settings


def get_redis(request: Request) -> Redis:
    return request.app.state.redis


def get_desk(request: Request) -> HandoffService:
    return request.app.state.desk


def get_agents(request: Request) -> AgentStore:
    return request.app.state.agents


def get_canned(request: Request) -> CannedAnswers:
    return request.app.state.canned


def get_webhook(request: Request) -> WebhookPusher:
    return request.app.state.webhook


def get_throttle(request: Request) -> Throttle:
    return request.app.state.throttle


def get_login_guard(request: Request) -> LoginGuard:
    return request.app.state.login_guard


def session_token(request: Request) -> str | None:
    """Bearer header (API clients) or the HttpOnly cookie set at login (the console, incl. EventSource)."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.cookies.get(SESSION_COOKIE)


async def current_user(request: Request) -> Agent:
    """Whoever holds a valid session, whatever the role (login, logout and "me" of the console and the
    workbench)."""
    token = session_token(request)
    agent = await request.app.state.agents.authenticate(token or "")
    if agent is None:
        raise HTTPException(status_code=401, detail="Not logged in or session expired.",
                            headers={"WWW-Authenticate": "Bearer"})
    return agent


async def current_agent(agent: Annotated[Agent, Depends(current_user)]) -> Agent:
    """An agent or a supervisor: editors (and any role the desk does not know) are not part of the desk."""
    if not agent.works_desk:
        raise HTTPException(status_code=403, detail="Agents and supervisors only.")
    return agent


async def current_supervisor(agent: Annotated[Agent, Depends(current_user)]) -> Agent:
    if not agent.is_supervisor:
        raise HTTPException(status_code=403, detail="Supervisors only.")
    return agent


async def current_editor(agent: Annotated[Agent, Depends(current_user)]) -> Agent:
    """An editor or a supervisor (supervisors can do everything editors can)."""
    if not agent.edits_content:
        raise HTTPException(status_code=403, detail="Editors and supervisors only.")
    return agent


STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CROSS_ORIGIN_DETAIL = "Cross-site request refused."


def _authority(netloc: str, default_ports: tuple[int, ...]) -> str | None:
    """``host[:port]`` of an origin or Host header, lower-cased, a default port dropped; None when malformed."""
    try:
        parts = urlsplit(f"//{netloc.strip()}")
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not host:
        return None
    return host if port is None or port in default_ports else f"{host}:{port}"


def _origin_authority(origin: str) -> str | None:
    try:
        parts = urlsplit(origin.strip())
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or parts.path not in ("", "/") or parts.query or parts.username:
        return None
    return _authority(parts.netloc, (80,) if parts.scheme == "http" else (443,))


async def same_origin(request: Request) -> None:
    """CSRF defence in depth for the agent desk (on top of the SameSite=Strict session cookie): a state-changing
    request is refused (403) when its ``Origin`` is present and is neither the gateway's own (the host and port
    of the ``Host`` header; scheme not compared, a TLS proxy may sit in front) nor listed in
    HANDOFF_ALLOWED_ORIGINS, or when the browser says ``Sec-Fetch-Site: cross-site`` for an origin not listed.
    Behind a proxy that rewrites ``Host``, list the public origin in HANDOFF_ALLOWED_ORIGINS. Requests without
    either header (curl, API clients with a bearer token) pass: browsers send them, and cannot forge them."""
    if request.method not in STATE_CHANGING:
        return
    settings: GatewaySettings = request.app.state.settings
    origin = request.headers.get("origin")
    allowed = origin is not None and origin.strip().rstrip("/").lower() in settings.allowed_origins
    if origin is not None and not allowed:
        authority = _origin_authority(origin)
        if authority is None or authority != _authority(request.headers.get("host", ""), (80, 443)):
            raise HTTPException(status_code=403, detail=CROSS_ORIGIN_DETAIL)
    if request.headers.get("sec-fetch-site", "").strip().lower() == "cross-site" and not allowed:
        raise HTTPException(status_code=403, detail=CROSS_ORIGIN_DETAIL)


StoreDep = Annotated[ConversationStore, Depends(get_store)]
RasaDep = Annotated[RasaClient, Depends(get_rasa)]
SettingsDep = Annotated[GatewaySettings, Depends(get_app_settings)]
RedisDep = Annotated[Redis, Depends(get_redis)]
DeskDep = Annotated[HandoffService, Depends(get_desk)]
AgentsDep = Annotated[AgentStore, Depends(get_agents)]
CannedDep = Annotated[CannedAnswers, Depends(get_canned)]
WebhookDep = Annotated[WebhookPusher, Depends(get_webhook)]
ThrottleDep = Annotated[Throttle, Depends(get_throttle)]
LoginGuardDep = Annotated[LoginGuard, Depends(get_login_guard)]
UserDep = Annotated[Agent, Depends(current_user)]
AgentDep = Annotated[Agent, Depends(current_agent)]
SupervisorDep = Annotated[Agent, Depends(current_supervisor)]
EditorDep = Annotated[Agent, Depends(current_editor)]


ACCOUNT_LIMITS = {  # per-account limits (GatewaySettings.client_limits) and what a 429 says
    "desk_write": "Too many changes at once; try again shortly.",
    "order_action": "Too many order requests at once; try again shortly.",
    "order_lookup": "Too many order requests at once; try again shortly.",
    "search": "Too many searches at once; try again shortly.",
    "report_read": "Too many reports at once; try again shortly.",
}


async def count_for_account(throttle: Throttle, name: str, account: Agent) -> None:
    """Count one request of a desk account against its per-account limit ``name`` (one of ACCOUNT_LIMITS; the
    HANDOFF_LIMIT_* settings); 429 with Retry-After when the account is over it, whatever conversation or
    session it uses."""
    limited = await throttle.hit(name, "agent:" + account.id)
    if limited:
        raise HTTPException(status_code=429, detail=ACCOUNT_LIMITS[name],
                            headers={"Retry-After": str(limited.retry_after_s)})


async def count_desk_write(throttle: Throttle, account: Agent) -> None:
    """Count one change by a desk account (macros, typing signals, workbench saves and tries) against
    ``HANDOFF_LIMIT_DESK_WRITES``."""
    await count_for_account(throttle, "desk_write", account)


async def count_report_read(throttle: ThrottleDep, account: UserDep) -> None:
    """A route dependency: one read of a report that queries a database (dashboard tables and CSV exports, the
    workbench's inbox and lists) against ``HANDOFF_LIMIT_REPORT_READS``. Whoever holds a session is counted, also
    when the route then refuses their role: a stolen session cannot make the database scan 10,000 times."""
    await count_for_account(throttle, "report_read", account)
