"""Settings of the order backend (one pydantic-settings class, read from the environment / ``.env``).

Environment variables:
    DATABASE_URL                  SQLAlchemy URL; default SQLite file var/store.db in the repository.
    ORDERS_BACKEND                "sql" (own database) or "http" (merchant REST API, docs/MERCHANT_API.md).
    ORDERS_POLICY_PATH            policy YAML; default data/store_policy.yml.
    ORDERS_MERCHANT_API_URL       base URL of the merchant API (backend "http").
    ORDERS_MERCHANT_API_TOKEN     bearer token for the merchant API (never logged).
    ORDERS_MERCHANT_API_TIMEOUT_S per-request timeout, default 2 s.
    ORDERS_MERCHANT_API_RETRIES   extra attempts on 5xx / connection errors, default 2.
    ORDERS_MERCHANT_API_BACKOFF_S first back-off delay, doubled per retry, default 0.2 s.
    ORDERS_DB_STATEMENT_TIMEOUT_MS  PostgreSQL statement timeout, default 2000 ms.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from actions.orders.policy import DEFAULT_POLICY_PATH, REPO_ROOT

DEFAULT_SQLITE_PATH = REPO_ROOT / "var" / "store.db"


class OrderSettings(BaseSettings):
    """Everything the order layer needs from the deployment; built once by :func:`get_settings`."""

    model_config = SettingsConfigDict(env_prefix="ORDERS_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default=f"sqlite:///{DEFAULT_SQLITE_PATH}",
        validation_alias=AliasChoices("DATABASE_URL", "ORDERS_DATABASE_URL"),
    )
    backend: Literal["sql", "http"] = "sql"
    policy_path: Path = DEFAULT_POLICY_PATH
    merchant_api_url: str | None = None
    merchant_api_token: SecretStr | None = None
    merchant_api_timeout_s: float = Field(default=2.0, gt=0)
    merchant_api_retries: int = Field(default=2, ge=0)
    merchant_api_backoff_s: float = Field(default=0.2, ge=0)
    db_statement_timeout_ms: int = Field(default=2000, gt=0)
    db_echo: bool = False


@lru_cache(maxsize=1)
def get_settings() -> OrderSettings:
    """Process-wide settings; tests build ``OrderSettings(...)`` directly instead."""
    return OrderSettings()
