"""FastAPI dependencies: objects created once at start-up (see app.lifespan) and handed to routes."""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from handoff.rasa_client import RasaClient
from handoff.settings import GatewaySettings
from handoff.store import ConversationStore


def get_store(request: Request) -> ConversationStore:
    return request.app.state.store


def get_rasa(request: Request) -> RasaClient:
    return request.app.state.rasa


def get_app_settings(request: Request) -> GatewaySettings:
    return request.app.state.settings


StoreDep = Annotated[ConversationStore, Depends(get_store)]
RasaDep = Annotated[RasaClient, Depends(get_rasa)]
SettingsDep = Annotated[GatewaySettings, Depends(get_app_settings)]
