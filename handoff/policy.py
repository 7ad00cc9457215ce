"""Typed view of the parts of data/store_policy.yml the agent desk needs (hours, time zone, ticket promise, tiers).

The key names are those of the policy file (written for the order backend); the desk does not import actions/,
so this small loader reads the same file and fails loudly when a key it needs is missing.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class PolicyError(ValueError):
    """The policy file lacks a key the desk needs or has an unreadable value."""


def _hhmm(value: object, where: str) -> time:
    try:
        hours, minutes = str(value).split(":")
        return time(int(hours), int(minutes))
    except (ValueError, TypeError) as exc:
        raise PolicyError(f"{where}: expected HH:MM, got {value!r}") from exc


@dataclass(frozen=True)
class DeskPolicy:
    """Service hours of human agents and the promise made when nobody can answer now."""

    tz: ZoneInfo
    start: time
    end: time
    days: frozenset[int]  # 0 = Monday
    ticket_reply_by: time
    priority_tiers: frozenset[str]
    tiers: tuple

    @classmethod
    def load(cls, path: Path) -> DeskPolicy:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        try:
            hours = data["service_hours"]["human_agents"]
            tz = ZoneInfo(str(data["merchant"]["timezone"]))
            days = frozenset(DAY_NAMES.index(str(d).lower()[:3]) for d in hours["days"])
            reply_by = _hhmm(data["service_hours"]["off_hours_ticket_reply_by"], "off_hours_ticket_reply_by")
            membership = data.get("membership") or {}
        except (KeyError, TypeError) as exc:
            raise PolicyError(f"{path}: missing service_hours/merchant key {exc}") from exc
        return cls(
            tz=tz,
            start=_hhmm(hours["start"], "human_agents.start"),
            end=_hhmm(hours["end"], "human_agents.end"),
            days=days,
            ticket_reply_by=reply_by,
            priority_tiers=frozenset(membership.get("priority_tiers") or []),
            tiers=tuple(membership.get("tiers") or ("regular",)),
        )

    def in_service_hours(self, now: datetime) -> bool:
        local = now.astimezone(self.tz)
        return local.weekday() in self.days and self.start <= local.time() < self.end

    def next_opening(self, now: datetime) -> datetime:
        """The next moment agents start work (now's opening if we are before it today)."""
        local = now.astimezone(self.tz)
        for offset in range(0, 8):
            day = (local + timedelta(days=offset)).date()
            opening = datetime.combine(day, self.start, self.tz)
            if day.weekday() in self.days and opening > local:
                return opening
        raise PolicyError("no service day in the policy")

    def ticket_reply_by_time(self, now: datetime) -> datetime:
        """When a ticket opened now will be answered: the reply-by time of the first service day at or after the
        next opening (22:00 Monday -> Tuesday 10:00; 02:00 Monday -> Monday 10:00)."""
        opening = self.next_opening(now)
        candidate = datetime.combine(opening.date(), self.ticket_reply_by, self.tz)
        return candidate if candidate >= opening else opening

    def is_priority_tier(self, tier: str | None) -> bool:
        return bool(tier) and tier in self.priority_tiers
