"""Reason codes are defined once (bot/shared/reasons.py); the engine, the desk and the schema use that list."""
from __future__ import annotations

import json

from bot.shared import reasons
from bot.shared.frustration import escalation
from bot.shared.paths import REPO_ROOT


def test_engine_and_schema_use_the_one_list() -> None:
    assert escalation.REASON_CODES == reasons.BOT_REASONS
    assert set(reasons.SENSITIVE_REASONS) < set(reasons.BOT_REASONS)
    schema = json.loads((REPO_ROOT / "docs" / "handoff-context.schema.json").read_text(encoding="utf-8"))
    enum = schema["properties"]["escalation"]["properties"]["reason_code"]["enum"]
    assert tuple(enum) == reasons.ALL_REASONS
