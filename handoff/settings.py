"""Settings of the gateway service (web chat API now; agent desk later). One class, read from the environment."""
from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class GatewaySettings(BaseSettings):
    """Environment variables (all optional; defaults fit `make run` on one machine).

    | variable | default | meaning |
    |---|---|---|
    | REDIS_URL | redis://127.0.0.1:6379/0 | Redis holding conversations, message streams and ownership |
    | RASA_URL | http://127.0.0.1:5005 | Rasa server (REST channel + HTTP API) |
    | RASA_TOKEN | (empty) | token for Rasa's HTTP API (`rasa run --auth-token`) |
    | RASA_TIMEOUT_S | 20 | seconds to wait for the bot's answer |
    | WEB_MAX_MESSAGE_CHARS | 10000 | longer customer messages are rejected with 413 |
    | WEB_NLU_CHARS | 2000 | how much of a message the bot reads (the rest is kept for agents) |
    | WEB_CONVERSATION_TTL_S | 2592000 | conversations expire 30 days after the last message |
    """

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    redis_url: str = "redis://127.0.0.1:6379/0"
    rasa_url: str = "http://127.0.0.1:5005"
    rasa_token: str = ""
    rasa_timeout_s: float = 20.0
    web_max_message_chars: int = Field(default=10_000, ge=100)
    web_nlu_chars: int = Field(default=2_000, ge=50)
    web_conversation_ttl_s: int = Field(default=30 * 24 * 3600, ge=60)


@lru_cache
def get_settings() -> GatewaySettings:
    return GatewaySettings()
