"""Handoffs: creation (idempotent per conversation), the priority queue, claims, transfers, replies, hand-back,
close, CSAT, tickets, SLA alerts and the audit log.

Retention (docs/HANDOFF.md, "Retention"): an open handoff keeps its keys; when it is handed back or closed, its
record (with the context package) expires after HANDOFF_RETENTION_S, as do its ticket, its resolved alerts and the
customer's handoff index; a CSAT reopen makes it persistent again while open. The audit and desk-event streams are
trimmed (HANDOFF_AUDIT_RETENTION_S / HANDOFF_AUDIT_MAXLEN, HANDOFF_DESK_EVENTS_MAXLEN).

Every change of who owns a conversation is one Lua script, so it is atomic: two agents can never own the same
conversation, a conversation is never both queued and owned, and a reply is only stored while its author owns
the conversation. Owner values: ``bot`` (key missing), ``queue`` (waiting; bot silent), ``agent:<id>``.
"""
from __future__ import annotations

import json
import logging
import math
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from redis.asyncio import Redis

from bot.shared.reasons import ALL_REASONS
from bot.shared.redact import Redactor, scrub_stored
from bot.shared.redis_keys import stream_id_at
from conversations import keys
from conversations.clock import Clock
from conversations.customers import CustomerLinks
from conversations.messages import say_in
from conversations.rasa_client import RasaClient, RasaError
from conversations.store import AGENT_PREFIX, STREAM_MAXLEN, ChatMessage, ConversationStore
from handoff.agents import Agent, AgentStore
from handoff.context import build_context, conversation_redactor, iso
from handoff.policy import DeskPolicy

logger = logging.getLogger(__name__)

REASON_CODES = ALL_REASONS  # bot/shared/reasons.py: the one list
RESOLUTION_CODES = ("resolved", "refund_issued", "replacement_sent", "info_provided", "escalated_externally",
                    "customer_unreachable", "duplicate", "spam", "other")
# What a complaint was about, chosen by the agent who closes it: the seed reports' four complaint types (态度 service
# attitude, 产品 product, 效率 efficiency, 方案 the solution offered), or other. The dashboard's complaint-type
# breakdown counts them (docs/KPIS.md).
COMPLAINT_TYPES = ("attitude", "product", "efficiency", "solution", "other")
OPEN_STATUSES = ("queued", "claimed")
HIGH_FRUSTRATION = 80  # frustration score from which a waiting customer moves up one priority step
PICKUP_SAMPLES = 50
CSAT_PAYLOAD_PREFIX = "/csat"
ROW_FIELDS = ("id", "conversation_id", "status", "reason_code", "priority", "effective_priority", "tier", "language",
              "frustration", "created_at", "agent_id", "ticket_id", "supervisor_only", "summary_text", "resolution",
              "csat", "channel")
DESK_EVENTS_MAXLEN = 10_000
AUDIT_MAXLEN = 100_000
RETENTION_S = 30 * 24 * 3600
AUDIT_RETENTION_S = 180 * 24 * 3600
TICKET_COUNTER_TTL_S = 3 * 24 * 3600  # a day's ticket counter is only needed on that day
_MAXLEN_MARK = "__DESK_EVENTS_MAXLEN__"

_DESK_EVENT = "redis.call('XADD', KEYS[{k}], 'MAXLEN', '~', '" + _MAXLEN_MARK + "', '*', 'type', {t}, " \
              "'handoff_id', ARGV[1], 'conversation_id', {c})"

# KEYS: conv->handoff pointer, handoff hash, owner, queue, desk events. ARGV: id, score, conversation id, fields...
_CREATE = """
local existing = redis.call('GET', KEYS[1])
if existing then return {0, existing} end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], unpack(ARGV, 4))
redis.call('SET', KEYS[3], 'queue')
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
""" + _DESK_EVENT.format(k=5, t="'queued'", c="ARGV[3]") + """
return {1, ARGV[1]}
"""

# KEYS: owner. A ticket's conversation goes back to the bot while it waits (only if still queued, never an agent's).
_BOT_WHILE_TICKET = """
if redis.call('GET', KEYS[1]) == 'queue' then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: handoff, owner, queue, agent active set, desk events.
# ARGV: id, agent id, max concurrent, now, is supervisor, conversation id.
_CLAIM = """
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'queued' then return {0, 'not_queued'} end
if redis.call('HGET', KEYS[1], 'supervisor_only') == '1' and ARGV[5] ~= '1' then return {0, 'supervisor_only'} end
if redis.call('SCARD', KEYS[4]) >= tonumber(ARGV[3]) then return {0, 'limit'} end
redis.call('HSET', KEYS[1], 'status', 'claimed', 'agent_id', ARGV[2], 'claimed_at', ARGV[4])
redis.call('SET', KEYS[2], 'agent:' .. ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('SADD', KEYS[4], ARGV[6])
""" + _DESK_EVENT.format(k=5, t="'claimed'", c="ARGV[6]") + """
return {1, 'ok'}
"""

# KEYS: handoff, owner, queue, current owner's active set, target's active set, desk events.
# ARGV: id, target agent, target max, now, conversation id, required current agent ('*' = supervisor), seen agent.
_ASSIGN = """
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'queued' and status ~= 'claimed' then return {0, 'closed'} end
local current = redis.call('HGET', KEYS[1], 'agent_id') or ''
if status == 'queued' then current = '' end
if current ~= ARGV[7] then return {0, 'changed'} end
if ARGV[6] ~= '*' and current ~= ARGV[6] then return {0, 'not_owner'} end
if current == ARGV[2] then return {0, 'same_agent'} end
if redis.call('SCARD', KEYS[5]) >= tonumber(ARGV[3]) then return {0, 'limit'} end
if current ~= '' then redis.call('SREM', KEYS[4], ARGV[5]) end
redis.call('HSET', KEYS[1], 'status', 'claimed', 'agent_id', ARGV[2])
if status == 'queued' then redis.call('HSET', KEYS[1], 'claimed_at', ARGV[4]) end
redis.call('SET', KEYS[2], 'agent:' .. ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('SADD', KEYS[5], ARGV[5])
""" + _DESK_EVENT.format(k=6, t="'assigned'", c="ARGV[5]") + """
return {1, 'ok'}
"""

# KEYS: handoff, owner, queue, current owner's active set, conv->handoff pointer, desk events.
# ARGV: id, new status, required agent ('*' = supervisor), now, resolution, conversation id, seen agent, retention,
# complaint type ('' = none).
_RELEASE = """
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'queued' and status ~= 'claimed' then return {0, 'closed'} end
local current = redis.call('HGET', KEYS[1], 'agent_id') or ''
if status == 'queued' then current = '' end
if current ~= ARGV[7] then return {0, 'changed'} end
if ARGV[3] ~= '*' and current ~= ARGV[3] then return {0, 'not_owner'} end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'closed_at', ARGV[4], 'resolution', ARGV[5])
if ARGV[9] ~= '' then redis.call('HSET', KEYS[1], 'complaint_type', ARGV[9]) end
redis.call('EXPIRE', KEYS[1], ARGV[8])
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
if current ~= '' then redis.call('SREM', KEYS[4], ARGV[6]) end
redis.call('DEL', KEYS[5])
""" + _DESK_EVENT.format(k=6, t="ARGV[2]", c="ARGV[6]") + """
return {1, 'ok'}
"""

# KEYS: handoff, owner, queue, conv->handoff pointer, desk events. ARGV: id, score, conversation id, now.
_REOPEN = """
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'closed' then return {0, 'not_closed'} end
if redis.call('EXISTS', KEYS[4]) == 1 then return {0, 'other_open'} end
redis.call('HSET', KEYS[1], 'status', 'queued', 'supervisor_only', '1', 'agent_id', '', 'reopened_at', ARGV[4],
           'effective_priority', '1', 'created_at', ARGV[4])
redis.call('PERSIST', KEYS[1])
redis.call('SET', KEYS[4], ARGV[1])
redis.call('SET', KEYS[2], 'queue')
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
""" + _DESK_EVENT.format(k=5, t="'queued'", c="ARGV[3]") + """
return {1, 'ok'}
"""

# KEYS: owner, messages, agent dedupe. ARGV: expected owner, ttl, maxlen, fields...
_AGENT_MESSAGE = """
local seen = redis.call('GET', KEYS[3])
if seen then return {2, seen} end
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {0, ''} end
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', unpack(ARGV, 4))
redis.call('SET', KEYS[3], id, 'EX', ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return {1, id}
"""


class DeskError(Exception):
    """A desk operation refused; ``status`` is the HTTP status the API answers with."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


_REFUSALS = {
    "not_queued": (409, "This conversation is no longer waiting in the queue (already claimed or closed)."),
    "supervisor_only": (403, "Only a supervisor can take this reopened case."),
    "limit": (409, "Concurrency limit reached: close or hand back a conversation first."),
    "closed": (409, "This handoff is closed."),
    "changed": (409, "The conversation changed hands meanwhile; reload and try again."),
    "not_owner": (403, "You do not own this conversation."),
    "same_agent": (409, "That agent already owns this conversation."),
    "not_closed": (409, "Only a closed case can be reopened."),
    "other_open": (409, "Another handoff of this conversation is open."),
}


def _refuse(code: str) -> DeskError:
    status, detail = _REFUSALS.get(code, (409, code))
    return DeskError(status, detail)


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass
class HandoffOutcome:
    handoff_id: str
    status: str  # queued | ticket
    queue_position: int | None
    expected_wait_s: int | None
    in_service_hours: bool
    ticket_id: str | None
    next_contact: str | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class HandoffService:
    """All handoff logic; one per process, built at start-up from the shared Redis client."""

    def __init__(self, redis: Redis, store: ConversationStore, agents: AgentStore, rasa: RasaClient,
                 policy: DeskPolicy, clock: Clock, sla_pickup_s: int, earlier_limit: int, *,
                 retention_s: int = RETENTION_S, audit_retention_s: int = AUDIT_RETENTION_S,
                 audit_maxlen: int = AUDIT_MAXLEN, desk_events_maxlen: int = DESK_EVENTS_MAXLEN,
                 customers: CustomerLinks | None = None, earlier_messages: int = 20) -> None:
        self.redis = redis
        self.store = store
        self.agents = agents
        self.rasa = rasa
        self.policy = policy
        self.clock = clock
        self.sla_pickup_s = sla_pickup_s
        self.earlier_limit = earlier_limit
        self.customers = customers  # the customer's conversations on every channel (conversations/customers.py)
        self.earlier_messages = int(earlier_messages)
        self.retention_s = int(retention_s)
        self.audit_retention_s = int(audit_retention_s)
        self.audit_maxlen = int(audit_maxlen)
        self.desk_events_maxlen = int(desk_events_maxlen)

        def script(source: str):
            return redis.register_script(source.replace(_MAXLEN_MARK, str(self.desk_events_maxlen)))

        self._create = script(_CREATE)
        self._claim = script(_CLAIM)
        self._assign = script(_ASSIGN)
        self._release = script(_RELEASE)
        self._reopen = script(_REOPEN)
        self._agent_message = redis.register_script(_AGENT_MESSAGE)
        self._bot_while_ticket = redis.register_script(_BOT_WHILE_TICKET)

    # ------------------------------------------------------------------ reading

    async def get(self, handoff_id: str) -> dict[str, str] | None:
        raw = await self.redis.hgetall(keys.handoff(handoff_id))
        if not raw:
            return None
        return {_s(k): _s(v) for k, v in raw.items()}

    async def get_row_fields(self, handoff_id: str) -> dict[str, str] | None:
        """The handoff without its (possibly large) context package: what lists need."""
        values = await self.redis.hmget(keys.handoff(handoff_id), ROW_FIELDS)
        if values[0] is None:
            return None
        return {f: _s(v) for f, v in zip(ROW_FIELDS, values) if v is not None}

    async def require(self, handoff_id: str) -> dict[str, str]:
        handoff = await self.get(handoff_id)
        if handoff is None:
            raise DeskError(404, "Unknown handoff.")
        return handoff

    async def open_for(self, conversation_id: str) -> str | None:
        value = await self.redis.get(keys.conversation_handoff(conversation_id))
        return _s(value) if value else None

    async def context(self, handoff_id: str) -> dict[str, Any]:
        handoff = await self.require(handoff_id)
        return json.loads(handoff.get("context") or "{}")

    async def queue(self) -> list[dict[str, Any]]:
        """Waiting handoffs in pickup order, with what the queue view shows."""
        ids = [_s(i) for i in await self.redis.zrange(keys.queue(), 0, -1)]
        now = self.clock.timestamp()
        out = []
        for position, handoff_id in enumerate(ids, start=1):
            h = await self.get_row_fields(handoff_id)
            if not h:
                continue
            out.append(self.summary_row(h, now) | {"queue_position": position})
        return out

    def summary_row(self, h: dict[str, str], now: float | None = None) -> dict[str, Any]:
        now = self.clock.timestamp() if now is None else now
        created = float(h.get("created_at") or now)
        return {
            "handoff_id": h["id"], "conversation_id": h["conversation_id"], "status": h["status"],
            "reason_code": h["reason_code"], "priority": int(h["priority"]),
            "effective_priority": int(h["effective_priority"]), "tier": h.get("tier"),
            "language": h.get("language"), "channel": h.get("channel") or None,
            "frustration": int(float(h.get("frustration") or 0)),
            "wait_s": max(0, int(now - created)), "created_at": iso(created),
            "agent_id": h.get("agent_id") or None, "ticket_id": h.get("ticket_id") or None,
            "supervisor_only": h.get("supervisor_only") == "1", "summary": h.get("summary_text", ""),
            "resolution": h.get("resolution") or None, "csat": int(h["csat"]) if h.get("csat") else None,
        }

    async def mine(self, agent: Agent) -> list[dict[str, Any]]:
        conversation_ids = [_s(c) for c in await self.redis.smembers(keys.agent_active(agent.id))]
        rows = []
        for cid in conversation_ids:
            hid = await self.open_for(cid)
            h = await self.get_row_fields(hid) if hid else None
            if h:
                rows.append(self.summary_row(h))
        return sorted(rows, key=lambda r: r["created_at"] or "")

    # ------------------------------------------------------------------ creation

    def effective_priority(self, priority: int, tier: str | None, frustration: float) -> int:
        """Request priority, one step up for priority membership tiers and for very frustrated customers."""
        value = priority
        if self.policy.is_priority_tier(tier):
            value -= 1
        if frustration >= HIGH_FRUSTRATION:
            value -= 1
        return max(1, value)

    @staticmethod
    def queue_score(effective_priority: int, created_at: float) -> float:
        return effective_priority * 1e13 + int(created_at * 1000)

    async def create(self, request: dict[str, Any]) -> tuple[HandoffOutcome, bool]:
        """Open a handoff for a conversation, or return the open one. Returns (outcome, created now)."""
        conversation_id = request["conversation_id"]
        existing = await self.open_for(conversation_id)
        if existing:
            return await self.outcome(existing), False
        now_ts = self.clock.timestamp()
        handoff_id = uuid.uuid4().hex
        request = scrub_stored(request)  # the action server sends no secrets; check once more before storing
        customer = request["customer"]
        eff = self.effective_priority(request["priority"], customer.get("tier"), request["frustration"]["score"])
        context, redactor = await self._build_context(handoff_id, request, now_ts, eff)
        # Stored for reference without the tracker part (the package holds it, checked).
        request = scrub_stored({k: v for k, v in request.items() if k != "tracker"}, redactor)
        fields = {
            "id": handoff_id, "conversation_id": conversation_id, "channel": request["channel"], "status": "queued",
            "reason_code": request["reason_code"], "priority": request["priority"], "effective_priority": eff,
            "tier": customer.get("tier") or "regular", "language": request["language"],
            "customer_id": customer.get("id") or "", "verified": int(bool(customer.get("verified"))),
            "frustration": request["frustration"]["score"], "created_at": repr(now_ts), "agent_id": "",
            "supervisor_only": "0", "summary_text": context["summary"]["text"],
            "context": json.dumps(context, ensure_ascii=False),
            "request": json.dumps(request, ensure_ascii=False),
        }
        args: list[Any] = [handoff_id, self.queue_score(eff, now_ts), conversation_id]
        for k, v in fields.items():
            args += [k, v]
        created, value = await self._create(
            keys=[keys.conversation_handoff(conversation_id), keys.handoff(handoff_id), keys.owner(conversation_id),
                  keys.queue(), keys.desk_events()],
            args=args,
        )
        if not int(created):
            return await self.outcome(_s(value)), False
        if customer.get("id"):
            index = keys.handoffs_by_customer(customer["id"])
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.zadd(index, {handoff_id: now_ts})
                pipe.zremrangebyscore(index, "-inf", now_ts - self.retention_s)
                pipe.expire(index, self.retention_s)
                await pipe.execute()
        outcome = await self._route(handoff_id, fields, request["language"])
        return outcome, True

    async def redactor(self, conversation_id: str, handoff_id: str | None = None) -> Redactor:
        """What to mask in this conversation's live transcript for agents: phone tails, and the digits the action
        server masked in the handoff's tracker part (learnt against the raw messages; no Rasa call)."""
        handoff_id = handoff_id or await self.open_for(conversation_id)
        raw = await self.redis.hget(keys.handoff(handoff_id), "context") if handoff_id else None
        turns = (json.loads(raw) if raw else {}).get("turns") or []
        transcript = [{"role": m.role, "text": m.text} for m, _ in await self.store.entries(conversation_id)]
        return conversation_redactor({"turns": turns}, transcript)

    async def _build_context(self, handoff_id: str, request: dict[str, Any], now_ts: float, eff: int
                             ) -> tuple[dict[str, Any], Redactor]:
        conversation_id = request["conversation_id"]
        transcript = [
            {"id": m.id, "role": m.role, "text": m.text, "ts": iso(m.ts), **({"author": a} if a else {}),
             **({"buttons": m.buttons} if m.buttons else {})}  # buttons only to label taps (context.label_buttons)
            for m, a in await self.store.entries(conversation_id)
        ]
        earlier = await self._earlier(request["customer"].get("id"), conversation_id)
        # The tracker part comes with the request (the action server built it from the tracker it holds): the desk
        # never reads the tracker of a turn Rasa is still running.
        redactor = conversation_redactor(request.get("tracker"), transcript)
        context = build_context(handoff_id=handoff_id, request=request, transcript=transcript,
                                earlier=earlier, created_at=now_ts, effective_priority=eff, redactor=redactor)
        return scrub_stored(context, redactor), redactor  # the desk's own last check before anything is stored

    async def _earlier(self, customer_id: str | None, conversation_id: str) -> list[dict[str, Any]]:
        """The customer's earlier handoffs, then their other conversations on any channel (linked identities,
        conversations/customers.py) that had none; each with its channel and its newest messages, masked."""
        if not customer_id or self.earlier_limit == 0:
            return []
        ids = await self.redis.zrevrange(keys.handoffs_by_customer(customer_id), 0, self.earlier_limit * 2)
        out = []
        for hid in ids:
            h = await self.get_row_fields(_s(hid))
            if not h or h["conversation_id"] == conversation_id:
                continue
            out.append({"conversation_id": h["conversation_id"], "handoff_id": h["id"],
                        "created_at": iso(float(h["created_at"])), "reason_code": h["reason_code"],
                        "status": h["status"], "resolution": h.get("resolution") or None,
                        "csat": int(h["csat"]) if h.get("csat") else None, "summary": h.get("summary_text")})
            if len(out) >= self.earlier_limit:
                break
        if self.customers is not None and len(out) < self.earlier_limit:
            listed = {e["conversation_id"] for e in out} | {conversation_id}
            for cid in await self.customers.conversations(customer_id, self.earlier_limit + len(listed)):
                if cid in listed or not await self.store.exists(cid):
                    continue
                created = await self.redis.hget(keys.conversation(cid), "created_at")
                out.append({"conversation_id": cid, "handoff_id": None,
                            "created_at": iso(float(created)) if created else None, "reason_code": None,
                            "status": "bot_only", "resolution": None, "csat": None, "summary": None})
                if len(out) >= self.earlier_limit:
                    break
        for entry in out:
            entry.update(await self._earlier_transcript(entry["conversation_id"]))
        return out

    async def _earlier_transcript(self, conversation_id: str) -> dict[str, Any]:
        """Channel and newest messages of an earlier conversation, masked like the package (phones, digits)."""
        channel = await self.redis.hget(keys.conversation(conversation_id), "channel")
        entries = await self.store.entries(conversation_id) if self.earlier_messages else []
        transcript = [{"role": m.role, "text": m.text, "ts": iso(m.ts)} for m, _ in entries]
        redactor = conversation_redactor(None, transcript)
        tail = [redactor.message(m) for m in transcript[-self.earlier_messages:]] if self.earlier_messages else []
        return {"channel": _s(channel) if channel else None,
                "last_message_at": transcript[-1]["ts"] if transcript else None, "messages": tail}

    async def _route(self, handoff_id: str, fields: dict[str, Any], language: str) -> HandoffOutcome:
        """Queue during service hours with someone online; otherwise also open a ticket with a reply-by time."""
        now = self.clock.now()
        in_hours = self.policy.in_service_hours(now)
        online = await self.agents.online_ids()
        if in_hours and online:
            return await self.outcome(handoff_id)
        next_contact = self.policy.ticket_reply_by_time(now)
        ticket_id = await self._open_ticket(handoff_id, fields["conversation_id"], next_contact,
                                            "outside_hours" if not in_hours else "nobody_online")
        await self.redis.hset(keys.handoff(handoff_id), mapping={"ticket_id": ticket_id,
                                                                  "next_contact": next_contact.isoformat()})
        # Nobody answers before the ticket is picked up: the bot stays available for other questions meanwhile
        # (owner back to bot unless an agent claimed it already); a claim makes the agent the owner as usual.
        await self._bot_while_ticket(keys=[keys.owner(fields["conversation_id"])], args=[])
        return await self.outcome(handoff_id)

    async def _open_ticket(self, handoff_id: str, conversation_id: str, next_contact: datetime, why: str) -> str:
        local = self.clock.now().astimezone(self.policy.tz)
        day = local.strftime("%Y%m%d")
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(keys.ticket_counter(day))
            pipe.expire(keys.ticket_counter(day), TICKET_COUNTER_TTL_S)
            number, _ = await pipe.execute()
        ticket_id = f"T{day}-{int(number):04d}"
        await self.redis.hset(keys.ticket(ticket_id), mapping={
            "handoff_id": handoff_id, "conversation_id": conversation_id, "status": "open", "reason": why,
            "created_at": repr(self.clock.timestamp()), "next_contact": next_contact.isoformat()})
        await self.redis.zadd(keys.tickets(), {ticket_id: self.clock.timestamp()})
        return ticket_id

    async def outcome(self, handoff_id: str) -> HandoffOutcome:
        h = await self.require(handoff_id)
        rank = await self.redis.zrank(keys.queue(), handoff_id)
        position = int(rank) + 1 if rank is not None else None
        in_hours = self.policy.in_service_hours(self.clock.now())
        ticket_id = h.get("ticket_id") or None
        expected = await self.expected_wait_s(position) if position and in_hours and not ticket_id else None
        return HandoffOutcome(
            handoff_id=handoff_id, status="ticket" if ticket_id else "queued", queue_position=position,
            expected_wait_s=expected, in_service_hours=in_hours, ticket_id=ticket_id,
            next_contact=h.get("next_contact") or None,
        )

    async def expected_wait_s(self, position: int) -> int:
        """Mean of the recent pickup waits (the SLA target until there is history) per round of online agents."""
        samples = [float(v) for v in await self.redis.lrange(keys.pickup_waits(), 0, PICKUP_SAMPLES - 1)]
        per_pickup = sum(samples) / len(samples) if samples else float(self.sla_pickup_s)
        online = max(1, len(await self.agents.online_ids()))
        return int(math.ceil(per_pickup * math.ceil(position / online)))

    # ------------------------------------------------------------------ agent actions

    async def claim(self, agent: Agent, handoff_id: str) -> dict[str, str]:
        h = await self.require(handoff_id)
        cid = h["conversation_id"]
        now = self.clock.timestamp()
        ok, code = await self._claim(
            keys=[keys.handoff(handoff_id), keys.owner(cid), keys.queue(), keys.agent_active(agent.id),
                  keys.desk_events()],
            args=[handoff_id, agent.id, agent.max_concurrent, repr(now), int(agent.is_supervisor), cid],
        )
        if not int(ok):
            raise _refuse(_s(code))
        wait = max(0.0, now - float(h["created_at"]))
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.lpush(keys.pickup_waits(), round(wait, 3))
            pipe.ltrim(keys.pickup_waits(), 0, PICKUP_SAMPLES - 1)
            await pipe.execute()
        await self.resolve_alerts(handoff_id)
        await self.audit(agent, "claim", cid, handoff_id, {"wait_s": round(wait, 1)})
        await self._joined(cid, agent, h.get("language"))
        return await self.require(handoff_id)

    async def _joined(self, conversation_id: str, agent: Agent, language: str | None) -> None:
        """The customer is told who is answering now ("Alex joined the conversation")."""
        text = say_in("agent_joined", language).format(name=agent.display_name)
        await self.store.append(conversation_id, ChatMessage(role="system", text=text, name=agent.display_name))

    async def assign(self, actor: Agent, handoff_id: str, target_id: str, action: str) -> dict[str, str]:
        """Transfer (owner -> colleague) or, for supervisors, reassign from anyone or from the queue."""
        target = await self.agents.get(target_id)
        if target is None or not target.works_desk:
            raise DeskError(404, "Unknown target agent.")
        h = await self.require(handoff_id)
        if h.get("supervisor_only") == "1" and not target.is_supervisor:
            raise DeskError(403, "A reopened case can only go to a supervisor.")
        cid = h["conversation_id"]
        seen = h.get("agent_id", "") if h["status"] == "claimed" else ""
        required = "*" if actor.is_supervisor and action == "reassign" else actor.id
        ok, code = await self._assign(
            keys=[keys.handoff(handoff_id), keys.owner(cid), keys.queue(), keys.agent_active(seen or "none"),
                  keys.agent_active(target.id), keys.desk_events()],
            args=[handoff_id, target.id, target.max_concurrent, repr(self.clock.timestamp()), cid, required, seen],
        )
        if not int(ok):
            raise _refuse(_s(code))
        if not seen:
            await self.resolve_alerts(handoff_id)
        await self.audit(actor, action, cid, handoff_id, {"from": seen or "queue", "to": target.id})
        await self._joined(cid, target, h.get("language"))
        return await self.require(handoff_id)

    async def release(self, actor: Agent, handoff_id: str, new_status: str, resolution: str = "",
                      complaint_type: str = "") -> dict[str, str]:
        """Hand back to the bot (``handed_back``) or close (``closed`` + resolution, and for a complaint its type);
        the owner becomes the bot."""
        h = await self.require(handoff_id)
        cid = h["conversation_id"]
        seen = h.get("agent_id", "") if h["status"] == "claimed" else ""
        required = "*" if actor.is_supervisor else actor.id
        ok, code = await self._release(
            keys=[keys.handoff(handoff_id), keys.owner(cid), keys.queue(), keys.agent_active(seen or "none"),
                  keys.conversation_handoff(cid), keys.desk_events()],
            args=[handoff_id, new_status, required, repr(self.clock.timestamp()), resolution, cid, seen,
                  self.retention_s, complaint_type],
        )
        if not int(ok):
            raise _refuse(_s(code))
        language = h.get("language")
        if new_status == "handed_back":
            await self._resume_bot(cid)
            await self.store.append(cid, ChatMessage(role="system", text=say_in("handed_back", language)))
        else:
            await self._ask_csat(cid, handoff_id, language)
        if h.get("ticket_id"):
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(keys.ticket(h["ticket_id"]), "status", "done")
                pipe.expire(keys.ticket(h["ticket_id"]), self.retention_s)
                pipe.zrem(keys.tickets(), h["ticket_id"])
                await pipe.execute()
        await self.resolve_alerts(handoff_id)
        await self.audit(actor, "hand_back" if new_status == "handed_back" else "close", cid, handoff_id,
                         {k: v for k, v in (("resolution", resolution), ("complaint_type", complaint_type)) if v})
        return await self.require(handoff_id)

    async def _resume_bot(self, conversation_id: str) -> None:
        """The tracker kept its slots while the agent talked; a ``resume`` undoes a pause the action may have set,
        and clearing ``handoff_active`` lets the escalation policy watch the conversation again."""
        try:
            await self.rasa.append_events(
                conversation_id,
                [{"event": "resume"}, {"event": "slot", "name": "handoff_active", "value": False}],
            )
        except RasaError as exc:
            logger.warning("hand back %s: could not post resume to Rasa (%s)", conversation_id, exc)

    async def _ask_csat(self, conversation_id: str, handoff_id: str, language: str | None) -> None:
        stars = [{"title": "★" * n, "payload": f'{CSAT_PAYLOAD_PREFIX}{{"stars":{n}}}'} for n in range(1, 6)]
        await self.redis.set(keys.csat_pending(conversation_id), handoff_id, ex=self.store.ttl_s)
        await self.store.append(conversation_id, ChatMessage(role="system", text=say_in("csat_question", language),
                                                             buttons=stars))

    async def reply(self, agent: Agent, handoff_id: str, text: str, client_message_id: str) -> tuple[str, bool]:
        """Store an agent message if (and only while) the agent owns the conversation. Returns (id, new)."""
        h = await self.require(handoff_id)
        cid = h["conversation_id"]
        message = ChatMessage(role="agent", text=text, ts=time.time(), name=agent.display_name)
        args: list[Any] = [AGENT_PREFIX + agent.id, self.store.ttl_s, STREAM_MAXLEN]
        for k, v in message.fields(author=agent.id).items():
            args += [k, v]
        code, value = await self._agent_message(
            keys=[keys.owner(cid), keys.messages(cid), keys.agent_dedupe(cid, client_message_id)], args=args)
        code = int(code)
        if code == 0:
            if h["status"] not in OPEN_STATUSES:
                raise DeskError(409, "This conversation is closed; replies are not delivered.")
            raise _refuse("not_owner")
        message_id = _s(value)
        if code == 1:
            await self.audit(agent, "reply", cid, handoff_id, {"message_id": message_id, "chars": len(text)})
        return message_id, code == 1

    # ------------------------------------------------------------------ customer side

    async def record_csat(self, conversation_id: str, stars: int) -> tuple[str, bool] | None:
        """Store the customer's rating; 1-2 reopens the case to a supervisor. Returns (handoff id, reopened)."""
        value = await self.redis.getdel(keys.csat_pending(conversation_id))
        if not value:
            return None
        handoff_id = _s(value)
        h = await self.require(handoff_id)
        await self.redis.hset(keys.handoff(handoff_id), mapping={"csat": stars, "csat_at": repr(time.time())})
        if stars > 2:
            return handoff_id, False
        now = self.clock.timestamp()
        ok, code = await self._reopen(
            keys=[keys.handoff(handoff_id), keys.owner(conversation_id), keys.queue(),
                  keys.conversation_handoff(conversation_id), keys.desk_events()],
            args=[handoff_id, self.queue_score(1, now), conversation_id, repr(now)],
        )
        if not int(ok):
            logger.warning("CSAT %s for %s not reopened: %s", stars, handoff_id, _s(code))
            return handoff_id, False
        if not self.policy.in_service_hours(self.clock.now()):
            next_contact = self.policy.ticket_reply_by_time(self.clock.now())
            ticket_id = await self._open_ticket(handoff_id, conversation_id, next_contact, "csat_low")
            await self.redis.hset(keys.handoff(handoff_id), mapping={"ticket_id": ticket_id,
                                                                      "next_contact": next_contact.isoformat()})
        await self.audit(None, "reopen_csat", conversation_id, handoff_id, {"stars": stars, "was": h["status"]})
        return handoff_id, True

    # ------------------------------------------------------------------ SLA and alerts

    async def check_sla(self) -> list[str]:
        """Raise one alert per queued handoff not picked up within the SLA during service hours."""
        now_dt = self.clock.now()
        if not self.policy.in_service_hours(now_dt):
            return []
        now = self.clock.timestamp()
        raised = []
        for hid in [_s(i) for i in await self.redis.zrange(keys.queue(), 0, -1)]:
            h = await self.get(hid)
            if not h or h["status"] != "queued" or now - float(h["created_at"]) < self.sla_pickup_s:
                continue
            if not await self.redis.set(keys.sla_alerted(hid), "1", nx=True, ex=self.store.ttl_s):
                continue
            alert_id = await self.raise_alert(
                "sla_pickup", hid, h["conversation_id"], since=float(h["created_at"]),
                fields={"reason_code": h["reason_code"], "effective_priority": h["effective_priority"]})
            raised.append(alert_id)
        return raised

    async def raise_alert(self, kind: str, handoff_id: str, conversation_id: str, since: float,
                          fields: dict[str, Any] | None = None) -> str:
        """A supervisor-visible alert (console: alerts list). It expires HANDOFF_RETENTION_S after it was raised
        (the alerts index is pruned of older ones), or that long after it was resolved."""
        now = self.clock.timestamp()
        alert_id = uuid.uuid4().hex[:12]
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.alert(alert_id), mapping={
                "id": alert_id, "kind": kind, "handoff_id": handoff_id, "conversation_id": conversation_id,
                "raised_at": repr(now), "wait_s": int(max(0.0, now - since)), **(fields or {})})
            pipe.expire(keys.alert(alert_id), self.retention_s)
            pipe.zadd(keys.alerts(), {alert_id: now})
            pipe.zremrangebyscore(keys.alerts(), "-inf", now - self.retention_s)
            pipe.xadd(keys.desk_events(), {"type": "alert", "handoff_id": handoff_id,
                                           "conversation_id": conversation_id},
                      maxlen=self.desk_events_maxlen, approximate=True)
            await pipe.execute()
        return alert_id

    async def alerts(self) -> list[dict[str, Any]]:
        out = []
        for aid in [_s(i) for i in await self.redis.zrange(keys.alerts(), 0, -1)]:
            raw = await self.redis.hgetall(keys.alert(aid))
            if raw:
                a = {_s(k): _s(v) for k, v in raw.items()}
                out.append({**a, "raised_at": iso(float(a["raised_at"])), "wait_s": int(a["wait_s"])})
        return out

    async def resolve_alerts(self, handoff_id: str) -> None:
        for aid in [_s(i) for i in await self.redis.zrange(keys.alerts(), 0, -1)]:
            if _s(await self.redis.hget(keys.alert(aid), "handoff_id") or b"") == handoff_id:
                await self.redis.zrem(keys.alerts(), aid)
                await self.redis.hset(keys.alert(aid), "resolved_at", repr(self.clock.timestamp()))
                await self.redis.expire(keys.alert(aid), self.retention_s)

    # ------------------------------------------------------------------ audit

    async def audit(self, actor: Agent | None, action: str, conversation_id: str, handoff_id: str,
                    detail: dict[str, Any]) -> None:
        min_id = stream_id_at(time.time() - self.audit_retention_s)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xadd(keys.audit(), {
                "ts": repr(time.time()), "agent_id": actor.id if actor else "", "agent": actor.username if actor
                else "system", "action": action, "conversation_id": conversation_id, "handoff_id": handoff_id,
                "detail": json.dumps(detail, ensure_ascii=False)}, maxlen=self.audit_maxlen, approximate=True)
            pipe.xtrim(keys.audit(), minid=min_id, approximate=False)  # exact: a quiet stream expires too
            await pipe.execute()

    async def audit_log(self, count: int = 200) -> list[dict[str, Any]]:
        raw = await self.redis.xrevrange(keys.audit(), count=count)
        return [{"id": _s(i), **{_s(k): _s(v) for k, v in d.items()}} for i, d in raw]
