"""The desk's notion of "now": real time, or real time shifted to a chosen moment so tests and demos can be
outside service hours or minutes later (SLA) without waiting. Time keeps running after a shift, so waiting
times and queue order stay real."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone


class Clock:
    """Wall clock plus an offset; service-hour, SLA and queue timestamps all read it."""

    def __init__(self, offset_s: float = 0.0) -> None:
        self.offset_s = offset_s

    @classmethod
    def from_setting(cls, value: str | None) -> Clock:
        clock = cls()
        if value:
            parsed = datetime.fromisoformat(value)
            if parsed.tzinfo is None:
                raise ValueError("HANDOFF_CLOCK needs a UTC offset, e.g. 2026-11-23T22:00:00+08:00")
            clock.set(parsed)
        return clock

    def set(self, moment: datetime) -> None:
        """From now on, "now" is ``moment`` (and keeps running)."""
        self.offset_s = moment.timestamp() - time.time()

    def advance(self, seconds: float) -> None:
        self.offset_s += seconds

    def timestamp(self) -> float:
        return time.time() + self.offset_s

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp(), timezone.utc) + timedelta(0)
