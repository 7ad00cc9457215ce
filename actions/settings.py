"""The action server's settings: one pydantic-settings class for the whole process, read from the environment
(and a ``.env`` file in the working directory), built once by :func:`get_settings`.

Every field names its environment variable (``validation_alias``) and says what it is for (``description``); the
names are the ones the launcher, the README and the docs use. Fields can also be given by name in code
(``ActionServerSettings(backend="http")``), which tests do. The gateway and the desk have their own class
(:mod:`conversations.settings`), the knowledge-base index its own (:mod:`kb_index.settings`, ``KB_*``).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.shared.identifier_formats import POLICY_PATH
from bot.shared.paths import REPO_ROOT

if TYPE_CHECKING:
    from actions.verification_store import Limits

DEFAULT_SQLITE_PATH = REPO_ROOT / "var" / "store.db"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class ActionServerSettings(BaseSettings):
    """Environment variables of the action server (``python -m actions.server``)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    # ------------------------------------------------------------------ the process
    action_server_host: str = Field(
        default="127.0.0.1", validation_alias=_env("ACTION_SERVER_HOST"),
        description="Interface to bind; loopback, so only Rasa on this host calls it.")
    action_server_port: int = Field(
        default=5055, ge=1, le=65535, validation_alias=_env("ACTION_SERVER_PORT"), description="Port to listen on.")
    action_server_token: SecretStr = Field(
        default=SecretStr(""), validation_alias=_env("ACTION_SERVER_TOKEN"),
        description="Secret Rasa sends as X-Action-Token (endpoints.yml); empty: every action call is refused.")
    metrics_token: SecretStr = Field(
        default=SecretStr(""), validation_alias=_env("METRICS_TOKEN"),
        description="Bearer token of GET /metrics (Prometheus; same as the gateway's); empty: /metrics answers 404.")
    redis_url: str = Field(
        default=DEFAULT_REDIS_URL, validation_alias=_env("REDIS_URL"),
        description="Redis of the project: verification records and failure windows, complaint tracking, "
                    "undelivered handoffs, knowledge-base feedback (recorded only when REDIS_URL is set).")
    kb_records_retention_s: int = Field(
        default=2_592_000, ge=3600, validation_alias=_env("KB_RECORDS_RETENTION_S"),
        description="Age after which the editors' records of customers' words (did-this-help answers, unanswered "
                    "questions, did-you-mean picks, NLU fallbacks) are trimmed from their Redis streams (30 days).")

    # ------------------------------------------------------------------ orders (actions/orders)
    database_url: str = Field(
        default=f"sqlite:///{DEFAULT_SQLITE_PATH}", validation_alias=_env("DATABASE_URL", "ORDERS_DATABASE_URL"),
        description="SQLAlchemy URL of the order database (backend sql); default the SQLite file var/store.db.")
    backend: Literal["sql", "http"] = Field(
        default="sql", validation_alias=_env("ORDERS_BACKEND"),
        description='Order backend: "sql" (own database) or "http" (the merchant REST API, docs/MERCHANT_API.md).')
    policy_path: Path = Field(
        default=POLICY_PATH, validation_alias=_env("ORDERS_POLICY_PATH"),
        description="The store policy YAML (order rules, windows, identifier formats); default data/store_policy.yml.")
    merchant_api_url: str | None = Field(
        default=None, validation_alias=_env("ORDERS_MERCHANT_API_URL"),
        description="Base URL of the merchant API (backend http).")
    merchant_api_token: SecretStr | None = Field(
        default=None, validation_alias=_env("ORDERS_MERCHANT_API_TOKEN"),
        description="Bearer token for the merchant API (never logged).")
    merchant_api_timeout_s: float = Field(
        default=2.0, gt=0, validation_alias=_env("ORDERS_MERCHANT_API_TIMEOUT_S"),
        description="Timeout of one merchant API request, seconds.")
    merchant_api_retries: int = Field(
        default=2, ge=0, validation_alias=_env("ORDERS_MERCHANT_API_RETRIES"),
        description="Extra attempts after a connection error or a 5xx from the merchant API.")
    merchant_api_backoff_s: float = Field(
        default=0.2, ge=0, validation_alias=_env("ORDERS_MERCHANT_API_BACKOFF_S"),
        description="First wait before a merchant API retry, doubled for each further one, seconds.")
    db_statement_timeout_ms: int = Field(
        default=2000, gt=0, validation_alias=_env("ORDERS_DB_STATEMENT_TIMEOUT_MS"),
        description="PostgreSQL statement timeout (and connect timeout, rounded to seconds), milliseconds.")
    db_echo: bool = Field(
        default=False, validation_alias=_env("ORDERS_DB_ECHO"), description="Log every SQL statement (debugging).")

    # ------------------------------------------------------------------ verification (actions/verification.py)
    customer_token_secret: SecretStr | None = Field(
        default=None, validation_alias=_env("CUSTOMER_TOKEN_SECRET"),
        description="Secret shared with the website to sign customer tokens (actions/customer_token.py); "
                    "unset: tokens are ignored.")
    max_attempts: int = Field(
        default=3, gt=0, validation_alias=_env("VERIFICATION_MAX_ATTEMPTS"),
        description="Wrong phone-digit answers per order number within VERIFICATION_LOCK_MINUTES before it locks.")
    lock_minutes: int = Field(
        default=15, gt=0, validation_alias=_env("VERIFICATION_LOCK_MINUTES"),
        description="Window (and lock) of VERIFICATION_MAX_ATTEMPTS, minutes.")
    backend_timeout_s: float = Field(
        default=2.0, gt=0, validation_alias=_env("ORDER_LOOKUP_TIMEOUT_S"),
        description="Longest the bot waits for the order backend before apologising, seconds.")
    idle_minutes: int = Field(
        default=30, gt=0, validation_alias=_env("VERIFICATION_IDLE_MINUTES"),
        description="A verified order stays open this long without use (a shared computer must not keep it).")
    order_daily_limit: int = Field(
        default=10, gt=0, validation_alias=_env("VERIFICATION_ORDER_DAILY_LIMIT"),
        description="Wrong answers per order number per day, on top of VERIFICATION_MAX_ATTEMPTS.")
    client_limit: str = Field(
        default="10/hour;30/day", validation_alias=_env("VERIFICATION_CLIENT_LIMIT"),
        description="Wrong answers per client (the gateway's pseudonym of the address), whichever orders they try; "
                    "limits-package syntax.")

    # ------------------------------------------------------------------ handoff client (actions/handoff.py)
    handoff_url: str = Field(
        default="http://127.0.0.1:8000", validation_alias=_env("HANDOFF_URL"),
        description="The gateway/desk that takes handoff requests.")
    handoff_internal_token: str = Field(
        default="", validation_alias=_env("HANDOFF_INTERNAL_TOKEN"),
        description="Shared secret for the desk's /internal endpoints.")
    handoff_timeout_s: float = Field(
        default=3.0, validation_alias=_env("HANDOFF_TIMEOUT_S"),
        description="How long to wait for the desk (and for Redis when keeping an undelivered handoff), seconds.")
    handoff_undelivered_maxlen: int = Field(
        default=10_000, validation_alias=_env("HANDOFF_UNDELIVERED_MAXLEN"),
        description="Cap (approximate) of the stream of handoffs kept for re-sending.")

    def store_limits(self) -> Limits:
        """Failure windows of the verification store (per order number, per client)."""
        from actions.verification_store import Limits

        return Limits(order=f"{self.max_attempts}/{self.lock_minutes} minutes;{self.order_daily_limit}/day",
                      client=self.client_limit)

    def redis_url_if_set(self) -> str | None:
        """REDIS_URL when the environment (or .env) gives it, else None (knowledge-base feedback is then off)."""
        return self.redis_url if "redis_url" in self.model_fields_set else None


@lru_cache(maxsize=1)
def get_settings() -> ActionServerSettings:
    """Process-wide settings; tests build ``ActionServerSettings(...)`` or clear this cache after changing the
    environment."""
    return ActionServerSettings()
