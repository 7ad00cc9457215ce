"""Repeat and group complaint detection over Redis.

The service plan names two special cases: a customer complaining again and again about the same order (flag it,
so an agent looks at the whole history instead of answering one more ticket), and many customers hitting the
same problem at once - a carrier hub, a product, a production batch - which is an incident for supervisors, not
a hundred separate tickets. Both are sliding windows in sorted sets; the alert itself is a stream entry (must not
be lost) written by a Lua script together with its one-per-window claim, so concurrent reports raise it once.
"""
from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.shared.frustration import keys

PROBLEM_KINDS = ("carrier_hub", "product", "batch")

# KEYS[1] = claim key, KEYS[2] = stream; ARGV[1] = claim value, ARGV[2] = claim TTL seconds,
# ARGV[3] = stream max length (approximate), ARGV[4..] = field/value pairs.
_CLAIM_AND_PUBLISH = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then
  local fields = {}
  for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
  return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', unpack(fields))
end
return false
"""


class ComplaintStoreError(RuntimeError):
    """Redis answered something the complaint store cannot interpret."""


@dataclass(frozen=True)
class ComplaintConfig:
    """``complaints:`` of data/escalation.yml."""

    repeat_threshold: int = 3
    repeat_window_seconds: int = 7 * 24 * 3600
    group_threshold: int = 5
    group_window_seconds: int = 3600
    alert_stream_maxlen: int = 10000

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ComplaintConfig:
        config = cls(**{k: int(v) for k, v in raw.items()})
        if min(config.repeat_threshold, config.group_threshold) < 2:
            raise ValueError("repeat and group thresholds must be at least 2")
        if min(config.repeat_window_seconds, config.group_window_seconds, config.alert_stream_maxlen) < 1:
            raise ValueError("windows and stream length must be positive")
        return config


@dataclass(frozen=True)
class ProblemKey:
    """What several customers can report at once: a carrier hub, a product (SKU) or a production batch."""

    kind: str
    value: str

    def __post_init__(self) -> None:
        if self.kind not in PROBLEM_KINDS:
            raise ValueError(f"problem kind must be one of {PROBLEM_KINDS}, got {self.kind!r}")
        if not self.value.strip():
            raise ValueError("problem value must not be empty")

    @property
    def normalized_value(self) -> str:
        """Case and spacing do not make a different problem ("ZTO Hangzhou Hub" == "zto  hangzhou hub")."""
        return " ".join(self.value.lower().split())


@dataclass(frozen=True)
class RepeatComplaintResult:
    count: int  # complaints of this customer about this order within the window, including this one
    flagged: bool  # count >= threshold
    newly_flagged: bool  # this complaint crossed the threshold (a supervisor-stream entry was written)


@dataclass(frozen=True)
class GroupIncidentResult:
    distinct_customers: int  # customers who reported this problem within the window
    alert_id: str | None  # stream id of the alert raised by this report, None otherwise
    alert_active: bool  # an alert for this problem exists in the current window (raised now or earlier)


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


class ComplaintTracker:
    """Records complaints and problem reports; the Redis client is passed in (built by the caller's factory)."""

    def __init__(self, redis: Any, config: ComplaintConfig, clock: Callable[[], float] = time.time) -> None:
        self._redis = redis
        self._config = config
        self._clock = clock
        self._claim_and_publish = redis.register_script(_CLAIM_AND_PUBLISH)

    def record_complaint(
        self, customer_id: str, order_number: str, *, complaint_id: str | None = None
    ) -> RepeatComplaintResult:
        """Count this complaint; flag the customer + order at ``repeat_threshold`` complaints in the window."""
        if not customer_id.strip() or not order_number.strip():
            raise ValueError("customer_id and order_number are required")
        now = self._clock()
        window = self._config.repeat_window_seconds
        key = keys.repeat_complaints(customer_id, order_number)
        member = complaint_id or f"{now:.6f}:{uuid.uuid4().hex}"
        pipe = self._redis.pipeline(transaction=True)
        pipe.zremrangebyscore(key, "-inf", f"({now - window}")
        pipe.zadd(key, {member: now})
        pipe.zcard(key)
        pipe.expire(key, window)
        count = int(pipe.execute()[2])
        flagged = count >= self._config.repeat_threshold
        newly = False
        if flagged:
            entry_id = self._claim_and_publish(
                keys=[keys.repeat_flag_claim(customer_id, order_number), keys.repeat_flags()],
                args=[
                    f"{now:.3f}", window, self._config.alert_stream_maxlen,
                    "customer_id", customer_id, "order_number", order_number,
                    "complaints", count, "window_seconds", window, "at", f"{now:.3f}",
                ],
            )
            newly = entry_id is not None
        return RepeatComplaintResult(count=count, flagged=flagged, newly_flagged=newly)

    def is_repeat_complainer(self, customer_id: str, order_number: str) -> bool:
        """Whether the pair has ``repeat_threshold`` complaints within the window right now."""
        now = self._clock()
        key = keys.repeat_complaints(customer_id, order_number)
        count = self._redis.zcount(key, now - self._config.repeat_window_seconds, "+inf")
        return int(count) >= self._config.repeat_threshold

    def report_problem(self, customer_id: str, problem: ProblemKey, *, detail: str = "") -> GroupIncidentResult:
        """Count a customer's report of a problem; raise one group-incident alert per window at the threshold."""
        if not customer_id.strip():
            raise ValueError("customer_id is required")
        now = self._clock()
        window = self._config.group_window_seconds
        value = problem.normalized_value
        key = keys.incident_reports(problem.kind, value)
        pipe = self._redis.pipeline(transaction=True)
        pipe.zremrangebyscore(key, "-inf", f"({now - window}")
        pipe.zadd(key, {customer_id: now})
        pipe.zcard(key)
        pipe.expire(key, window)
        pipe.zrange(key, 0, 9)
        pipe.exists(keys.incident_alert_claim(problem.kind, value))
        results = pipe.execute()
        count, sample, already = int(results[2]), [_text(m) for m in results[4]], bool(results[5])
        if count < self._config.group_threshold:
            return GroupIncidentResult(count, None, already)
        entry_id = self._claim_and_publish(
            keys=[keys.incident_alert_claim(problem.kind, value), keys.incident_alerts()],
            args=[
                f"{now:.3f}", window, self._config.alert_stream_maxlen,
                "problem_kind", problem.kind, "problem_value", value, "customers", count,
                "window_seconds", window, "sample_customers", json.dumps(sample, ensure_ascii=False),
                "detail", detail, "at", f"{now:.3f}",
            ],
        )
        alert_id = None if entry_id is None else _text(entry_id)
        return GroupIncidentResult(count, alert_id, True)

    def recent_incident_alerts(self, count: int = 50) -> list[dict[str, Any]]:
        """Newest group-incident alerts first, as plain dicts (``id`` plus the stream fields)."""
        return self._read_stream(keys.incident_alerts(), count)

    def recent_repeat_flags(self, count: int = 50) -> list[dict[str, Any]]:
        """Newest repeat-complaint flags first."""
        return self._read_stream(keys.repeat_flags(), count)

    def _read_stream(self, stream: str, count: int) -> list[dict[str, Any]]:
        entries: Sequence[Any] = self._redis.xrevrange(stream, count=count)
        alerts = []
        for entry in entries:
            if len(entry) != 2:
                raise ComplaintStoreError(f"unexpected stream entry from {stream}: {entry!r}")
            entry_id, fields = entry
            alert: dict[str, Any] = {"id": _text(entry_id)}
            alert.update({_text(k): _text(v) for k, v in fields.items()})
            if "sample_customers" in alert:
                alert["sample_customers"] = json.loads(alert["sample_customers"])
            for name in ("customers", "complaints", "window_seconds"):
                if name in alert:
                    alert[name] = int(alert[name])
            alerts.append(alert)
        return alerts
