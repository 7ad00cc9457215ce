"""FastAPI dependencies: objects created once at start-up (see app.lifespan) and handed to routes."""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from redis.asyncio import Redis

from handoff.agents import Agent, AgentStore
from handoff.canned import CannedAnswers
from handoff.handoffs import HandoffService
from handoff.protect import Throttle
from handoff.rasa_client import RasaClient
from handoff.settings import GatewaySettings
from handoff.store import ConversationStore
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


def session_token(request: Request) -> str | None:
    """Bearer header (API clients) or the HttpOnly cookie set at login (the console, incl. EventSource)."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.cookies.get(SESSION_COOKIE)


async def current_agent(request: Request) -> Agent:
    token = session_token(request)
    agent = await request.app.state.agents.authenticate(token or "")
    if agent is None:
        raise HTTPException(status_code=401, detail="Not logged in or session expired.",
                            headers={"WWW-Authenticate": "Bearer"})
    return agent


async def current_supervisor(agent: Annotated[Agent, Depends(current_agent)]) -> Agent:
    if not agent.is_supervisor:
        raise HTTPException(status_code=403, detail="Supervisors only.")
    return agent


StoreDep = Annotated[ConversationStore, Depends(get_store)]
RasaDep = Annotated[RasaClient, Depends(get_rasa)]
SettingsDep = Annotated[GatewaySettings, Depends(get_app_settings)]
RedisDep = Annotated[Redis, Depends(get_redis)]
DeskDep = Annotated[HandoffService, Depends(get_desk)]
AgentsDep = Annotated[AgentStore, Depends(get_agents)]
CannedDep = Annotated[CannedAnswers, Depends(get_canned)]
WebhookDep = Annotated[WebhookPusher, Depends(get_webhook)]
ThrottleDep = Annotated[Throttle, Depends(get_throttle)]
AgentDep = Annotated[Agent, Depends(current_agent)]
SupervisorDep = Annotated[Agent, Depends(current_supervisor)]
