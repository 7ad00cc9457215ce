"""Search of past conversations and the case library of the agent desk (issue 17, item 3).

**Search index.** Every handoff gets a search document (``keys.search_doc``): its conversation's transcript as agents
see it (verification digits removed, phones masked: :meth:`HandoffService.redactor`), lower-cased, with the order
numbers, the customer id, reason, status and resolution. Documents are (re)built from the desk's event stream
(``queued`` and the ``closed``/``handed_back`` releases) by :meth:`CaseLibrary.catch_up`, which every search runs
first from its cursor (``keys.search_cursor``; bounded per call), so the index needs no hook in the desk's scripts and
no background task. Documents expire with the handoffs (``HANDOFF_RETENTION_S``). Look-ups by order number and by
customer use their own indexes (every match); free text reads the newest ``HANDOFF_SEARCH_SCAN`` documents.

**Case library.** A conversation marked as a model case (title, tags, why) is copied into ``keys.case`` - the masked
transcript, summary, reason, resolution, orders - with no expiry, so it outlives the conversation. One case per
handoff (marking again updates title, tags and note). Any agent may search and open cases; the conversation's agent
or a supervisor marks it; its author or a supervisor removes it.
"""
from __future__ import annotations

import json
import re
import time
from typing import Any

from redis.asyncio import Redis

from bot.shared.redact import GENERIC
from conversations import keys
from conversations.store import ConversationStore
from handoff.agents import Agent

CATCH_UP_EVENTS = 2000  # desk events taken in per search at most (the rest on the next one)
DOC_TEXT_CHARS = 20_000
CASE_MESSAGES = 300
SNIPPET_CHARS = 160
RESULTS_MAX = 50
TAG_RE = re.compile(r"^[\w\u4e00-\u9fff-]{1,24}$")
ORDER_RE = re.compile(r"\bDM\d{10}\b", re.IGNORECASE)
# KEYS: search documents. ARGV: words (lower-case). Returns the 1-based positions of the documents whose text holds
# every word: the matching runs inside Redis, so a search moves only what it found (batches keep each call short).
_MATCH = """
local found = {}
for i, key in ipairs(KEYS) do
  local text = redis.call('HGET', key, 'text')
  if text then
    local ok = true
    for _, word in ipairs(ARGV) do
      if not string.find(text, word, 1, true) then ok = false break end
    end
    if ok then found[#found + 1] = i end
  end
end
return found
"""
BATCH = 250
_INDEXED_EVENTS = {"queued", "claimed", "assigned", "closed", "handed_back"}  # every change of who or what


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")


def normalise(text: str) -> str:
    return " ".join(str(text).split()).lower()


def snippet(text: str, needle: str) -> str:
    """The part of a (masked) text around the first match, at most SNIPPET_CHARS."""
    flat = " ".join(str(text).split())
    at = flat.lower().find(needle.lower()) if needle else -1
    if at < 0:
        return flat[:SNIPPET_CHARS] + ("…" if len(flat) > SNIPPET_CHARS else "")
    start = max(0, at - SNIPPET_CHARS // 3)
    piece = flat[start:start + SNIPPET_CHARS]
    return ("…" if start else "") + piece + ("…" if start + SNIPPET_CHARS < len(flat) else "")


class CaseError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class CaseLibrary:
    def __init__(self, redis: Redis, desk: Any, store: ConversationStore, retention_s: int, scan: int) -> None:
        self.redis = redis
        self.desk = desk
        self.store = store
        self.retention_s = retention_s
        self.scan = scan

    def _now(self) -> float:
        """The desk's clock (handoff times are on it; HANDOFF_CLOCK in tests and demos)."""
        clock = getattr(self.desk, "clock", None)
        return clock.timestamp() if clock is not None else time.time()

    # ------------------------------------------------------------------ the masked transcript

    async def transcript(self, handoff: dict[str, str]) -> list[dict[str, Any]]:
        """The conversation as agents see it in the console (masked), or the handoff's stored transcript once the
        conversation's messages expired."""
        cid, hid = handoff["conversation_id"], handoff["id"]
        redactor = await self.desk.redactor(cid, hid)
        entries = await self.store.entries(cid)
        if entries:
            return [redactor.message({**m.to_dict(), "author": a or None}) for m, a in entries]
        context = json.loads(handoff.get("context") or "{}")
        return [dict(m) for m in context.get("transcript") or []]

    # ------------------------------------------------------------------ the search index

    async def index(self, handoff_id: str) -> bool:
        handoff = await self.desk.get(handoff_id)
        if handoff is None:
            return False
        context = json.loads(handoff.get("context") or "{}")
        messages = await self.transcript(handoff)
        text = "\n".join(f"{m.get('role')}: {m.get('text') or ''}" for m in messages)
        orders = {o.upper() for o in ORDER_RE.findall(text)}
        orders |= {str(o).upper() for o in (context.get("identifiers") or {}).get("order_numbers") or []}
        customer = str((context.get("customer") or {}).get("id") or "")
        first = next((m.get("text") for m in messages if m.get("role") == "customer" and m.get("text")), "")
        created = float(handoff.get("created_at") or time.time())
        doc = {"handoff_id": handoff_id, "conversation_id": handoff["conversation_id"], "created_at": repr(created),
               "status": handoff.get("status", ""), "reason_code": handoff.get("reason_code", ""),
               "resolution": handoff.get("resolution", ""), "language": handoff.get("language", ""),
               "channel": handoff.get("channel", ""), "tier": handoff.get("tier", ""), "customer_id": customer,
               "agent_id": handoff.get("agent_id", ""), "supervisor_only": handoff.get("supervisor_only", ""),
               "orders": " ".join(sorted(orders)),
               "preview": GENERIC.text(str(first))[:SNIPPET_CHARS], "text": normalise(text)[:DOC_TEXT_CHARS]}
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(keys.search_doc(handoff_id), mapping=doc)
            pipe.expire(keys.search_doc(handoff_id), self.retention_s)
            pipe.zadd(keys.search_recent(), {handoff_id: created})
            pipe.zremrangebyscore(keys.search_recent(), "-inf", self._now() - self.retention_s)
            for number in orders:
                pipe.zadd(keys.search_by_order(number), {handoff_id: created})
                pipe.expire(keys.search_by_order(number), self.retention_s)
            await pipe.execute()
        return True

    async def catch_up(self, limit: int = CATCH_UP_EVENTS) -> int:
        """Index the handoffs the desk events name since the cursor; returns how many were (re)indexed."""
        cursor = _s(await self.redis.get(keys.search_cursor())) or "0-0"
        events = await self.redis.xrange(keys.desk_events(), min=f"({cursor}", count=limit)
        wanted: dict[str, None] = {}
        for _event_id, data in events:
            kind = _s(data.get(b"type") or data.get("type"))
            if kind in _INDEXED_EVENTS and (data.get(b"handoff_id") or data.get("handoff_id")):
                wanted[_s(data.get(b"handoff_id") or data.get("handoff_id"))] = None
        done = 0
        for handoff_id in wanted:
            done += await self.index(handoff_id)
        if events:
            await self.redis.set(keys.search_cursor(), _s(events[-1][0]))
        return done

    async def search(self, text: str = "", order: str = "", customer: str = "", limit: int = 20
                     ) -> list[dict[str, Any]]:
        """Past conversations (newest first) matching every given criterion: an order number (exact), a customer
        id (exact), words of the text (each must occur)."""
        await self.catch_up()
        limit = max(1, min(limit, RESULTS_MAX))
        words = [w for w in normalise(text).split(" ") if w]
        if order:
            ids = [_s(i) for i in await self.redis.zrevrange(keys.search_by_order(order.upper()), 0, self.scan - 1)]
        elif customer:
            ids = [_s(i) for i in await self.redis.zrevrange(keys.handoffs_by_customer(customer), 0, self.scan - 1)]
        else:
            ids = [_s(i) for i in await self.redis.zrevrange(keys.search_recent(), 0, self.scan - 1)]
        fields = ("handoff_id", "conversation_id", "created_at", "status", "reason_code", "resolution", "language",
                  "channel", "customer_id", "agent_id", "supervisor_only", "orders", "preview", "text")
        results: list[dict[str, Any]] = []
        case_ids = {_s(c) for c in await self.redis.zrange(keys.cases(), 0, -1)}
        match = self.redis.register_script(_MATCH)
        for start in range(0, len(ids), BATCH):
            batch = ids[start:start + BATCH]
            if words:
                hits = await match(keys=[keys.search_doc(h) for h in batch], args=words)
                batch = [batch[int(i) - 1] for i in hits]
                if not (order or customer):  # nothing filters further: read only what the page needs
                    batch = batch[:limit - len(results)]
            async with self.redis.pipeline(transaction=False) as pipe:
                for handoff_id in batch:
                    pipe.hmget(keys.search_doc(handoff_id), fields)
                rows = await pipe.execute()
            for values in rows:
                if values[0] is None:
                    continue
                doc = dict(zip(fields, (_s(v) for v in values)))
                if customer and doc["customer_id"] != customer:
                    continue
                if order and order.upper() not in doc["orders"].split():
                    continue
                if any(w not in doc["text"] for w in words):
                    continue
                body = doc.pop("text")
                doc["snippet"] = snippet(body, words[0]) if words else doc["preview"]
                doc["created_at"] = float(doc["created_at"] or 0)
                doc["orders"] = doc["orders"].split()
                doc["is_case"] = doc["handoff_id"] in case_ids
                results.append(doc)
                if len(results) >= limit:
                    return results
        return results

    # ------------------------------------------------------------------ the case library

    async def mark(self, agent: Agent, handoff: dict[str, str], title: str, tags: list[str], note: str
                   ) -> tuple[dict[str, Any], bool]:
        """Copy the conversation into the library as a model case (or update its title, tags, note)."""
        hid = handoff["id"]
        if not (agent.is_supervisor or handoff.get("agent_id") == agent.id):
            raise CaseError(403, "Only the conversation's agent or a supervisor can mark it as a model case.")
        clean_tags = []
        for tag in tags:
            tag = tag.strip().lower()
            if not TAG_RE.match(tag):
                raise CaseError(422, f"Tag {tag[:30]!r}: 1-24 letters, digits, '-' or '_'.")
            if tag not in clean_tags:
                clean_tags.append(tag)
        existing = await self.redis.get(keys.case(hid))
        now = time.time()
        if existing:
            case = json.loads(existing)
            case.update({"title": title, "tags": clean_tags, "note": note, "updated_at": now,
                         "updated_by": agent.display_name})
        else:
            context = json.loads(handoff.get("context") or "{}")
            messages = await self.transcript(handoff)
            text = "\n".join(str(m.get("text") or "") for m in messages)
            orders = sorted({o.upper() for o in ORDER_RE.findall(text)}
                            | {str(o).upper() for o in (context.get("identifiers") or {}).get("order_numbers") or []})
            case = {"id": hid, "handoff_id": hid, "conversation_id": handoff["conversation_id"], "title": title,
                    "tags": clean_tags, "note": note, "created_at": now, "created_by": agent.display_name,
                    "created_by_id": agent.id, "reason_code": handoff.get("reason_code", ""),
                    "resolution": handoff.get("resolution", ""), "language": handoff.get("language", ""),
                    "channel": handoff.get("channel", ""), "orders": orders,
                    "summary": (context.get("summary") or {}).get("text") or "",
                    "messages": [{"role": m.get("role"), "text": m.get("text"), "shown": m.get("shown"),
                                  "name": m.get("name"), "ts": m.get("ts")} for m in messages[-CASE_MESSAGES:]]}
        await self.redis.set(keys.case(hid), json.dumps(case, ensure_ascii=False))
        await self.redis.zadd(keys.cases(), {hid: case["created_at"]})
        return case, not existing

    async def get(self, case_id: str) -> dict[str, Any] | None:
        raw = await self.redis.get(keys.case(case_id))
        return json.loads(raw) if raw else None

    async def remove(self, agent: Agent, case_id: str) -> None:
        case = await self.get(case_id)
        if case is None:
            raise CaseError(404, "Unknown case.")
        if not (agent.is_supervisor or case.get("created_by_id") == agent.id):
            raise CaseError(403, "Only the case's author or a supervisor can remove it.")
        await self.redis.delete(keys.case(case_id))
        await self.redis.zrem(keys.cases(), case_id)

    async def library(self, text: str = "", tag: str = "", limit: int = 50) -> list[dict[str, Any]]:
        """Cases (newest first) whose title, tags, note, summary or transcript contain every word; or a tag."""
        words = [w for w in normalise(text).split(" ") if w]
        ids = [_s(i) for i in await self.redis.zrevrange(keys.cases(), 0, self.scan - 1)]
        out = []
        for start in range(0, len(ids), 200):
            raws = await self.redis.mget([keys.case(i) for i in ids[start:start + 200]])
            for raw in raws:
                if not raw:
                    continue
                case = json.loads(raw)
                if tag and tag.lower() not in case.get("tags", []):
                    continue
                raw_text = " ".join([case.get("title", ""), " ".join(case.get("tags", [])), case.get("note", ""),
                                     case.get("summary", ""), " ".join(case["orders"]),
                                     *(str(m.get("text") or "") for m in case.get("messages", []))])
                body = normalise(raw_text)
                if any(w not in body for w in words):
                    continue
                shown = snippet(raw_text, words[0]) if words else case.get("summary", "")[:SNIPPET_CHARS]
                out.append({k: case.get(k) for k in ("id", "title", "tags", "note", "created_at", "created_by",
                                                       "reason_code", "resolution", "language", "orders", "summary")}
                           | {"snippet": shown})
                if len(out) >= limit:
                    return out
        return out
