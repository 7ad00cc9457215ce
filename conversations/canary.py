"""Which model answers a conversation while an editor's candidate release runs as a canary (the seeds' 灰度发布).

A canary is started from the workbench (workbench/releases.py ``start_canary``): the candidate model is loaded into
the canary Rasa worker (``RASA_CANARY_URL``, whose action server reads the candidate's knowledge index) and the
canary is written to ``conversations.keys.canary()``. Every gateway follows that key (``rasa_client.follow_rollout``)
and routes a share of the conversations that *start after* the canary started to the canary worker:

* the choice is a hash of the release and the conversation id, so it is sticky per conversation and the same on
  every gateway (no per-conversation state to share);
* conversations that started before the canary stay on the live workers for their whole life (no model change in
  the middle of a conversation);
* each bot message is stored with its arm (``<release>:canary`` or ``<release>:control``), which the managers'
  record keeps (analytics/consumer.py), so the workbench compares the two arms from the record (analytics/canary.py).

Pure functions here; the Redis key lives in conversations/keys.py.
"""
from __future__ import annotations

import json
import zlib
from dataclasses import asdict, dataclass
from typing import Any

BUCKETS = 10_000  # the share's resolution: 0.01 %
CANARY, CONTROL = "canary", "control"


@dataclass(frozen=True)
class Canary:
    """A running canary: the candidate release, the share of new conversations it gets, when it started."""

    release: int
    share: float  # 0 < share < 1
    started_at: float  # epoch seconds: conversations created before it are not in the experiment

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def parse(raw: Any) -> Canary | None:
    """The canary from the key's value; None when there is none or the value is unusable (then nothing is routed to
    the candidate: the safe side)."""
    if not raw:
        return None
    try:
        data = json.loads(raw)
        canary = Canary(int(data["release"]), float(data["share"]), float(data["started_at"]))
    except (ValueError, KeyError, TypeError):
        return None
    return canary if 0.0 < canary.share < 1.0 else None


def bucket(release: int, conversation_id: str) -> int:
    """A stable number in [0, BUCKETS) for this conversation in this canary (a new canary reshuffles)."""
    return zlib.crc32(f"{release}:{conversation_id}".encode()) % BUCKETS


def arm(canary: Canary | None, conversation_id: str, created_at: float | None) -> str | None:
    """``<release>:canary`` or ``<release>:control`` for a conversation that started while the canary runs; None
    for every other (no canary, or a conversation older than it, or one whose start is unknown)."""
    if canary is None or created_at is None or created_at < canary.started_at:
        return None
    side = CANARY if bucket(canary.release, conversation_id) < round(canary.share * BUCKETS) else CONTROL
    return f"{canary.release}:{side}"


def is_canary(arm_label: str | None) -> bool:
    return bool(arm_label) and str(arm_label).endswith(":" + CANARY)
