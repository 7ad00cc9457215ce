"""The inbox of what the bot got wrong, from real conversations, and the consumer that fills it.

Sources (each already recorded where it happens; the inbox reads the streams with its own consumer group
``workbench-inbox``, so every gateway can run the loop, each entry is taken in once and acknowledged after its row is
committed, and the insert is idempotent on the entry's reference):

* ``nlu_fallback`` - ``csbot:kb:fallback``: the action server's fallback (actions/fallback.py), for every
  ``nlu_fallback`` on the customer's own words;
* ``kb_no_answer`` - ``csbot:kb:unanswered``: the knowledge base had nothing for a policy question, or for a
  message the NLU read as out of scope and the bot declined (actions/knowledge.py);
* ``kb_choice`` - ``csbot:kb:chosen``: a "did you mean" suggestion the customer picked (question + article meant);
* ``unhelpful`` - ``csbot:kb:feedback`` with ``helpful`` 0: "did this help?" - no;
* ``repeated_failure`` - ``csbot:desk:events`` (queued / assigned) of a handoff whose reason is
  ``repeated_failure``: the customer's last messages before it, from the conversation's stream;
* ``correction`` - ``csbot:desk:events`` (``correction``): an agent at hand-back or close marked what the customer
  actually wanted, an intent or an article (handoff/corrections.py).

Every text is masked before it is stored (workbench/masking.py). Each row gets a sentence vector from the knowledge
base's own encoder, asked of the action server (``POST /kb/embed``: the model it already holds; the gateway loads
none); rows the action server could not embed yet are retried on later rounds and grouped by their normalised text
meanwhile. Grouping happens at read time: open rows, newest first, each joining the group whose first (newest)
message, in the same language, is most similar when the cosine reaches ``WORKBENCH_INBOX_GROUP_SIMILARITY``.
"""
from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from typing import Any

import httpx
import numpy as np
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import Engine, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from bot.shared.near_duplicates import normalise
from bot.shared.reasons import REPEATED_FAILURE
from bot.shared.text import detect_language
from conversations import keys
from conversations.redis_client import stopping
from conversations.streams import ensure_group
from workbench import db
from workbench.masking import mask, mask_reply
from workbench.settings import WorkbenchSettings
from workbench.trial import TOKEN_HEADER

logger = logging.getLogger(__name__)

GROUP = "workbench-inbox"
SOURCES = ("nlu_fallback", "kb_no_answer", "kb_choice", "unhelpful", "repeated_failure", "correction")
FAILED_MESSAGES_PER_HANDOFF = 2  # actions/fallback.py: two failures in a row escalate
RESOLVED = ("added", "dismissed")
EMBED_RETRY_S = 15.0
PURGE_EVERY_S = 3600.0  # how often the consumer deletes messages past the retention
RELEASES = ("closed", "handed_back")  # desk events that end an agent's part of a handoff
AGENT_REPLIES_KEPT = 5  # the last agent replies kept with an inbox message (for a draft article)


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def encode_vector(vector: Any) -> str:
    """A unit vector as stored: base64 of little-endian float32 (about 2 KB for 384 dimensions; decoded without a
    parser, which keeps grouping a few thousand messages fast)."""
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def decode_vector(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f4")


def _language(value: str | None, text: str) -> str:
    return value if value in ("zh", "en") else (detect_language(text) or "en")


def item(ref: str, source: str, conversation_id: str, ts: float, language: str | None, text: str,
         **extra: Any) -> dict[str, Any] | None:
    """A row for the inbox table (masked), or None for a message with nothing to learn from (empty, a command)."""
    raw = str(text or "").strip()
    if not raw or raw.startswith("/"):
        return None
    masked = mask(raw)
    detail = extra.pop("detail", {}) or {}
    return {"ref": ref[:200], "source": source, "conversation_id": conversation_id[:64], "ts": ts,
            "language": _language(language, raw), "text": masked, "key": normalise(masked)[:400],
            "detail": json.dumps(detail, ensure_ascii=False), "status": "open",
            **{k: (str(v)[:120] if v else None) for k, v in extra.items()}}


class Inbox:
    """The rows (SQL) and the grouping."""

    def __init__(self, engine: Engine, settings: WorkbenchSettings) -> None:
        self.engine = engine
        self.settings = settings

    def insert(self, rows: list[dict[str, Any]]) -> int:
        inserted = 0
        if not rows:
            return 0
        dialect_insert = pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        with self.engine.begin() as conn:
            for row in rows:
                stmt = dialect_insert(db.inbox).values(**row).on_conflict_do_nothing(index_elements=["ref"])
                inserted += conn.execute(stmt).rowcount or 0
        return inserted

    def purge(self, now: float) -> int:
        """Deletes the messages older than the retention (``WORKBENCH_INBOX_RETENTION_S``); returns how many. What an
        editor added to an intent or an article lives on in the content, not here."""
        with self.engine.begin() as conn:
            result = conn.execute(delete(db.inbox).where(db.inbox.c.ts < now - self.settings.inbox_retention_s))
        return result.rowcount or 0

    def without_vector(self, limit: int) -> list[tuple[int, str]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(db.inbox.c.id, db.inbox.c.text).where(
                db.inbox.c.vector.is_(None), db.inbox.c.status == "open").order_by(db.inbox.c.ts.desc())
                .limit(limit)).all()
        return [(r[0], r[1]) for r in rows]

    def set_vectors(self, vectors: dict[int, list[float]]) -> None:
        with self.engine.begin() as conn:
            for row_id, vector in vectors.items():
                conn.execute(update(db.inbox).where(db.inbox.c.id == row_id).values(vector=encode_vector(vector)))

    def attach_replies(self, ref_prefix: str, replies: list[dict[str, str]]) -> int:
        """Keep the agents' (masked) replies with the rows whose ref starts with ``ref_prefix`` (a handoff's
        messages); returns how many rows changed."""
        changed = 0
        with self.engine.begin() as conn:
            rows = conn.execute(select(db.inbox.c.id, db.inbox.c.detail).where(
                db.inbox.c.ref.startswith(ref_prefix, autoescape=True))).all()
            for row_id, detail in rows:
                value = json.loads(detail or "{}")
                value["agent_replies"] = replies
                conn.execute(update(db.inbox).where(db.inbox.c.id == row_id).values(
                    detail=json.dumps(value, ensure_ascii=False)))
                changed += 1
        return changed

    def get(self, ids: list[int]) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(db.inbox).where(db.inbox.c.id.in_(ids))).mappings().all()
        return [dict(r) for r in rows]

    def resolve(self, ids: list[int], status: str, who: str, resolution: dict[str, Any]) -> int:
        """Mark the open rows among ``ids`` as added or dismissed; returns how many changed."""
        assert status in RESOLVED
        with self.engine.begin() as conn:
            result = conn.execute(update(db.inbox).where(db.inbox.c.id.in_(ids), db.inbox.c.status == "open").values(
                status=status, resolved_by=who, resolved_at=time.time(),
                resolution=json.dumps(resolution, ensure_ascii=False)))
        return int(result.rowcount or 0)

    def groups(self, *, sort: str = "frequent", source: str | None = None, status: str = "open",
               limit: int = 100, since: float | None = None, until: float | None = None,
               language: str | None = None, channel: str | None = None) -> dict[str, Any]:
        """Open (or resolved) rows grouped by meaning: each group with its count (distinct conversation + text),
        newest time, sources, the agents' corrections and customers' choices it holds, and its messages. ``since``
        / ``until`` (epoch seconds, until exclusive), ``language`` and ``channel`` narrow the rows first (the
        dashboard's unanswered topics of a period)."""
        query = select(db.inbox).where(db.inbox.c.status == status)
        if source:
            query = query.where(db.inbox.c.source == source)
        if since is not None:
            query = query.where(db.inbox.c.ts >= since)
        if until is not None:
            query = query.where(db.inbox.c.ts < until)
        if language:
            query = query.where(db.inbox.c.language == language)
        if channel:
            query = query.where(db.inbox.c.channel == channel)
        query = query.order_by(db.inbox.c.ts.desc(), db.inbox.c.id.desc()).limit(self.settings.inbox_max_items)
        with self.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(query).mappings().all()]
        threshold = self.settings.inbox_group_similarity
        groups: list[dict[str, Any]] = []
        leaders: dict[str, list[np.ndarray]] = {}  # per language: the multilingual encoder puts a question and
        leader_group: dict[str, list[int]] = {}    # its translation close together, but an example has one language
        matrices: dict[str, np.ndarray] = {}  # the leaders stacked, rebuilt only when a group is added
        by_key: dict[tuple[str, str], int] = {}
        for row in rows:
            vector = decode_vector(row["vector"]) if row["vector"] else None
            lang = row["language"]
            index = by_key.get((lang, row["key"]))
            if index is None and vector is not None and leaders.get(lang):
                if lang not in matrices:
                    matrices[lang] = np.stack(leaders[lang])
                sims = matrices[lang] @ vector
                best = int(np.argmax(sims))
                if float(sims[best]) >= threshold:
                    index = leader_group[lang][best]
            if index is None:
                index = len(groups)
                groups.append({"messages": []})
                if vector is not None:
                    leaders.setdefault(lang, []).append(vector)
                    leader_group.setdefault(lang, []).append(index)
                    matrices.pop(lang, None)
            by_key.setdefault((row["language"], row["key"]), index)
            groups[index]["messages"].append(row)
        out = [self._summary(g["messages"]) for g in groups]
        if sort == "newest":
            out.sort(key=lambda g: (-g["newest_ts"], -g["count"]))
        else:
            out.sort(key=lambda g: (-g["count"], -g["newest_ts"]))
        counts: dict[str, int] = {}
        for row in rows:
            counts[row["source"]] = counts.get(row["source"], 0) + 1
        return {"groups": out[:limit], "group_count": len(out), "item_count": len(rows), "sources": counts,
                "threshold": threshold, "embedded": sum(1 for r in rows if r["vector"])}

    @staticmethod
    def _summary(messages: list[dict[str, Any]]) -> dict[str, Any]:
        lead = messages[0]
        sources: dict[str, int] = {}
        intents: dict[str, int] = {}
        articles: dict[str, int] = {}
        for m in messages:
            sources[m["source"]] = sources.get(m["source"], 0) + 1
            if m["intent"]:
                intents[m["intent"]] = intents.get(m["intent"], 0) + 1
            if m["article_id"] and m["source"] in ("kb_choice", "correction"):
                articles[m["article_id"]] = articles.get(m["article_id"], 0) + 1
        return {
            "id": lead["id"], "text": lead["text"], "language": lead["language"],
            "count": len({(m["conversation_id"], m["key"]) for m in messages}),
            "newest_ts": max(m["ts"] for m in messages), "sources": sources,
            "suggested_intents": sorted(intents, key=lambda k: -intents[k]),
            "suggested_articles": sorted(articles, key=lambda k: -articles[k]),
            "messages": [{"id": m["id"], "text": m["text"], "source": m["source"], "ts": m["ts"],
                          "language": m["language"], "channel": m["channel"], "intent_guess": m["intent_guess"],
                          "article_id": m["article_id"], "intent": m["intent"], "agent_id": m["agent_id"],
                          "detail": json.loads(m["detail"] or "{}"), "status": m["status"],
                          "resolved_by": m["resolved_by"],
                          "resolution": json.loads(m["resolution"]) if m["resolution"] else None}
                         for m in messages],
        }


class Embedder:
    """Sentence vectors from the action server's ``POST /kb/embed`` (the KB's query encoder)."""

    def __init__(self, settings: WorkbenchSettings) -> None:
        self.settings = settings

    async def embed(self, texts: list[str]) -> list[list[float]] | None:
        headers = {TOKEN_HEADER: self.settings.action_token.get_secret_value()}
        try:
            async with httpx.AsyncClient(timeout=self.settings.try_timeout_s) as client:
                response = await client.post(f"{self.settings.action_base_url}/kb/embed", json={"texts": texts},
                                             headers=headers)
        except httpx.HTTPError as exc:
            logger.info("inbox: the action server could not embed (%s); grouping by text for now", exc)
            return None
        if response.status_code != 200:
            logger.info("inbox: /kb/embed answered %s; grouping by text for now", response.status_code)
            return None
        vectors = response.json().get("vectors")
        return vectors if isinstance(vectors, list) and len(vectors) == len(texts) else None


class InboxConsumer:
    """The consumer-group loop every gateway runs (see the module docstring)."""

    def __init__(self, redis: Redis, inbox: Inbox, embedder: Embedder, consumer: str, *, poll_s: float = 1.0,
                 claim_idle_s: float = 60.0, batch: int = 100) -> None:
        self.redis = redis
        self.inbox = inbox
        self.embedder = embedder
        self.consumer = consumer
        self.poll_s = poll_s
        self.claim_idle_ms = int(claim_idle_s * 1000)
        self.batch = batch
        self.streams = [keys.kb_fallback(), keys.kb_unanswered(), keys.kb_chosen(), keys.kb_feedback(),
                        keys.desk_events()]
        self._ready: set[str] = set()
        self._embed_after = 0.0  # after a failed /kb/embed, wait a little before asking again
        self._purge_after = 0.0  # the next purge of messages past their retention (first round, then hourly)
        self._pending_replies: list[tuple[str, list[dict[str, str]]]] = []  # (row ref prefix, agent replies)

    async def _rows(self, stream: str, entry_id: str, data: dict[str, str]) -> list[dict[str, Any]]:
        ref = f"{stream}/{entry_id}"
        cid = data.get("conversation_id", "")
        ts = _float(data.get("ts")) or int(entry_id.split("-", 1)[0]) / 1000.0
        question = data.get("question", "")
        lang = data.get("language")
        row: dict[str, Any] | None = None
        if stream == keys.kb_fallback():
            row = item(ref, "nlu_fallback", cid, ts, lang, question, intent_guess=data.get("intent_guess"),
                       detail={"kb_decision": data.get("kb_decision") or None,
                               "guess_confidence": _float(data.get("guess_confidence"))})
        elif stream == keys.kb_unanswered():
            row = item(ref, "kb_no_answer", cid, ts, lang, question,
                       detail={"best_score": _float(data.get("best_score")), "via": data.get("via") or "policy"})
        elif stream == keys.kb_chosen():
            row = item(ref, "kb_choice", cid, ts, lang, question, article_id=data.get("article_id"))
        elif stream == keys.kb_feedback():
            if data.get("helpful") == "0":
                row = item(ref, "unhelpful", cid, ts, lang, question, article_id=data.get("article_id"))
        elif stream == keys.desk_events():
            return await self._desk_rows(entry_id, data)
        return [row] if row else []

    async def _desk_rows(self, entry_id: str, data: dict[str, str]) -> list[dict[str, Any]]:
        kind = data.get("type")
        handoff_id = data.get("handoff_id", "")
        cid = data.get("conversation_id", "")
        ts = int(entry_id.split("-", 1)[0]) / 1000.0
        if kind == "correction":
            replies = await self.agent_replies(cid, data.get("message_id") or "", entry_id)
            row = item(f"{keys.desk_events()}/{entry_id}", "correction", cid, ts, data.get("language"),
                       data.get("text", ""), intent=data.get("intent"), article_id=data.get("article_id"),
                       agent_id=data.get("agent_id"), detail={"handoff_id": handoff_id, "at": data.get("at"),
                                                              **({"agent_replies": replies} if replies else {})})
            return [row] if row else []
        if kind in RELEASES and handoff_id:
            await self._replies_at_release(handoff_id, entry_id)
            return []
        if kind not in ("queued", "assigned") or not handoff_id:
            return []
        h = {_s(k): _s(v) for k, v in (await self.redis.hgetall(keys.handoff(handoff_id))).items()}
        if h.get("reason_code") != REPEATED_FAILURE:
            return []
        cid = h.get("conversation_id") or cid
        # Messages up to this event (stream ids on both sides are Redis's clock, whatever the desk's clock says).
        entries = await self.redis.xrevrange(keys.messages(cid), max=entry_id.split("-", 1)[0], count=30)
        rows = []
        for message_id, fields in entries:
            f = {_s(k): _s(v) for k, v in fields.items()}
            if f.get("role") != "customer" or f.get("text", "").strip().startswith("/"):
                continue
            row = item(f"handoff/{handoff_id}/{_s(message_id)}", "repeated_failure", cid,
                       _float(f.get("ts")) or ts, h.get("language"), f.get("text", ""),
                       detail={"handoff_id": handoff_id})
            if row:
                rows.append(row)
            if len(rows) >= FAILED_MESSAGES_PER_HANDOFF:
                break
        return rows

    async def agent_replies(self, conversation_id: str, after_id: str, until_id: str) -> list[dict[str, str]]:
        """The agents' replies in the conversation after the customer's message ``after_id`` (a stream id; "" = from
        the start) up to the desk event ``until_id``, masked (workbench/masking.py: mask_reply), at most
        ``AGENT_REPLIES_KEPT``: what a draft article's answer can start from (workbench/drafts.py)."""
        if not conversation_id:
            return []
        entries = await self.redis.xrange(keys.messages(conversation_id), min=f"({after_id}" if after_id else "-",
                                          max=until_id.split("-", 1)[0], count=200)
        out = []
        for message_id, fields in entries:
            f = {_s(k): _s(v) for k, v in fields.items()}
            text = mask_reply(f.get("text", ""))
            if f.get("role") == "agent" and text.strip():
                out.append({"message_id": _s(message_id), "agent_id": f.get("author", "")[:64], "text": text})
        return out[-AGENT_REPLIES_KEPT:]

    async def _replies_at_release(self, handoff_id: str, entry_id: str) -> None:
        """A handoff was handed back or closed: the agents' replies of a repeated-failure handoff are kept with its
        inbox messages (taken in at ``queued``, before any agent replied)."""
        h = {_s(k): _s(v) for k, v in (await self.redis.hgetall(keys.handoff(handoff_id))).items()}
        if h.get("reason_code") != REPEATED_FAILURE or not h.get("conversation_id"):
            return
        created = _float(h.get("created_at")) or 0.0
        replies = await self.agent_replies(h["conversation_id"], f"{int(created * 1000)}-0" if created else "",
                                           entry_id)
        if replies:
            self._pending_replies.append((f"handoff/{handoff_id}/", replies))

    async def _read(self) -> list[tuple[str, str, dict[str, str]]]:
        out: list[tuple[str, str, dict[str, str]]] = []
        for stream in self.streams:
            if stream not in self._ready:
                await ensure_group(self.redis, stream, GROUP, mkstream=True)
                self._ready.add(stream)
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream in self.streams:
                pipe.xreadgroup(GROUP, self.consumer, {stream: ">"}, count=self.batch)
                pipe.xautoclaim(stream, GROUP, self.consumer, self.claim_idle_ms, "0-0", count=self.batch)
            results = await pipe.execute(raise_on_error=False)
        for i, stream in enumerate(self.streams):
            fresh, claimed = results[2 * i], results[2 * i + 1]
            if isinstance(fresh, Exception):
                if "NOGROUP" in str(fresh):
                    self._ready.discard(stream)  # the stream was deleted: made again next round
                else:
                    logger.warning("inbox: reading %s failed: %s", stream, fresh)
                continue
            entries = [(eid, data) for _, items in (fresh or []) for eid, data in items]
            if not isinstance(claimed, Exception) and claimed:
                entries += [(eid, data) for eid, data in claimed[1] if data]
            for eid, data in entries:
                out.append((stream, _s(eid), {_s(k): _s(v) for k, v in data.items()}))
        return out

    async def poll_once(self) -> int:
        """One round: new entries in (acknowledged once their rows are committed), then vectors for rows that have
        none. Returns the rows inserted now."""
        entries = await self._read()
        inserted = 0
        if entries:
            rows: list[dict[str, Any]] = []
            for stream, entry_id, data in entries:
                rows += await self._rows(stream, entry_id, data)
            await self._channels(rows)
            inserted = await asyncio.to_thread(self.inbox.insert, rows)
            while self._pending_replies:  # after the insert: a handoff's rows may have come in this same round
                prefix, replies = self._pending_replies.pop(0)
                await asyncio.to_thread(self.inbox.attach_replies, prefix, replies)
            acks: dict[str, list[str]] = {}
            for stream, entry_id, _ in entries:
                acks.setdefault(stream, []).append(entry_id)
            async with self.redis.pipeline(transaction=False) as pipe:
                for stream, ids in acks.items():
                    pipe.xack(stream, GROUP, *ids)
                await pipe.execute()
        await self.embed_missing()
        if time.monotonic() >= self._purge_after:
            self._purge_after = time.monotonic() + PURGE_EVERY_S
            purged = await asyncio.to_thread(self.inbox.purge, time.time())
            if purged:
                logger.info("inbox: %d messages past their retention deleted", purged)
        return inserted

    async def _channels(self, rows: list[dict[str, Any]]) -> None:
        """Each row's channel (webchat, telegram, ...), from its conversation's record: the dashboard's unanswered
        topics filter by it. A conversation already expired leaves it empty."""
        cids = sorted({row["conversation_id"] for row in rows if row.get("conversation_id")})
        if not cids:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for cid in cids:
                pipe.hget(keys.conversation(cid), "channel")
            found = dict(zip(cids, await pipe.execute(), strict=True))
        for row in rows:
            channel = found.get(row["conversation_id"])
            row["channel"] = _s(channel)[:32] if channel else None

    async def embed_missing(self, limit: int = 64) -> int:
        if time.monotonic() < self._embed_after:
            return 0
        missing = await asyncio.to_thread(self.inbox.without_vector, limit)
        if not missing:
            return 0
        vectors = await self.embedder.embed([text for _, text in missing])
        if vectors is None:
            self._embed_after = time.monotonic() + EMBED_RETRY_S
            return 0
        await asyncio.to_thread(self.inbox.set_vectors, {row_id: v for (row_id, _), v in zip(missing, vectors)})
        return len(missing)

    async def run_forever(self) -> None:
        while not stopping():
            try:
                if not await self.poll_once():
                    await asyncio.sleep(self.poll_s)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                logger.warning("inbox consumer: %s", exc)
                await asyncio.sleep(max(self.poll_s, 1.0))
            except Exception:  # noqa: BLE001 - the inbox must never stop the gateway; logged with the trace
                logger.exception("inbox consumer failed; retrying")
                await asyncio.sleep(max(self.poll_s, 1.0))
