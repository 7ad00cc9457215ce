"""Complaint SLAs (issue 15): a complaint is answered within 24 h, and one still unanswered after 48 h is escalated to
a supervisor.

A complaint is a handoff whose reason is ``complaint`` (``bot/shared/reasons.py``; the rule for "I want to complain"
and the escalation policy's complaint reason both open one), queued live or as a ticket outside service hours.
"Answered" = an agent message in the conversation's stream at or after the handoff was queued (the same definition
the managers' KPI uses, docs/KPIS.md). The clock is the desk's (``conversations/clock.py``), in calendar hours.

:meth:`ComplaintSla.check` runs in the gateway's SLA loop (``channels/app.py: _sla_loop``, every
``HANDOFF_SLA_CHECK_INTERVAL_S``). It looks at every open handoff - the queue and every desk member's owned
conversations - and raises one desk alert ``complaint_overdue`` per unanswered complaint older than 48 h (a flag key
set with NX, so several gateways raise it once). The alert is in the console's Alerts panel; a supervisor
acknowledges it, and it closes by itself when the handoff is claimed or closed (the desk's own rule for its alerts).
"""
from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from bot.shared.reasons import COMPLAINT
from bot.shared.redis_keys import stream_id_at
from conversations import keys
from handoff.handoffs import OPEN_STATUSES, HandoffService

ANSWER_S = 24 * 3600  # the complaint reply target
ESCALATE_S = 48 * 3600  # unanswered this long: a supervisor is alerted
ALERT_KIND = "complaint_overdue"


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class ComplaintSla:
    def __init__(self, redis: Redis, desk: HandoffService, escalate_s: float = ESCALATE_S) -> None:
        self.redis = redis
        self.desk = desk
        self.escalate_s = escalate_s

    async def open_handoffs(self) -> list[str]:
        """Every open handoff: queued ones and those a desk member owns."""
        ids = {_s(i) for i in await self.redis.zrange(keys.queue(), 0, -1)}
        for agent_id in [_s(a) for a in await self.redis.hvals(keys.agent_usernames())]:
            for cid in [_s(c) for c in await self.redis.smembers(keys.agent_active(agent_id))]:
                hid = await self.desk.open_for(cid)
                if hid:
                    ids.add(hid)
        return sorted(ids)

    async def answered(self, conversation_id: str, since: float) -> bool:
        """An agent message in the conversation at or after ``since``."""
        start = stream_id_at(since)
        async for _ in self._agent_messages(conversation_id, start):
            return True
        return False

    async def _agent_messages(self, conversation_id: str, start: str):  # noqa: ANN202 - async generator
        while True:
            batch = await self.redis.xrange(keys.messages(conversation_id), min=start, count=200)
            for entry_id, fields in batch:
                if _s(fields.get(b"role", fields.get("role", b""))) == "agent":
                    yield _s(entry_id)
            if len(batch) < 200:
                return
            last = _s(batch[-1][0])
            ms, seq = last.split("-")
            start = f"{ms}-{int(seq) + 1}"

    async def unanswered(self) -> list[float]:
        """Queue times (desk clock) of the open complaints no agent has answered yet (the live board)."""
        out = []
        for hid in await self.open_handoffs():
            h = await self.desk.get_row_fields(hid)
            if not h or h.get("reason_code") != COMPLAINT or h.get("status") not in OPEN_STATUSES:
                continue
            created = float(h.get("created_at") or self.desk.clock.timestamp())
            if not await self.answered(h["conversation_id"], created):
                out.append(created)
        return out

    async def check(self) -> list[str]:
        """Raise the 48-hour escalation of every overdue unanswered complaint (once each). Returns the alert ids."""
        now = self.desk.clock.timestamp()
        raised = []
        for hid in await self.open_handoffs():
            h = await self.desk.get_row_fields(hid)
            if not h or h.get("reason_code") != COMPLAINT or h.get("status") not in OPEN_STATUSES:
                continue
            created = float(h.get("created_at") or now)
            if now - created < self.escalate_s or await self.redis.exists(keys.complaint_escalated(hid)):
                continue
            if await self.answered(h["conversation_id"], created):
                continue
            if not await self.redis.set(keys.complaint_escalated(hid), "1", nx=True, ex=self.desk.retention_s):
                continue
            raised.append(await self.desk.raise_alert(
                ALERT_KIND, hid, h["conversation_id"], since=created,
                fields={"reason_code": COMPLAINT, "ticket_id": h.get("ticket_id") or "",
                        "agent_id": h.get("agent_id") or "", "status": h["status"]}))
        return raised
