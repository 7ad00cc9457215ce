"""Redis key names: one module per namespace, one function per key, no key spelled anywhere else."""
from __future__ import annotations

import re

from bot.shared.frustration import keys as complaint_keys
from bot.shared.paths import REPO_ROOT
from bot.shared.redis_keys import PREFIX

KEY_MODULES = {"conversations/keys.py", "bot/shared/frustration/keys.py", "actions/keys.py", "bot/shared/redis_keys.py"}
CODE_DIRS = ("actions", "bot", "channels", "conversations", "handoff", "kb_index", "tools", "scripts")
KEY_LITERAL = re.compile(r"""["']csbot:|\{PREFIX\}:""")


def test_no_key_is_spelled_outside_the_key_modules() -> None:
    offenders = []
    for folder in CODE_DIRS:
        for path in sorted((REPO_ROOT / folder).rglob("*.py")):
            rel = path.relative_to(REPO_ROOT).as_posix()
            if rel in KEY_MODULES:
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if KEY_LITERAL.search(line):
                    offenders.append(f"{rel}:{number}: {line.strip()}")
    assert offenders == []


def test_complaint_keys_keep_their_stored_layout() -> None:
    assert PREFIX == "csbot"
    assert complaint_keys.repeat_flags() == complaint_keys.REPEAT_FLAGS_STREAM == "csbot:complaints:repeat_flags"
    assert complaint_keys.incident_alerts() == complaint_keys.INCIDENT_ALERTS_STREAM == "csbot:incidents:alerts"
    assert complaint_keys.repeat_complaints("c:1", "DM1") == "csbot:complaints:repeat:c%3A1:DM1"
