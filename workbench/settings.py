"""Settings of the editors' workbench (read from the environment, all optional).

| variable | default | meaning |
|---|---|---|
| WORKBENCH_DATABASE_URL | sqlite:///<repo>/var/workbench.db | SQLAlchemy URL of the content versions |
| WORKBENCH_KB_DIR | <repo>/data/kb | the article files it imports and writes back (`kb_index build` reads them) |
| WORKBENCH_ACTION_URL | ACTION_ENDPOINT_URL minus `/webhook`, else http://127.0.0.1:5055 | the action server |
| WORKBENCH_ACTION_TOKEN | ACTION_SERVER_TOKEN | the action server's shared secret (sent as X-Action-Token) |
| WORKBENCH_TRY_TIMEOUT_S | 10 | how long "try a question" waits for the action server |

(PostgreSQL: `postgresql+psycopg://user:pass@host/db`, any SQLAlchemy URL. "Try a question" asks the action server's
`POST /kb/decide`, which answers with the bot's own decision function on the index it serves.)
"""
from __future__ import annotations

import os
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
