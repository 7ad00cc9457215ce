"""A seeded week of conversations written into the real streams in the desk's and the gateway's own formats (stream
ids carry the times), with the KPIs computed by hand in the comments of tests/analytics/test_kpis.py."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

from redis.asyncio import Redis

from analytics import db
from conversations import keys

T0 = datetime.fromisoformat("2026-11-23T10:00:00+08:00").timestamp()  # Monday, in service hours (China time)
START, END = "2026-11-23", "2026-11-24"

# (conversation, channel, ui_lang, device)
CONVERSATIONS = [("conv-a", "webchat", "en", "device-1"), ("conv-b", "webchat", "zh", "device-2"),
                 ("conv-c", "webchat", "en", "device-1"), ("conv-d", "telegram", "en", ""),
                 ("conv-e", "webchat", "en", "device-3")]
# (conversation, seconds after T0, role, text, extra fields)
MESSAGES: list[tuple[str, float, str, str, dict[str, str]]] = [
    ("conv-a", 0, "customer", "where is my parcel? my phone is 13812345678", {}),
    ("conv-a", 2, "bot", "It is on its way.", {}),
    ("conv-b", 100, "customer", "我的订单到哪里了", {}),
    ("conv-b", 104, "bot", "一般3-5天送达。", {"kb": json.dumps({"id": "orders-delivery-time", "title": "Delivery",
                                                              "score": 0.8})}),
    ("conv-b", 110, "customer", "太慢了，我要投诉", {}),
    ("conv-b", 140, "agent", "您好，我来帮您查一下。", {"author": "a1"}),
    ("conv-b", 401, "system", "本次人工服务已结束。请为本次服务打分（1-5 星）：", {}),
    ("conv-b", 410, "customer", '/csat{"stars":5}', {}),
    ("conv-b", 420, "customer", '/csat{"stars":1}', {}),  # a second click: the desk took the first only
    ("conv-c", 3600, "customer", "hello again, still no parcel", {}),
    ("conv-c", 3620, "bot", "Let me check.", {}),
    ("conv-c", 3640, "agent", "Hi, I'm on it.", {"author": "a2"}),
    ("conv-d", 86400, "customer", "I want a human", {}),
    ("conv-d", 86401, "bot", "Connecting you to an agent.", {}),
    ("conv-e", 7 * 86400, "customer", "hi", {}),  # outside the range
    ("conv-e", 7 * 86400 + 1, "bot", "Hello!", {}),
]
# (handoff, conversation, reason, agent, resolution, channel, language)
HANDOFFS = [("h-b", "conv-b", "high_frustration", "a1", "resolved", "webchat", "zh"),
            ("h-c", "conv-c", "explicit_request", "a2", "", "webchat", "en"),
            ("h-d", "conv-d", "explicit_request", "", "", "telegram", "en")]
# (seconds after T0, desk event type, handoff, conversation)
DESK_EVENTS = [(120, "queued", "h-b", "conv-b"), (130, "claimed", "h-b", "conv-b"), (400, "closed", "h-b", "conv-b"),
               (3630, "queued", "h-c", "conv-c"), (3635, "claimed", "h-c", "conv-c"),
               (3700, "handed_back", "h-c", "conv-c"), (86410, "queued", "h-d", "conv-d")]


def _id(seconds: float, seq: int = 0) -> str:
    return f"{int(round((T0 + seconds) * 1000))}-{seq}"


TIERS = {"conv-b": "gold"}  # B's customer is a Gold member (a VIP tier of data/store_policy.yml); the others regular


async def seed(redis: Redis) -> None:
    for cid, channel, ui_lang, device in CONVERSATIONS:
        await redis.hset(keys.conversation(cid), mapping={"channel": channel, "ui_lang": ui_lang, "device": device,
                                                          "created_at": T0})
    for cid, seconds, role, text, extra in MESSAGES:
        fields: dict[str, Any] = {"role": role, "text": text, "buttons": "[]", "ts": repr(T0 + seconds), **extra}
        await redis.xadd(keys.messages(cid), fields, id=_id(seconds))
    for hid, cid, reason, agent, resolution, channel, language in HANDOFFS:
        await redis.hset(keys.handoff(hid), mapping={
            "id": hid, "conversation_id": cid, "reason_code": reason, "priority": 2, "tier": TIERS.get(cid, "regular"),
            "language": language, "channel": channel, "customer_id": "", "agent_id": agent, "resolution": resolution})
    for seconds, kind, hid, cid in DESK_EVENTS:
        await redis.xadd(keys.desk_events(), {"type": kind, "handoff_id": hid, "conversation_id": cid},
                         id=_id(seconds))


# Complaint SLA seed, times relative to ``now`` (a complaint's lateness depends on the clock): (conversation, queued
# this long ago, first agent reply this long after queueing or None, reason). X answered after 10 h (within 24 h);
# Y never answered, 50 h old (late at 24 h and escalated at 48 h); Z answered after 26 h (late, not escalated); W an
# explicit request (not a complaint) answered after a minute.
COMPLAINTS = [("cx", 50 * 3600, 10 * 3600, "complaint"), ("cy", 50 * 3600 - 2, None, "complaint"),
              ("cz", 30 * 3600, 26 * 3600, "complaint"), ("cw", 30 * 3600 - 2, 60, "explicit_request")]
# The types the closing agents chose (handoff/handoffs.py: COMPLAINT_TYPES); Y has none yet (unclassified).
COMPLAINT_TYPES = {"cx": "product", "cz": "attitude"}


async def seed_complaints(redis: Redis, now: float, prefix: str = "") -> None:
    """The handoffs of COMPLAINTS (conversation ids ``prefix + cid``) in the desk's and the gateway's formats; each
    customer's first message carries a phone number (masked in the record)."""
    events = []
    for cid, ago, reply_after, reason in COMPLAINTS:
        cid = prefix + cid
        t0 = now - ago
        await redis.hset(keys.conversation(cid), mapping={"channel": "webchat", "ui_lang": "en"})
        await redis.hset(keys.handoff("h-" + cid), mapping={
            "id": "h-" + cid, "conversation_id": cid, "reason_code": reason, "priority": 2, "tier": "regular",
            "language": "en", "channel": "webchat", "customer_id": "", "agent_id": "a1", "resolution": "",
            **({"complaint_type": COMPLAINT_TYPES[cid[len(prefix):]]} if cid[len(prefix):] in COMPLAINT_TYPES else {})})
        await redis.xadd(keys.messages(cid), {"role": "customer", "text": "this is unacceptable, call 13812345678",
                                              "ts": repr(t0)}, id=f"{int(t0 * 1000)}-0")
        events.append((t0 + 5, "queued", cid))
        if reply_after is not None:
            t1 = t0 + 5 + reply_after
            events.append((t1 - 1, "claimed", cid))
            await redis.xadd(keys.messages(cid), {"role": "agent", "text": "sorry", "author": "a1", "ts": repr(t1)},
                             id=f"{int(t1 * 1000)}-0")
    for ts, kind, cid in sorted(events):
        await redis.xadd(keys.desk_events(), {"type": kind, "handoff_id": "h-" + cid, "conversation_id": cid},
                         id=f"{int(ts * 1000)}-0")


# Presence minutes of the desk on T0's day (analytics/presence.py writes such rows once a minute; no stream carries
# presence): a1 online 8 minutes, owning 1 of 3 conversations in 6 of them; a2 online 4 minutes, owning 1 of 3 in 2.
# Load: a1 (6/3)/8 = 0.25, a2 (2/3)/4 = 0.1667, desk (8/3)/12 = 0.2222; occupancy a1 0.75, a2 0.5, desk 0.6667.
PRESENCE = [("a1", 8, 6), ("a2", 4, 2)]


def seed_presence(engine: Any) -> int:
    day = datetime.fromtimestamp(T0, timezone.utc).astimezone(ZoneInfo("Asia/Shanghai"))
    rows = [{"agent_id": agent, "minute_ts": int(T0 // 60 * 60) + 60 * i, "day": day.strftime("%Y-%m-%d"),
             "hour": day.hour, "owned": 1 if i < busy else 0, "max_concurrent": 3}
            for agent, online, busy in PRESENCE for i in range(online)]
    return db.write_minutes(engine, rows)

