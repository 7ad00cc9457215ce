"""Settings of the editors' workbench (read from the environment, all optional).

| variable | default | meaning |
|---|---|---|
| WORKBENCH_DATABASE_URL | sqlite:///<repo>/var/workbench.db | SQLAlchemy URL of the content versions |
| WORKBENCH_KB_DIR | <repo>/data/kb | the article files it imports and writes back (`kb_index build` reads them) |
| WORKBENCH_ACTION_URL | ACTION_ENDPOINT_URL minus `/webhook`, else http://127.0.0.1:5055 | the action server |
| WORKBENCH_ACTION_TOKEN | ACTION_SERVER_TOKEN | the action server's shared secret (sent as X-Action-Token) |
| WORKBENCH_TRY_TIMEOUT_S | 10 | how long "try a question" (and the inbox's /kb/embed) waits for the action server |
| WORKBENCH_NLU_DIR | <repo>/data/nlu | the NLU training files the inbox adds examples to (`<language>.yml`) |
| WORKBENCH_HELDOUT_DIR | <repo>/tests/nlu | held-out evaluation files (`heldout_*.yml`): near duplicates refused |
| WORKBENCH_INBOX_ENABLED | true | run the inbox's stream consumer in the gateway (the inbox API works either way) |
| WORKBENCH_INBOX_GROUP_SIMILARITY | 0.88 | cosine (KB encoder's vectors) at which two inbox messages are one group |
| WORKBENCH_INBOX_MAX_ITEMS | 2000 | how many of the newest inbox messages are grouped per request |
| WORKBENCH_INBOX_POLL_S | 1.0 | pause of the inbox consumer when the streams had nothing new |
| WORKBENCH_INBOX_CONSUMER | <host>-<pid> | this process's consumer name in the `workbench-inbox` groups |
| WORKBENCH_INBOX_RETENTION_S | 7776000 | inbox messages older than this (90 days) are deleted, whatever their status |

(PostgreSQL: `postgresql+psycopg://user:pass@host/db`, any SQLAlchemy URL. "Try a question" asks the action server's
`POST /kb/decide`, which answers with the bot's own decision function on the index it serves.)
"""
from __future__ import annotations

import os
import socket
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.shared.paths import REPO_ROOT


class WorkbenchSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WORKBENCH_", extra="ignore", populate_by_name=True)

    database_url: str = Field(default=f"sqlite:///{REPO_ROOT / 'var' / 'workbench.db'}")
    kb_dir: Path = REPO_ROOT / "data" / "kb"
    action_url: str = ""
    action_token: SecretStr = Field(default=SecretStr(""),
                                    validation_alias=AliasChoices("WORKBENCH_ACTION_TOKEN", "ACTION_SERVER_TOKEN"))
    try_timeout_s: float = 10.0
    nlu_dir: Path = REPO_ROOT / "data" / "nlu"
    heldout_dir: Path = REPO_ROOT / "tests" / "nlu"
    inbox_enabled: bool = True
    inbox_group_similarity: float = Field(default=0.88, ge=0.0, le=1.0)
    inbox_max_items: int = Field(default=2000, ge=10, le=50_000)
    inbox_poll_s: float = 1.0
    inbox_consumer: str = Field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    inbox_retention_s: int = Field(default=7_776_000, ge=86_400)

    @property
    def nlu_path(self) -> Path:
        return self.nlu_dir if self.nlu_dir.is_absolute() else REPO_ROOT / self.nlu_dir

    @property
    def heldout_path(self) -> Path:
        return self.heldout_dir if self.heldout_dir.is_absolute() else REPO_ROOT / self.heldout_dir

    @property
    def kb_path(self) -> Path:
        return self.kb_dir if self.kb_dir.is_absolute() else REPO_ROOT / self.kb_dir

    @property
    def action_base_url(self) -> str:
        if self.action_url:
            return self.action_url.rstrip("/")
        endpoint = os.environ.get("ACTION_ENDPOINT_URL", "")
        if endpoint:
            return endpoint.rstrip("/").removesuffix("/webhook")
        return "http://127.0.0.1:5055"
