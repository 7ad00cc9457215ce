"""What supervisors are alerted to, in one list (console: Alerts panel; API: ``/api/agent/alerts``).

Two sources:

* the desk's own alerts (:meth:`handoff.handoffs.HandoffService.raise_alert`): ``sla_pickup`` (a queued handoff not
  picked up in time) and ``handoff_undelivered`` (a handoff the action server could not deliver, given up after
  its retries by handoff/undelivered.py);
* the complaint streams the action server writes (bot/shared/frustration/complaints.py): ``repeat_complaint`` (a
  customer complaining again and again about one order) and ``group_incident`` (many customers, one problem).

Acknowledging closes a desk alert (as picking up its handoff does) and hides a stream alert: the stream entry
stays (it is the record, bounded by its MAXLEN), an acknowledgement key with the desk's retention marks it.
A stream alert older than the desk's retention is not shown.
"""
from __future__ import annotations

import builtins
import json
import re
from typing import Any

from redis.asyncio import Redis

from bot.shared.frustration import keys as complaint_keys
from conversations import keys
from handoff.agents import Agent
from handoff.context import iso
from handoff.handoffs import HandoffService

# Stream alert id = <kind prefix>-<stream entry id>; desk alert ids are 12 hex digits.
STREAMS = {
    "repeat_complaint": ("repeat", complaint_keys.REPEAT_FLAGS_STREAM),
    "group_incident": ("incident", complaint_keys.INCIDENT_ALERTS_STREAM),
}
_PREFIXES = {prefix: (kind, stream) for kind, (prefix, stream) in STREAMS.items()}
ALERT_ID = r"^(?:[0-9a-f]{12}|(?:repeat|incident)-\d{1,20}-\d{1,20})$"
PER_STREAM = 50  # newest stream alerts looked at per stream


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class SupervisorAlerts:
    def __init__(self, redis: Redis, desk: HandoffService) -> None:
        self.redis = redis
        self.desk = desk

    async def list(self) -> builtins.list[dict[str, Any]]:
        """Open alerts, oldest first: the desk's, then each complaint stream's not yet acknowledged."""
        out = await self.desk.alerts()
        since = self.desk.clock.timestamp() - self.desk.retention_s
        stream_alerts: list[dict[str, Any]] = []
        for kind, (prefix, stream) in STREAMS.items():
            for entry_id, raw in await self.redis.xrevrange(stream, count=PER_STREAM):
                eid = _s(entry_id)
                fields = {_s(k): _s(v) for k, v in raw.items()}
                at = float(fields.get("at") or int(eid.split("-")[0]) / 1000)
                alert_id = f"{prefix}-{eid}"
                if at < since or await self.redis.exists(keys.alert_acknowledged(alert_id)):
                    continue
                stream_alerts.append(_stream_alert(kind, alert_id, at, fields))
        return out + sorted(stream_alerts, key=lambda a: a["raised_ts"])

    async def acknowledge(self, alert_id: str, supervisor: Agent) -> bool:
        """Close or hide one alert; False when there is no such open alert. Audited."""
        if not re.match(ALERT_ID, alert_id):
            return False
        now = self.desk.clock.timestamp()
        prefix, _, entry_id = alert_id.partition("-")
        if prefix in _PREFIXES:
            kind, stream = _PREFIXES[prefix]
            if not await self.redis.xrange(stream, min=entry_id, max=entry_id):
                return False
            if not await self.redis.set(keys.alert_acknowledged(alert_id), supervisor.id, nx=True,
                                        ex=self.desk.retention_s):
                return False
            await self.desk.audit(supervisor, "alert_ack", "", "", {"alert_id": alert_id, "kind": kind})
            return True
        if await self.redis.zrem(keys.alerts(), alert_id) == 0:
            return False
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.alert(alert_id), mapping={"resolved_at": repr(now), "acknowledged_by": supervisor.id})
            pipe.expire(keys.alert(alert_id), self.desk.retention_s)
            await pipe.execute()
        raw = await self.redis.hgetall(keys.alert(alert_id))
        fields = {_s(k): _s(v) for k, v in raw.items()}
        await self.desk.audit(supervisor, "alert_ack", fields.get("conversation_id", ""),
                              fields.get("handoff_id", ""), {"alert_id": alert_id, "kind": fields.get("kind")})
        return True


def _stream_alert(kind: str, alert_id: str, at: float, fields: dict[str, str]) -> dict[str, Any]:
    alert: dict[str, Any] = {"id": alert_id, "kind": kind, "raised_at": iso(at), "raised_ts": at,
                             "handoff_id": "", "conversation_id": "",
                             "window_seconds": int(fields.get("window_seconds") or 0)}
    if kind == "repeat_complaint":
        alert.update(customer_id=fields.get("customer_id", ""), order_number=fields.get("order_number", ""),
                     complaints=int(fields.get("complaints") or 0))
    else:
        try:
            sample = json.loads(fields.get("sample_customers") or "[]")
        except ValueError:
            sample = []
        alert.update(problem_kind=fields.get("problem_kind", ""), problem_value=fields.get("problem_value", ""),
                     customers=int(fields.get("customers") or 0), sample_customers=sample,
                     detail=fields.get("detail", ""))
    return alert
