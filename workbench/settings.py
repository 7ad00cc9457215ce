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
| WORKBENCH_RELEASES_DIR | <repo>/var/releases | a folder per release (model, index, content, log) + the `live` link |
| WORKBENCH_RASA_PYTHON | <repo>/.venv-rasa/bin/python | the Rasa environment (`rasa train`, `bot.nlu_eval`) |
| WORKBENCH_APP_PYTHON | this interpreter | the application environment (`kb_index build` / `check`) |
| WORKBENCH_RASA_CACHE_DIR | <repo>/.rasa/cache | Rasa's training cache, shared with `make setup` |
| WORKBENCH_GATE_STORIES_DIR | <repo>/tests/stories | the conversation tests the gate runs (`rasa test core`) |
| WORKBENCH_GATE_KB_DEVSET | <repo>/tests/kb_index/devset.yml | retrieval questions the gate measures on |
| WORKBENCH_GATE_TOLERANCE | 0.01 | what a candidate may lose against the live release (absolute) |
| WORKBENCH_TRAIN_TIMEOUT_S | 3600 | a training stage running longer is stopped (the release fails) |
| WORKBENCH_MODEL_LOAD_TIMEOUT_S | 120 | how long a Rasa worker may take to load a deployed model |
| WORKBENCH_KEEP_RELEASES | 5 | finished releases whose files are kept besides the live one (older: no rollback) |
| WORKBENCH_CANARY_SHARE | 0.10 | share of new conversations a canary gets unless the editor chooses (0.01-0.5) |
| WORKBENCH_CANARY_KB_DIR | <releases>/canary-kb | the canary action server's `KB_INDEX_DIR` (a canary writes it) |
| WORKBENCH_CANARY_GUARD_Z | 3.0 | a canary this many standard errors worse on a measure is stopped (0: no guard) |
| WORKBENCH_CANARY_GUARD_S | 60 | how often every gateway's guard looks at the running canary |

The live index is the action servers' `KB_INDEX_DIR` (kb_index/settings.py); the Rasa workers are `RASA_URL` with
`RASA_TOKEN` (conversations/settings.py), the canary worker `RASA_CANARY_URL` (no canary without it). A deploy
writes both, so the gateway, the action servers and the Rasa
workers must share the releases folder and the index folder (one host, or a shared volume).

(PostgreSQL: `postgresql+psycopg://user:pass@host/db`, any SQLAlchemy URL. "Try a question" asks the action server's
`POST /kb/decide`, which answers with the bot's own decision function on the index it serves.)
"""
from __future__ import annotations

import os
import socket
import sys
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
    releases_dir: Path = REPO_ROOT / "var" / "releases"
    rasa_python: Path = REPO_ROOT / ".venv-rasa" / "bin" / "python"
    app_python: str = Field(default_factory=lambda: sys.executable)
    rasa_cache_dir: Path = REPO_ROOT / ".rasa" / "cache"
    gate_kb_devset: Path = REPO_ROOT / "tests" / "kb_index" / "devset.yml"
    gate_stories_dir: Path = REPO_ROOT / "tests" / "stories"
    gate_tolerance: float = Field(default=0.01, ge=0.0, le=1.0)
    train_timeout_s: int = Field(default=3600, ge=10)
    model_load_timeout_s: float = Field(default=120.0, ge=1.0)
    keep_releases: int = Field(default=5, ge=1, le=100)
    canary_share: float = Field(default=0.10, ge=0.01, le=0.5)
    canary_kb_dir: Path | None = None
    canary_guard_z: float = Field(default=3.0, ge=0.0)
    canary_guard_s: float = Field(default=60.0, gt=0.0)

    @property
    def canary_kb_path(self) -> Path:
        return _absolute(self.canary_kb_dir) if self.canary_kb_dir else self.releases_path / "canary-kb"

    @property
    def releases_path(self) -> Path:
        return _absolute(self.releases_dir).resolve()  # compared with resolved links

    @property
    def rasa_python_path(self) -> Path:
        return _absolute(self.rasa_python)

    @property
    def rasa_cache_path(self) -> Path:
        return _absolute(self.rasa_cache_dir)

    @property
    def gate_stories_path(self) -> Path:
        return _absolute(self.gate_stories_dir)

    @property
    def gate_kb_devset_path(self) -> Path:
        return _absolute(self.gate_kb_devset)

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


def _absolute(path: Path) -> Path:
    """A setting's path, relative ones taken from the repository root."""
    return path if path.is_absolute() else REPO_ROOT / path
