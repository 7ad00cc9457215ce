"""Settings of the analytics record and dashboard (read from the environment, all optional).

| variable | default | meaning |
|---|---|---|
| ANALYTICS_DATABASE_URL | sqlite:///<repo>/var/analytics.db | SQLAlchemy URL of the event record |

(PostgreSQL: `postgresql+psycopg://user:pass@host/db`, any SQLAlchemy URL.)
| ANALYTICS_ENABLED | true | run the stream consumer in the gateway (the dashboard API works either way) |
| ANALYTICS_POLL_S | 1.0 | pause of the consumer when the streams had nothing new |
| ANALYTICS_SCAN_S | 10.0 | how often new conversation streams are looked for (SCAN) |
| ANALYTICS_CLAIM_IDLE_S | 60 | entries another consumer took and did not acknowledge this long are taken over |
| ANALYTICS_CONSUMER | <host>-<pid> | this process's consumer name in the `analytics` groups |
"""
from __future__ import annotations

import os
import socket

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.shared.paths import REPO_ROOT


def _default_consumer() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class AnalyticsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ANALYTICS_", extra="ignore")

    database_url: str = Field(default=f"sqlite:///{REPO_ROOT / 'var' / 'analytics.db'}")
    enabled: bool = True
    poll_s: float = 1.0
    scan_s: float = 10.0
    claim_idle_s: float = 60.0
    consumer: str = Field(default_factory=_default_consumer)
