"""Feeds the SQL event record from the streams that already exist, as things happen:

* ``csbot:desk:events`` (handoff queued / claimed / assigned / handed back / closed, alerts), details read from the
  handoff's record at that moment (reason, priority, tier, agent, resolution, ticket);
* every conversation's message stream ``csbot:conv:{id}:messages`` (customer, bot, agent, system messages; a CSAT
  answer is the customer's ``/csat{"stars":n}`` button; a bot message's ``kb`` / ``response`` fields, which the
  gateway stores from Rasa's reply, are its source: see :func:`bot_source`).

Each stream has a consumer group ``analytics``: every gateway runs this loop, the group gives each entry to one of
them, entries are acknowledged only after the rows are committed, entries left unacknowledged by a dead gateway are
taken over after ANALYTICS_CLAIM_IDLE_S, and the insert is idempotent on (stream, entry id), so redelivery never
counts twice. Conversation streams are found by SCAN (every ANALYTICS_SCAN_S); a group created on an existing stream
starts at its beginning, so what Redis still holds is back-filled. Texts are masked (bot/shared/redact.py) and cut.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from datetime import datetime, timezone
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import Engine

from analytics import db
from bot.shared.redact import GENERIC as REDACTOR
from bot.shared.redis_keys import PREFIX
from bot.shared.text import detect_language
from conversations import keys, metrics
from conversations.redis_client import stopping
from conversations.streams import ensure_group
from handoff.policy import DeskPolicy

logger = logging.getLogger(__name__)

GROUP = "analytics"
TEXT_CHARS = 300
CSAT_RE = re.compile(r'^/csat\{"stars":\s*([1-5])\}$')
DESK_KINDS = {"queued": "handoff_queued", "claimed": "handoff_claimed", "assigned": "handoff_assigned",
              "handed_back": "handoff_handed_back", "closed": "handoff_closed", "alert": "alert"}
MESSAGE_KINDS = {"customer": "message_customer", "bot": "message_bot", "agent": "message_agent",
                 "system": "message_system"}
# Domain responses that mean the bot had no answer (actions/fallback.py, actions/knowledge.py, the out-of-scope rule):
# a bot message with one of these counts as a fallback answer. tests/analytics/test_answer_sources.py checks that
# every name is in domain.yml.
FALLBACK_RESPONSES = frozenset({"utter_rephrase", "utter_offer_human", "utter_kb_no_answer",
                                "utter_kb_unavailable", "utter_out_of_scope"})
_MESSAGES_SUFFIX = ":messages"
_CONV_PREFIX = f"{PREFIX}:conv:"


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def entry_ts(entry_id: str) -> float:
    return int(entry_id.split("-", 1)[0]) / 1000.0


def customer_ref(value: str) -> str | None:
    """A pseudonym of the customer (account id or browser hash): enough to find repeat contacts, not reversible."""
    return hashlib.sha256(f"csbot-analytics:{value}".encode()).hexdigest()[:24] if value else None


class Ingest:
    """Turns stream entries into rows (pure but for the handoff and conversation records it reads)."""

    def __init__(self, redis: Redis, engine: Engine, policy: DeskPolicy) -> None:
        self.redis = redis
        self.engine = engine
        self.policy = policy

    def _when(self, ts: float) -> dict[str, Any]:
        local = datetime.fromtimestamp(ts, timezone.utc).astimezone(self.policy.tz)
        return {"ts": ts, "day": local.strftime("%Y-%m-%d"), "hour": local.hour, "dow": local.weekday(),
                "in_hours": self.policy.in_service_hours(local)}

    async def _conv_meta(self, conversation_id: str) -> dict[str, str]:
        raw = await self.redis.hgetall(keys.conversation(conversation_id))
        return {_s(k): _s(v) for k, v in raw.items()}

    def _conv(self, conversation_id: str, ts: float, meta: dict[str, str], language: str | None = None,
              ref: str | None = None, channel: str | None = None) -> dict[str, Any]:
        when = self._when(ts)
        lang = language or (meta.get("ui_lang") if meta.get("ui_lang") in ("zh", "en") else None)
        return {"conversation_id": conversation_id, "channel": channel or meta.get("channel") or "webchat",
                "channel_known": bool(channel or meta.get("channel")),
                "language": lang or "zh", "language_ts": ts if language else None, "started_ts": ts,
                "day": when["day"], "hour": when["hour"], "dow": when["dow"],
                "customer_ref": ref or customer_ref(meta.get("device", ""))}

    async def desk_entry(self, stream: str, entry_id: str, data: dict[str, str]
                         ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        kind = DESK_KINDS.get(data.get("type", ""))
        conversation_id = data.get("conversation_id", "")
        if not kind or not conversation_id:
            return [], []
        ts = entry_ts(entry_id)
        handoff_id = data.get("handoff_id") or None
        raw = await self.redis.hgetall(keys.handoff(handoff_id)) if handoff_id else {}
        h = {_s(k): _s(v) for k, v in raw.items()}
        if kind == "alert":
            kind = "alert_" + (h.get("kind") or "desk")[:20]
        row = {"stream": stream, "entry_id": entry_id, **self._when(ts), "conversation_id": conversation_id,
               "handoff_id": handoff_id, "kind": kind, "agent_id": h.get("agent_id") or None,
               "reason": h.get("reason_code") or None, "priority": int(h["priority"]) if h.get("priority") else None,
               "tier": h.get("tier") or None, "resolution": h.get("resolution") or None,
               "ticket_id": h.get("ticket_id") or None}
        if kind == "handoff_queued":
            row["agent_id"] = None
        row["complaint_type"] = h.get("complaint_type") or None  # set by the agent who closed a complaint
        convs = []
        if h:
            language = h.get("language") if h.get("language") in ("zh", "en") else None
            convs.append(self._conv(conversation_id, ts, await self._conv_meta(conversation_id), None,
                                    customer_ref(h.get("customer_id", "")), h.get("channel") or None)
                         | ({"language": language} if language else {}))
        return [row], convs

    async def message_entry(self, stream: str, entry_id: str, data: dict[str, str]
                            ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        conversation_id = stream[len(_CONV_PREFIX):-len(_MESSAGES_SUFFIX)]
        role = data.get("role", "system")
        kind = MESSAGE_KINDS.get(role, "message_system")
        ts = float(data.get("ts") or 0) or entry_ts(entry_id)
        text = data.get("text", "")
        row: dict[str, Any] = {"stream": stream, "entry_id": entry_id, **self._when(ts),
                               "conversation_id": conversation_id, "kind": kind}
        convs: list[dict[str, Any]] = []
        if role == "customer":
            stars = CSAT_RE.match(text.strip())
            if stars:
                row.update(kind="csat", stars=int(stars.group(1)),
                           handoff_id=await asyncio.to_thread(db.last_closed_handoff, self.engine, conversation_id,
                                                              ts))
            else:
                row["text"] = REDACTOR.text(text, customer=True)[:TEXT_CHARS]
            convs.append(self._conv(conversation_id, ts, await self._conv_meta(conversation_id),
                                    None if stars else (detect_language(text) or None)))
        elif role == "bot":
            row.update(bot_source(data))
            row["text"] = REDACTOR.text(text)[:TEXT_CHARS]
            row["arm"] = data.get("arm", "")[:40] or None
        elif role == "agent":
            row["agent_id"] = data.get("author") or None
        return [row], convs


def bot_source(data: dict[str, str]) -> dict[str, Any]:
    """A bot message's source from the fields the gateway stored with it (``channels/dispatch.py: bot_source``, from
    Rasa's own event metadata): ``kb`` with the article id and score; ``fallback`` for the responses in
    FALLBACK_RESPONSES; ``flow`` for any other domain response or action text; ``unknown`` for a message stored
    without a source (before the gateway recorded one, or a Rasa channel that does not report it)."""
    kb = _json(data.get("kb"))
    if kb and kb.get("id"):
        score = kb.get("score")
        return {"source": "kb", "kb_id": str(kb["id"])[:120],
                "kb_score": float(score) if isinstance(score, (int, float)) else None}
    if "response" not in data:
        return {"source": "unknown"}
    return {"source": "fallback" if data["response"] in FALLBACK_RESPONSES else "flow"}


def _json(value: str | None) -> dict[str, Any] | None:
    if not value:
        return None
    try:
        parsed = json.loads(value)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


class AnalyticsConsumer:
    """The consumer-group loop every gateway runs (see the module docstring)."""

    def __init__(self, redis: Redis, engine: Engine, policy: DeskPolicy, consumer: str, *, poll_s: float = 1.0,
                 scan_s: float = 10.0, claim_idle_s: float = 60.0, batch: int = 200) -> None:
        self.redis = redis
        self.engine = engine
        self.ingest = Ingest(redis, engine, policy)
        self.consumer = consumer
        self.poll_s = poll_s
        self.scan_s = scan_s
        self.claim_idle_ms = int(claim_idle_s * 1000)
        self.batch = batch
        self.streams: set[str] = set()
        self._last_scan = float("-inf")
        self._desk_ready = False

    async def _group(self, stream: str) -> bool:
        # A conversation stream that is gone (expired) or not a stream gives False; the desk's stream is created.
        return await ensure_group(self.redis, stream, GROUP, mkstream=stream == keys.desk_events())

    async def discover(self) -> None:
        """Find conversation streams (new ones get the group, from their first entry)."""
        pattern = f"{_CONV_PREFIX}*{_MESSAGES_SUFFIX}"
        async for key in self.redis.scan_iter(match=pattern, count=1000, _type="STREAM"):
            stream = _s(key)
            if stream not in self.streams and await self._group(stream):
                self.streams.add(stream)

    async def _read(self, streams: list[str]) -> list[tuple[str, str, dict[str, str]]]:
        """New entries of these streams for this consumer, plus entries another consumer left unacknowledged."""
        out: list[tuple[str, str, dict[str, str]]] = []
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream in streams:
                pipe.xreadgroup(GROUP, self.consumer, {stream: ">"}, count=self.batch)
                pipe.xautoclaim(stream, GROUP, self.consumer, self.claim_idle_ms, "0-0", count=self.batch)
            results = await pipe.execute(raise_on_error=False)
        for i, stream in enumerate(streams):
            fresh, claimed = results[2 * i], results[2 * i + 1]
            if isinstance(fresh, Exception):
                if "NOGROUP" in str(fresh):
                    self.streams.discard(stream)  # expired or deleted
                else:
                    logger.warning("analytics: reading %s failed: %s", stream, fresh)
                continue
            entries = [(eid, data) for _, items in (fresh or []) for eid, data in items]
            if not isinstance(claimed, Exception) and claimed:
                entries += [(eid, data) for eid, data in claimed[1] if data]
            for eid, data in entries:
                out.append((stream, _s(eid), {_s(k): _s(v) for k, v in data.items()}))
        return out

    async def poll_once(self, *, rescan: bool = False) -> int:
        """One round over the desk stream and the known conversation streams. Returns the rows inserted now."""
        loop = asyncio.get_running_loop()
        if not self._desk_ready:
            self._desk_ready = await self._group(keys.desk_events())
        if rescan or loop.time() - self._last_scan >= self.scan_s:
            await self.discover()
            self._last_scan = loop.time()
        streams = [keys.desk_events()] + sorted(self.streams)
        inserted = 0
        for start in range(0, len(streams), 100):
            chunk = streams[start:start + 100]
            entries = await self._read(chunk)
            if not entries:
                continue
            rows: list[dict[str, Any]] = []
            convs: list[dict[str, Any]] = []
            for stream, entry_id, data in entries:
                handler = self.ingest.desk_entry if stream == keys.desk_events() else self.ingest.message_entry
                r, c = await handler(stream, entry_id, data)
                rows += r
                convs += c
            inserted += await asyncio.to_thread(db.write, self.engine, rows, convs)
            acks: dict[str, list[str]] = {}
            for stream, entry_id, _ in entries:
                acks.setdefault(stream, []).append(entry_id)
            async with self.redis.pipeline(transaction=False) as pipe:
                for stream, ids in acks.items():
                    pipe.xack(stream, GROUP, *ids)
                await pipe.execute()
        return inserted

    async def run_forever(self) -> None:
        while not stopping():
            try:
                if not await self.poll_once():
                    await asyncio.sleep(self.poll_s)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                metrics.error("analytics", "redis")
                logger.warning("analytics consumer: %s", exc)
                await asyncio.sleep(max(self.poll_s, 1.0))
            except Exception:  # noqa: BLE001 - the record must never stop the gateway; logged with the trace
                metrics.error("analytics", "failed")
                logger.exception("analytics consumer failed; retrying")
                await asyncio.sleep(max(self.poll_s, 1.0))
