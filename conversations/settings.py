"""Settings of the gateway service (web chat API + agent desk). One class, read from the environment."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.shared.paths import REPO_ROOT

ROOT = REPO_ROOT


class GatewaySettings(BaseSettings):
    """Environment variables (all optional; defaults fit `make run` on one machine).

    | variable | default | meaning |
    |---|---|---|
    | REDIS_URL | redis://127.0.0.1:6379/0 | Redis: conversations, message streams, ownership, queue, agents |
    | RASA_URL | http://127.0.0.1:5005 | Rasa server (REST channel + HTTP API); several workers comma-separated |
    | RASA_TOKEN | (empty) | token for Rasa's HTTP API (`rasa run --auth-token`) |
    | RASA_TIMEOUT_S | 20 | seconds to wait for the bot's answer |
    | RASA_CONNECT_TIMEOUT_S | 2 | a Rasa worker that does not accept the connection this fast counts as down |
    | RASA_WORKER_DOWN_S | 5 | a worker that refused or dropped a request is skipped this long, then probed again |
    | RASA_CANARY_URL | (empty: none) | a Rasa worker outside the rotation for the workbench's canary |
    | WEB_MAX_MESSAGE_CHARS | 10000 | longer customer messages are rejected with 413 |
    | WEB_NLU_CHARS | 2000 | how much of a message the bot reads (the rest is kept for agents) |
    | WEB_CONVERSATION_TTL_S | 2592000 | conversations expire 30 days after the last message |
    | WEB_RATE_LIMIT_MESSAGES | 5 | customer messages per conversation and window that are answered (more: stored) |
    | WEB_RATE_LIMIT_WINDOW_S | 2 | length of that window in seconds |
    | WEB_MAX_BODY_BYTES | 65536 | larger request bodies get 413 before they are read (any route) |
    | WEB_TRUSTED_PROXIES | (empty) | comma-separated proxy addresses/networks whose X-Forwarded-For is believed |
    | WEB_CLIENT_SALT | (HANDOFF_INTERNAL_TOKEN) | key of the hash that replaces client addresses |
    | WEB_LIMIT_NEW_CONVERSATIONS | 20/minute;200/day | new conversations per client address |
    | WEB_LIMIT_NEW_CONVERSATIONS_DEVICE | 10/minute;100/day | new conversations per browser (device cookie) |
    | WEB_LIMIT_MESSAGES | 60/minute;2000/day | messages per client address (empty, CSAT, buttons count) |
    | WEB_LIMIT_HANDOFFS | 3/minute;20/day | handoffs per client address (over it: asked to wait) |
    | WEB_LIMIT_UPLOADS | 10/minute;60/day | photos a web chat customer uploads, per client address and per browser |
    | WEB_MAX_UPLOAD_BYTES | 5242880 | largest photo a web chat customer may upload (JPEG, PNG, WebP) |
    | WEB_BUTTON_FRESH_S | 3600 | a button's payload is accepted as a command this long after the bot showed it |
    | WEB_COOKIE_SECURE | false | mark the browser cookie Secure (set it when the site is served over HTTPS) |
    | WEB_DOCS_ENABLED | false | serve the OpenAPI docs (/docs, /openapi.json) |
    | WEB_SSE_BLOCK_MS | 10000 | how long one XREAD BLOCK of a Server-Sent Events stream waits before a keep-alive |
    | HANDOFF_INTERNAL_TOKEN | (empty = API off) | shared secret the action server sends as X-Internal-Token |
    | HANDOFF_WEBHOOK_URL | (empty = off) | external helpdesk URL that receives every context package (POST JSON) |
    | HANDOFF_WEBHOOK_ATTEMPTS | 5 | delivery attempts per package before it is parked as failed |
    | HANDOFF_WEBHOOK_BACKOFF_S | 1.0 | first retry delay; doubles per attempt |
    | HANDOFF_WEBHOOK_TIMEOUT_S | 5.0 | timeout of one webhook request |
    | HANDOFF_WEBHOOK_SECRET | (required with a URL) | key (>= 16 chars) of the webhook's HMAC signature |
    | HANDOFF_RETENTION_S | 2592000 | closed/handed-back handoffs, their tickets, alerts, customer index expire |
    | HANDOFF_AUDIT_RETENTION_S | 15552000 | audit entries older than this (180 days) are trimmed |
    | HANDOFF_AUDIT_MAXLEN | 100000 | the audit stream keeps at most about this many entries |
    | HANDOFF_DESK_EVENTS_MAXLEN | 10000 | the live desk-event stream keeps at most about this many entries |
    | HANDOFF_UNDELIVERED_ATTEMPTS | 8 | re-sends of a handoff the action server could not deliver, then alert |
    | HANDOFF_UNDELIVERED_BACKOFF_S | 2.0 | first re-send delay of such a handoff; doubles per attempt |
    | HANDOFF_SLA_PICKUP_S | 60 | a handoff not claimed this many seconds after queuing (service hours): alert |
    | HANDOFF_SLA_CHECK_INTERVAL_S | 5 | how often the SLA checker runs |
    | HANDOFF_AGENT_MAX_CONCURRENT | 3 | conversations one agent may own at once (per-account override possible) |
    | HANDOFF_SESSION_TTL_S | 28800 | agent login sessions expire after this many seconds of inactivity |
    | HANDOFF_LOGIN_MAX_FAILURES | 5 | failed agent logins on one account (from anywhere) that lock it |
    | HANDOFF_LOGIN_IP_MAX_FAILURES | 20 | failed agent logins from one client address (any accounts) that lock it |
    | HANDOFF_LOGIN_WINDOW_S | 900 | the moving window those failures are counted in |
    | HANDOFF_LOGIN_LOCK_S | 900 | a locked account / address gets 429 + Retry-After this long, password unchecked |
    | HANDOFF_LOGIN_HASH_WORKERS | 2 | password hashes computed at once, in threads off the event loop (16 MB each) |
    | HANDOFF_ALLOWED_ORIGINS | (empty) | other origins (comma-separated) allowed to POST to /api/agent |
    | HANDOFF_LIMIT_DESK_WRITES | 120/minute;3000/day | macros, typing signals, workbench saves and tries per account |
    | HANDOFF_ORDERS_URL | (ACTION_ENDPOINT_URL minus /webhook) | action server for the console's orders |
    | ACTION_SERVER_TOKEN | (empty = order tools off) | the action server's shared secret, sent as X-Action-Token |
    | HANDOFF_ORDERS_TIMEOUT_S | 8 | how long the console's order look-ups and actions wait for the action server |
    | HANDOFF_LIMIT_ORDER_ACTIONS | 30/minute;300/day | coupons, returns, reships, address changes per account |
    | HANDOFF_LIMIT_ORDER_LOOKUPS | 120/minute;3000/day | live order look-ups (context panel) per account |
    | HANDOFF_LIMIT_SEARCHES | 30/minute;600/day | searches of past conversations and of the case library per account |
    | HANDOFF_LIMIT_REPORT_READS | 240/minute;5000/day | dashboard tables and exports, workbench lists per account |
    | HANDOFF_SEARCH_SCAN | 5000 | newest past conversations a text search reads (order/customer: all) |
    | HANDOFF_PRESENCE_TTL_S | 90 | an agent counts as online this long after their last request / live connection |
    | HANDOFF_EARLIER_CONVERSATIONS | 10 | how many earlier conversations of the same customer go into the context |
    | HANDOFF_EARLIER_MESSAGES | 20 | newest messages (masked) of each earlier conversation shown in the context |
    | CUSTOMER_LINK_TTL_S | 2592000 | a verified channel identity (chat, number, OpenID, browser) stays linked so long |
    | HANDOFF_POLICY_PATH | data/store_policy.yml | policy: service hours, time zone, ticket reply time, tiers |
    | HANDOFF_KB_DIR | data/kb | knowledge-base articles used as canned answers |
    | HANDOFF_CLOCK | (empty = real time) | ISO datetime with offset: the desk's clock starts there (tests, demos) |
    | METRICS_TOKEN | (empty = /metrics off, 404) | bearer token a Prometheus scraper sends to /metrics (>= 16 chars) |
    | METRICS_LIMIT | 120/minute | calls to /metrics per client address (right or wrong token) |
    | HANDOFF_ADMIN_PASSWORD | (prompted) | password for `python -m handoff.admin create-supervisor` when not typed in |
    """

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    redis_url: str = "redis://127.0.0.1:6379/0"
    rasa_url: str = "http://127.0.0.1:5005"
    rasa_token: str = ""
    rasa_timeout_s: float = 20.0
    rasa_connect_timeout_s: float = Field(default=2.0, gt=0)
    rasa_worker_down_s: float = Field(default=5.0, ge=0)
    rasa_canary_url: str = ""
    web_max_message_chars: int = Field(default=10_000, ge=100)
    web_nlu_chars: int = Field(default=2_000, ge=50)
    web_conversation_ttl_s: int = Field(default=30 * 24 * 3600, ge=60)
    web_rate_limit_messages: int = Field(default=5, ge=1)
    web_rate_limit_window_s: int = Field(default=2, ge=1)
    web_max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    web_trusted_proxies: str = ""
    web_client_salt: str = ""
    web_limit_new_conversations: str = "20/minute;200/day"
    web_limit_new_conversations_device: str = "10/minute;100/day"
    web_limit_messages: str = "60/minute;2000/day"
    web_limit_handoffs: str = "3/minute;20/day"
    web_limit_uploads: str = "10/minute;60/day"
    web_max_upload_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    web_button_fresh_s: int = Field(default=3600, ge=1)
    web_cookie_secure: bool = False
    web_docs_enabled: bool = False
    web_sse_block_ms: int = Field(default=10_000, ge=100)
    handoff_internal_token: str = ""
    handoff_webhook_url: str = ""
    handoff_webhook_attempts: int = Field(default=5, ge=1)
    handoff_webhook_backoff_s: float = Field(default=1.0, ge=0)
    handoff_webhook_timeout_s: float = Field(default=5.0, gt=0)
    handoff_webhook_secret: str = ""
    handoff_retention_s: int = Field(default=30 * 24 * 3600, ge=60)
    handoff_audit_retention_s: int = Field(default=180 * 24 * 3600, ge=3600)
    handoff_audit_maxlen: int = Field(default=100_000, ge=100)
    handoff_desk_events_maxlen: int = Field(default=10_000, ge=100)
    handoff_undelivered_attempts: int = Field(default=8, ge=1)
    handoff_undelivered_backoff_s: float = Field(default=2.0, ge=0)
    handoff_sla_pickup_s: int = Field(default=60, ge=1)
    handoff_sla_check_interval_s: float = Field(default=5.0, gt=0)
    handoff_agent_max_concurrent: int = Field(default=3, ge=1)
    handoff_session_ttl_s: int = Field(default=8 * 3600, ge=1)
    handoff_login_max_failures: int = Field(default=5, ge=1)
    handoff_login_ip_max_failures: int = Field(default=20, ge=1)
    handoff_login_window_s: int = Field(default=900, ge=1)
    handoff_login_lock_s: int = Field(default=900, ge=1)
    handoff_login_hash_workers: int = Field(default=2, ge=1)
    handoff_allowed_origins: str = ""
    handoff_limit_desk_writes: str = "120/minute;3000/day"
    handoff_orders_url: str = ""
    action_server_token: str = ""
    handoff_orders_timeout_s: float = Field(default=8.0, gt=0)
    handoff_limit_order_actions: str = "30/minute;300/day"
    handoff_limit_order_lookups: str = "120/minute;3000/day"
    handoff_limit_searches: str = "30/minute;600/day"
    handoff_limit_report_reads: str = "240/minute;5000/day"
    handoff_search_scan: int = Field(default=5000, ge=100)
    handoff_presence_ttl_s: int = Field(default=90, ge=5)
    handoff_earlier_conversations: int = Field(default=10, ge=0)
    handoff_earlier_messages: int = Field(default=20, ge=0, le=200)
    customer_link_ttl_s: int = Field(default=30 * 24 * 3600, ge=60)
    handoff_policy_path: Path = ROOT / "data" / "store_policy.yml"
    handoff_kb_dir: Path = ROOT / "data" / "kb"
    handoff_clock: str | None = None
    metrics_token: SecretStr = SecretStr("")
    metrics_limit: str = "120/minute"


    @property
    def client_salt(self) -> str:
        return self.web_client_salt or self.handoff_internal_token or "csbot"

    @property
    def trusted_proxies(self) -> list[str]:
        return [p.strip() for p in self.web_trusted_proxies.split(",") if p.strip()]

    @property
    def allowed_origins(self) -> list[str]:
        return [o.strip().rstrip("/").lower() for o in self.handoff_allowed_origins.split(",") if o.strip()]

    @property
    def orders_base_url(self) -> str:
        """The action server's base URL for the desk's order tools."""
        import os

        if self.handoff_orders_url:
            return self.handoff_orders_url.rstrip("/")
        endpoint = os.environ.get("ACTION_ENDPOINT_URL", "")
        return endpoint.rstrip("/").removesuffix("/webhook") if endpoint else "http://127.0.0.1:5055"

    def client_limits(self) -> dict[str, str]:
        """The per-client limits by name (conversations/protect.py: Throttle)."""
        return {"new_conversation": self.web_limit_new_conversations,
                "new_conversation_device": self.web_limit_new_conversations_device,
                "message": self.web_limit_messages, "handoff": self.web_limit_handoffs,
                "upload": self.web_limit_uploads, "desk_write": self.handoff_limit_desk_writes,
                "order_action": self.handoff_limit_order_actions, "order_lookup": self.handoff_limit_order_lookups,
                "search": self.handoff_limit_searches, "report_read": self.handoff_limit_report_reads,
                "metrics": self.metrics_limit}

    @field_validator("metrics_token")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if value.get_secret_value() and len(value.get_secret_value()) < 16:
            raise ValueError("METRICS_TOKEN must be at least 16 characters (or empty: /metrics off)")
        return value


@lru_cache
def get_settings() -> GatewaySettings:
    return GatewaySettings()
