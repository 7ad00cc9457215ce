"""The KPIs of docs/KPIS.md, each one SQL aggregate over the event record (no rows are walked in Python).

Every figure is about one cohort: the conversations that STARTED in the date range (China-time days, inclusive),
on the channel / in the language asked for, with at least one customer message. Handoffs, replies, CSAT answers
and so on count for the conversation they belong to, whenever they happened. A rate whose denominator is 0 is
``None`` (the page shows "no data"), never a division by zero.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Engine, text

SLA_FIRST_RESPONSE_S = 15.0
REPEAT_WINDOW_S = 7 * 24 * 3600
TOP_QUESTIONS = 20  # KB coverage: the most frequent customer questions looked at
COVERED_SHARE = 0.5  # a question is covered when at least this share of its askings got a KB answer
COMPLAINT_ANSWER_S = 24 * 3600  # handoff/complaints.py: ANSWER_S / ESCALATE_S
COMPLAINT_ESCALATE_S = 48 * 3600
CLOSE_KINDS = "('handoff_closed', 'handoff_handed_back')"
TAKE_KINDS = "('handoff_claimed', 'handoff_assigned')"
# The seed reports' targets (docs/KPIS.md "Targets"; the 2025 Q3 service-efficiency review of the seeds): AI
# deflection 60 %, first-contact resolution 72 %, CSAT 4.5 of 5, online first response within 15 s for 80 % (so at
# most 20 % breaches), AI covering 90 % of the high-frequency questions, agent load 70-80 % (人工坐席负载均衡度).
# "min": the figure should be at least this; "max": at most (both: a band). A KPI not listed here has no target in
# the seed reports.
TARGETS: dict[str, dict[str, float]] = {
    "bot_resolution": {"min": 0.60},
    "first_contact_resolution": {"min": 0.72},
    "kb_coverage": {"min": 0.90},
    "csat": {"min": 4.5},
    "sla_breach_rate": {"max": 0.20},
    "agent_load": {"min": 0.70, "max": 0.80},
}


@dataclass(frozen=True)
class Filters:
    start: str  # YYYY-MM-DD, China time, inclusive
    end: str
    channel: str | None = None
    language: str | None = None

    def params(self) -> dict[str, Any]:
        return {"d0": self.start, "d1": self.end, "channel": self.channel, "language": self.language,
                "sla": SLA_FIRST_RESPONSE_S, "now": time.time(), "repeat_s": REPEAT_WINDOW_S,
                "c24": COMPLAINT_ANSWER_S, "c48": COMPLAINT_ESCALATE_S}


def _cohort(f: Filters) -> str:
    only = ("AND v.channel = :channel " if f.channel else "") + ("AND v.language = :language" if f.language else "")
    return """
c AS (
  SELECT v.conversation_id, v.channel, v.language, v.started_ts, v.day, v.hour, v.dow, v.customer_ref
  FROM analytics_conversations v
  WHERE v.day >= :d0 AND v.day <= :d1
    """ + only + """
    AND EXISTS (SELECT 1 FROM analytics_events m WHERE m.conversation_id = v.conversation_id
                AND m.kind = 'message_customer')
),
cf AS (
  SELECT c.*,
    (SELECT MIN(m.ts) FROM analytics_events m WHERE m.conversation_id = c.conversation_id
       AND m.kind = 'message_customer') AS first_customer_ts,
    (SELECT COUNT(*) FROM analytics_events m WHERE m.conversation_id = c.conversation_id
       AND m.kind = 'handoff_queued') AS handoffs
  FROM c
),
cv AS (
  SELECT cf.*,
    (SELECT MIN(m.ts) FROM analytics_events m WHERE m.conversation_id = cf.conversation_id
       AND m.kind = 'message_bot' AND m.ts >= cf.first_customer_ts) AS first_bot_ts,
    CASE WHEN cf.customer_ref IS NOT NULL AND EXISTS (
       SELECT 1 FROM analytics_conversations p WHERE p.customer_ref = cf.customer_ref
         AND p.conversation_id <> cf.conversation_id AND p.started_ts < cf.started_ts
         AND p.started_ts >= cf.started_ts - :repeat_s) THEN 1 ELSE 0 END AS is_repeat
  FROM cf
),
hb AS (
  SELECT e.handoff_id, e.conversation_id, c.day, c.channel, c.language,
    MIN(CASE WHEN e.kind = 'handoff_queued' THEN e.ts END) AS queued_ts,
    MIN(CASE WHEN e.kind IN """ + TAKE_KINDS + """ THEN e.ts END) AS taken_ts,
    MAX(CASE WHEN e.kind IN """ + CLOSE_KINDS + """ THEN e.ts END) AS closed_ts,
    MAX(CASE WHEN e.kind = 'handoff_queued' THEN e.reason END) AS reason,
    MAX(CASE WHEN e.kind = 'handoff_queued' THEN e.tier END) AS tier,
    MAX(CASE WHEN e.kind = 'handoff_queued' AND e.in_hours THEN 1 ELSE 0 END) AS in_hours,
    MAX(CASE WHEN e.kind IN """ + CLOSE_KINDS + """ THEN e.agent_id END) AS closed_by,
    MAX(CASE WHEN e.kind = 'handoff_closed' THEN 1 ELSE 0 END) AS closed,
    MAX(CASE WHEN e.ticket_id IS NOT NULL THEN 1 ELSE 0 END) AS ticket,
    MAX(e.complaint_type) AS complaint_type
  FROM analytics_events e JOIN c ON c.conversation_id = e.conversation_id
  WHERE e.handoff_id IS NOT NULL AND e.kind LIKE 'handoff%'
  GROUP BY e.handoff_id, e.conversation_id, c.day, c.channel, c.language
),
h AS (
  SELECT hb.*,
    (SELECT MIN(m.ts) FROM analytics_events m WHERE m.conversation_id = hb.conversation_id
       AND m.kind = 'message_agent' AND m.ts >= hb.queued_ts
       AND (hb.closed_ts IS NULL OR m.ts <= hb.closed_ts)) AS first_agent_ts
  FROM hb WHERE hb.queued_ts IS NOT NULL
),
cs AS (
  SELECT e.conversation_id, c.day, c.channel, c.language, e.ts, e.stars,
    (SELECT x.handoff_id FROM analytics_events x WHERE x.conversation_id = e.conversation_id
       AND x.kind = 'handoff_closed' AND x.ts <= e.ts ORDER BY x.ts DESC LIMIT 1) AS rated
  FROM analytics_events e JOIN c ON c.conversation_id = e.conversation_id
  WHERE e.kind = 'csat'
),
csat AS (
  SELECT cs.* FROM cs WHERE cs.ts = (SELECT MIN(y.ts) FROM cs y WHERE y.conversation_id = cs.conversation_id
                                       AND COALESCE(y.rated, '') = COALESCE(cs.rated, ''))
)"""  # noqa: S608 - fixed fragments only; values are bound parameters


def _with(body: str, f: Filters) -> str:
    return "WITH " + _cohort(f) + "\n" + body


def _rate(part: Any, whole: Any) -> float | None:
    return round(float(part) / float(whole), 4) if whole else None


def _avg(total: Any, count: Any) -> float | None:
    return float(total) / float(count) if count else None


def _round(value: Any, digits: int = 1) -> float | None:
    return None if value is None else round(float(value), digits)


# An identified conversation whose customer started another conversation within REPEAT_WINDOW_S after it (first-contact
# resolution's complement; the summary and the drill-down share it).
CAME_BACK = """EXISTS (
        SELECT 1 FROM analytics_conversations n WHERE n.customer_ref = cv.customer_ref
          AND n.conversation_id <> cv.conversation_id AND n.started_ts > cv.started_ts
          AND n.started_ts <= cv.started_ts + :repeat_s)"""


# A complaint handoff first answered by an agent more than 24 h after it was queued, or still unanswered after 24 h
# (summary.complaints.breaches_24h); the same with 48 h is one a supervisor must have been escalated to
# (summary.complaints.escalated_48h, handoff/complaints.py). Over the ``h`` CTE; the summary and the drill-downs
# share them.
COMPLAINT_LATE = """(h.reason = 'complaint' AND (
        (h.first_agent_ts IS NOT NULL AND h.first_agent_ts - h.queued_ts > :{s})
        OR (h.first_agent_ts IS NULL AND :now - h.queued_ts > :{s})))"""
COMPLAINT_LATE_24H = COMPLAINT_LATE.format(s="c24")
COMPLAINT_ESCALATED_48H = COMPLAINT_LATE.format(s="c48")

# Every customer message of the cohort (not a CSAT answer) with the bot message that answered it: the first bot message
# after it and before the customer's next message (none: the bot did not answer, e.g. an agent owned the
# conversation). ``source`` is that answer's (analytics/consumer.py: bot_source): kb (with kb_id, kb_score), flow,
# fallback, unknown. KB coverage, bot answers by source and the sources table read it.
ANSWERS = """
, qa AS (
  SELECT m.conversation_id, c.day, c.channel, c.language, LOWER(TRIM(m.text)) AS question,
    (SELECT b.id FROM analytics_events b WHERE b.conversation_id = m.conversation_id
       AND b.kind = 'message_bot' AND b.ts >= m.ts
       AND NOT EXISTS (SELECT 1 FROM analytics_events n WHERE n.conversation_id = m.conversation_id
                       AND n.kind = 'message_customer' AND n.ts > m.ts AND n.ts <= b.ts)
     ORDER BY b.ts, b.id LIMIT 1) AS answer_id
  FROM analytics_events m JOIN c ON c.conversation_id = m.conversation_id
  WHERE m.kind = 'message_customer' AND m.text IS NOT NULL AND TRIM(m.text) <> ''),
ans AS (
  SELECT qa.conversation_id, qa.day, qa.channel, qa.language, qa.question, a.source, a.kb_id, a.kb_score
  FROM qa LEFT JOIN analytics_events a ON a.id = qa.answer_id)
"""
SOURCES = ("kb", "flow", "fallback", "unknown")
# A handoff in service hours first answered by an agent more than 15 s after it was queued, or never (closed without an
# answer, or still waiting past 15 s). Over the ``h`` CTE; the summary and the tiers table share it.
HUMAN_SLA_BREACH = """h.in_hours = 1 AND ((h.first_agent_ts IS NOT NULL AND h.first_agent_ts - h.queued_ts > :sla)
        OR (h.first_agent_ts IS NULL AND (h.closed_ts IS NOT NULL OR :now - h.queued_ts > :sla)))"""
IN_H = "EXISTS (SELECT 1 FROM h WHERE h.conversation_id = cv.conversation_id AND {})"  # a handoff of the conversation


# A figure over a long range is summed from per-day partial aggregates instead of walking every event again
# (analytics/rollup.py builds them for settled days). Each part below is one table's partial aggregates: ``sql``
# selects ``{dims}`` (nothing, or the day, channel and language a rollup row is kept under), then the part's keys,
# then its values, and ends in ``{group}``. Sums add up and maxima take the largest across days, channels and
# languages, so a range's figures are the same whether its days are read from the events or from their rollups
# (tests/analytics/test_rollup.py compares both on every table). An average is kept as a sum and a count.
ROLL_DIMS = ("day", "channel", "language")
QUESTIONS_KEPT = 200  # rolled questions kept per day, channel and language: that day's most frequent


@dataclass(frozen=True)
class Part:
    sql: str
    sums: tuple[str, ...]
    maxes: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()
    cohort: bool = True  # over the cohort CTEs (presence is not: it has no channel or language)
    dims: tuple[str, ...] = ROLL_DIMS
    keep: int | None = None  # rolled rows kept per day, channel and language (largest first sum first)

    @property
    def values(self) -> tuple[str, ...]:
        return self.sums + self.maxes

    def query(self, roll: bool) -> str:
        dims = [d for d in self.dims if d not in self.keys] if roll else []
        group = dims + list(self.keys)
        return self.sql.format(dims="".join(d + ", " for d in dims),
                               group=(" GROUP BY " + ", ".join(group)) if group else "")


PARTS: dict[str, Part] = {
    "conv": Part("""
SELECT {dims}COUNT(*) AS conversations,
  SUM(CASE WHEN handoffs = 0 THEN 1 ELSE 0 END) AS bot_resolved,
  SUM(CASE WHEN handoffs > 0 THEN 1 ELSE 0 END) AS handed_off,
  COUNT(first_bot_ts) AS bot_answered,
  SUM(first_bot_ts - first_customer_ts) AS bot_frt_sum,
  MAX(first_bot_ts - first_customer_ts) AS bot_frt_max,
  SUM(CASE WHEN (first_bot_ts IS NOT NULL AND first_bot_ts - first_customer_ts > :sla)
            OR (first_bot_ts IS NULL AND handoffs = 0 AND :now - first_customer_ts > :sla) THEN 1 ELSE 0 END)
    AS bot_sla_breaches,
  SUM(CASE WHEN customer_ref IS NOT NULL THEN 1 ELSE 0 END) AS identified,
  SUM(is_repeat) AS repeat_contacts,
  SUM(CASE WHEN customer_ref IS NOT NULL AND NOT """ + CAME_BACK + """ THEN 1 ELSE 0 END) AS first_contact_resolved
FROM cv{group}""", sums=("conversations", "bot_resolved", "handed_off", "bot_answered", "bot_frt_sum",
                         "bot_sla_breaches", "identified", "repeat_contacts", "first_contact_resolved"),
                 maxes=("bot_frt_max",)),
    "daily": Part("""
SELECT {dims}day, COUNT(*) AS conversations, SUM(CASE WHEN handoffs = 0 THEN 1 ELSE 0 END) AS bot_resolved,
  SUM(CASE WHEN handoffs > 0 THEN 1 ELSE 0 END) AS handed_off, COUNT(first_bot_ts) AS bot_answered,
  SUM(first_bot_ts - first_customer_ts) AS bot_frt_sum
FROM cv{group}""", keys=("day",), sums=("conversations", "bot_resolved", "handed_off", "bot_answered", "bot_frt_sum")),
    "heatmap": Part("""
SELECT {dims}dow, hour, COUNT(*) AS conversations, SUM(CASE WHEN handoffs > 0 THEN 1 ELSE 0 END) AS handed_off
FROM cv{group}""", keys=("dow", "hour"), sums=("conversations", "handed_off")),
    "hand": Part("""
SELECT {dims}COUNT(*) AS handoffs,
  SUM(in_hours) AS in_hours,
  COUNT(CASE WHEN in_hours = 1 THEN first_agent_ts END) AS human_answered,
  SUM(CASE WHEN in_hours = 1 THEN first_agent_ts - queued_ts END) AS human_frt_sum,
  MAX(CASE WHEN in_hours = 1 THEN first_agent_ts - queued_ts END) AS human_frt_max,
  SUM(CASE WHEN """ + HUMAN_SLA_BREACH + """ THEN 1 ELSE 0 END) AS human_sla_breaches,
  COUNT(closed_ts) AS resolved,
  SUM(closed) AS closed,
  SUM(closed_ts - queued_ts) AS resolution_sum,
  MAX(closed_ts - queued_ts) AS resolution_max,
  SUM(taken_ts - queued_ts) AS queue_wait_sum,
  COUNT(taken_ts) AS queue_wait_n,
  SUM(ticket) AS tickets,
  SUM(CASE WHEN reason = 'complaint' THEN 1 ELSE 0 END) AS complaints,
  SUM(CASE WHEN reason = 'complaint' AND first_agent_ts - queued_ts <= :c24 THEN 1 ELSE 0 END) AS complaints_24h,
  SUM(CASE WHEN """ + COMPLAINT_LATE_24H + """ THEN 1 ELSE 0 END) AS complaints_late_24h,
  SUM(CASE WHEN """ + COMPLAINT_ESCALATED_48H + """ THEN 1 ELSE 0 END) AS complaints_over_48h
FROM h{group}""", sums=("handoffs", "in_hours", "human_answered", "human_frt_sum", "human_sla_breaches", "resolved",
                        "closed", "resolution_sum", "queue_wait_sum", "queue_wait_n", "tickets", "complaints",
                        "complaints_24h", "complaints_late_24h", "complaints_over_48h"),
                 maxes=("human_frt_max", "resolution_max")),
    "csat": Part("""
SELECT {dims}CASE WHEN rated IS NULL THEN 'bot' ELSE 'agents' END AS who, COUNT(*) AS answers,
  SUM(stars) AS stars_sum, SUM(CASE WHEN stars >= 4 THEN 1 ELSE 0 END) AS satisfied
FROM csat{group}""", keys=("who",), sums=("answers", "stars_sum", "satisfied")),
    # the score distribution: CSAT answers per number of stars, for the bot and for agents
    "scores": Part("""
SELECT {dims}CASE WHEN rated IS NULL THEN 'bot' ELSE 'agents' END AS who, stars, COUNT(*) AS answers
FROM csat{group}""", keys=("who", "stars"), sums=("answers",)),
    # complaint handoffs by the type the closing agent chose (none yet: unclassified)
    "complaint_types": Part("""
SELECT {dims}COALESCE(complaint_type, 'unclassified') AS complaint_type, COUNT(*) AS complaints,
  SUM(CASE WHEN first_agent_ts IS NOT NULL THEN 1 ELSE 0 END) AS answered
FROM h WHERE reason = 'complaint'{group}""", keys=("complaint_type",), sums=("complaints", "answered")),
    "answers": Part(ANSWERS.lstrip() + """
SELECT {dims}COUNT(*) AS messages, COUNT(source) AS answered,
  SUM(CASE WHEN source = 'kb' THEN 1 ELSE 0 END) AS kb,
  SUM(CASE WHEN source = 'flow' THEN 1 ELSE 0 END) AS flow,
  SUM(CASE WHEN source = 'fallback' THEN 1 ELSE 0 END) AS fallback,
  SUM(CASE WHEN source = 'unknown' THEN 1 ELSE 0 END) AS unknown
FROM ans{group}""", sums=("messages", "answered", *SOURCES)),
    "questions": Part(ANSWERS.lstrip() + """
SELECT {dims}question, COUNT(*) AS asked, SUM(CASE WHEN source = 'kb' THEN 1 ELSE 0 END) AS kb_answered
FROM ans{group}""", keys=("question",), sums=("asked", "kb_answered"), keep=QUESTIONS_KEPT),
    "sources": Part(ANSWERS.lstrip() + """
SELECT {dims}source, kb_id, COUNT(*) AS answers, SUM(kb_score) AS score_sum, COUNT(kb_score) AS score_n
FROM ans WHERE source IS NOT NULL{group}""", keys=("source", "kb_id"), sums=("answers", "score_sum", "score_n")),
    "reasons": Part("""
SELECT {dims}COALESCE(reason, 'unknown') AS reason, COUNT(*) AS handoffs FROM h{group}""",
                    keys=("reason",), sums=("handoffs",)),
    "tiers": Part("""
SELECT {dims}COALESCE(tier, 'unknown') AS tier, COUNT(*) AS handoffs, COUNT(taken_ts) AS taken,
  SUM(taken_ts - queued_ts) AS queue_wait_sum, MAX(taken_ts - queued_ts) AS queue_wait_max,
  SUM(in_hours) AS in_hours,
  SUM(CASE WHEN in_hours = 1 THEN first_agent_ts - queued_ts END) AS human_frt_sum,
  COUNT(CASE WHEN in_hours = 1 THEN first_agent_ts END) AS human_frt_n,
  SUM(CASE WHEN """ + HUMAN_SLA_BREACH + """ THEN 1 ELSE 0 END) AS human_sla_breaches
FROM h{group}""", keys=("tier",), sums=("handoffs", "taken", "queue_wait_sum", "in_hours", "human_frt_sum",
                                        "human_frt_n", "human_sla_breaches"), maxes=("queue_wait_max",)),
    # handoffs taken (claimed or assigned), replies written, handoffs closed or handed back (with the handling time
    # from taking it) and the CSAT answers rating them, per desk member
    "agents": Part("""
, ag AS (
  SELECT c.day, c.channel, c.language, e.agent_id, COUNT(DISTINCT e.handoff_id) AS handoffs, 0 AS replies,
    0 AS closed, 0 AS handle_sum, 0 AS handle_n, 0 AS csat_answers, 0 AS csat_sum
  FROM analytics_events e JOIN c ON c.conversation_id = e.conversation_id
  WHERE e.kind IN """ + TAKE_KINDS + """ AND e.agent_id IS NOT NULL GROUP BY c.day, c.channel, c.language, e.agent_id
  UNION ALL
  SELECT c.day, c.channel, c.language, e.agent_id, 0, COUNT(*), 0, 0, 0, 0, 0
  FROM analytics_events e JOIN c ON c.conversation_id = e.conversation_id
  WHERE e.kind = 'message_agent' AND e.agent_id IS NOT NULL GROUP BY c.day, c.channel, c.language, e.agent_id
  UNION ALL
  SELECT day, channel, language, closed_by, 0, 0, COUNT(*), SUM(closed_ts - taken_ts), COUNT(closed_ts - taken_ts),
    0, 0
  FROM h WHERE closed_by IS NOT NULL AND closed_ts IS NOT NULL GROUP BY day, channel, language, closed_by
  UNION ALL
  SELECT h.day, h.channel, h.language, h.closed_by, 0, 0, 0, 0, 0, COUNT(*), SUM(csat.stars)
  FROM csat JOIN h ON h.handoff_id = csat.rated WHERE h.closed_by IS NOT NULL
  GROUP BY h.day, h.channel, h.language, h.closed_by)
SELECT {dims}agent_id, SUM(handoffs) AS handoffs, SUM(replies) AS replies, SUM(closed) AS closed,
  SUM(handle_sum) AS handle_sum, SUM(handle_n) AS handle_n, SUM(csat_answers) AS csat_answers,
  SUM(csat_sum) AS csat_sum
FROM ag{group}""".lstrip(),  # noqa: S608 - fixed SQL
                   keys=("agent_id",), sums=("handoffs", "replies", "closed", "handle_sum", "handle_n",
                                             "csat_answers", "csat_sum")),
    # Presence minutes (analytics/presence.py) of the period's days: online, busy (owning a conversation), load.
    # Presence has no channel or language: those filters do not apply to it.
    "presence": Part("""
SELECT {dims}agent_id, COUNT(*) AS online, SUM(CASE WHEN owned > 0 THEN 1 ELSE 0 END) AS busy,
  SUM(CASE WHEN max_concurrent > 0 THEN 1.0 * owned / max_concurrent END) AS load_sum,
  COUNT(CASE WHEN max_concurrent > 0 THEN 1 END) AS load_n
FROM analytics_agent_minutes WHERE day >= :d0 AND day <= :d1{group}""",
                     keys=("agent_id",), sums=("online", "busy", "load_sum", "load_n"), cohort=False, dims=("day",)),
}
# A day is rolled up once this long has passed since its latest event (a day still being written to is read from
# its events: rolling it after every message would be wasted work).
SETTLE_S = 300.0
# Without a new event, a day's figures change only through the clock, at the first of these moments still ahead:
# a customer message the bot has not answered turns into a 15-s breach, so does an unanswered handoff in service
# hours, and an unanswered complaint becomes late at 24 h and escalated at 48 h (the ``:now`` terms above). A rolled
# day is read from its rollup only until then, and rolled again after it.
NEXT_CHANGE = """
SELECT MIN(t) AS t FROM (
  SELECT first_customer_ts + :sla AS t FROM cv WHERE first_bot_ts IS NULL AND handoffs = 0
  UNION ALL SELECT queued_ts + :sla FROM h WHERE in_hours = 1 AND first_agent_ts IS NULL AND closed_ts IS NULL
  UNION ALL SELECT queued_ts + :c24 FROM h WHERE reason = 'complaint' AND first_agent_ts IS NULL
  UNION ALL SELECT queued_ts + :c48 FROM h WHERE reason = 'complaint' AND first_agent_ts IS NULL
) x WHERE t > :now"""


def _key(row: Any, part: Part) -> str:
    return json.dumps([row[k] for k in part.keys], ensure_ascii=False)


def _merge(acc: dict[str, dict[str, Any]], part: Part, key: str, row: Any) -> None:
    """Add one partial row into ``acc[key]``: sums add (a missing value is 0), maxima keep the largest."""
    into = acc.setdefault(key, {**{v: 0 for v in part.sums}, **{v: None for v in part.maxes}})
    for v in part.sums:
        into[v] += row[v] or 0
    for v in part.maxes:
        if row[v] is not None and (into[v] is None or row[v] > into[v]):
            into[v] = row[v]


def _runs(days: list[str]) -> list[tuple[str, str]]:
    """Consecutive calendar days as (first, last) ranges."""
    out: list[tuple[str, str]] = []
    for day in sorted(days):
        if out and (date.fromisoformat(out[-1][1]) + timedelta(days=1)).isoformat() == day:
            out[-1] = (out[-1][0], day)
        else:
            out.append((day, day))
    return out


def _between(runs: list[tuple[str, str]], prefix: str) -> tuple[str, dict[str, str]]:
    sql = " OR ".join(f"day BETWEEN :{prefix}{i}a AND :{prefix}{i}b" for i in range(len(runs)))
    params = {f"{prefix}{i}{ab}": d for i, run in enumerate(runs) for ab, d in zip("ab", run)}
    return f"({sql})", params


class Kpis:
    def __init__(self, engine: Engine, priority_tiers: frozenset[str] = frozenset()) -> None:
        self.engine = engine
        self.priority_tiers = priority_tiers  # data/store_policy.yml membership.priority_tiers (the VIP tiers)

    def _rows(self, sql: str, f: Filters, **extra: Any) -> list[dict[str, Any]]:
        with self.engine.connect() as db:
            return [dict(r._mapping) for r in db.execute(text(_with(sql, f)), {**f.params(), **extra})]

    def _days(self, f: Filters) -> tuple[list[str], list[str]]:
        """The period's days with data: those whose rollup is up to date, and the others (read from the events)."""
        with self.engine.connect() as db:
            rows = db.execute(text("SELECT day, CASE WHEN rolled_version = version AND (valid_until IS NULL "
                                   "OR valid_until > :now) THEN 1 ELSE 0 END AS rolled "
                                   "FROM analytics_rollup_days WHERE day >= :d0 AND day <= :d1"),
                              {"d0": f.start, "d1": f.end, "now": time.time()}).all()
        return [r.day for r in rows if r.rolled], [r.day for r in rows if not r.rolled]

    def part(self, name: str, f: Filters) -> list[dict[str, Any]]:
        """One part's merged aggregates over the period: rolled days from their rollups, other days from the events.
        One row per key (a part without keys: exactly one row)."""
        part = PARTS[name]
        rolled, live = self._days(f)
        acc: dict[str, dict[str, Any]] = {} if part.keys else {"[]": {**{v: 0 for v in part.sums},
                                                                       **{v: None for v in part.maxes}}}
        for d0, d1 in _runs(live):
            sql = part.query(roll=False)
            g = Filters(d0, d1, f.channel, f.language)
            with self.engine.connect() as db:
                for r in db.execute(text(_with(sql, g) if part.cohort else sql), g.params()):
                    _merge(acc, part, _key(r._mapping, part), r._mapping)
        if rolled:
            where, params = _between(_runs(rolled), "r")
            if part.cohort:
                where += "".join(f" AND {k} = :{k}" for k in ("channel", "language") if getattr(f, k))
            cols = ", ".join([f"SUM(v{i}) AS {v}" for i, v in enumerate(part.sums)]
                             + [f"MAX(v{len(part.sums) + i}) AS {v}" for i, v in enumerate(part.maxes)])
            with self.engine.connect() as db:
                for r in db.execute(text(f"SELECT key, {cols} FROM analytics_rollup WHERE part = :part AND {where} "  # noqa: S608 - fixed names, bound values
                                         "GROUP BY key"),
                                    {"part": name, "channel": f.channel, "language": f.language, **params}):
                    _merge(acc, part, r.key, r._mapping)
        return [{**dict(zip(part.keys, json.loads(key))), **values} for key, values in acc.items()]

    def rollup_rows(self, db: Any, day: str, now: float) -> list[dict[str, Any]]:
        """Every part's partial aggregates of one day, per channel and language: the rows analytics/rollup.py
        stores for it (on ``db``, the rollup's transaction)."""
        out: list[dict[str, Any]] = []
        f = Filters(day, day)
        for name, part in PARTS.items():
            sql = part.query(roll=True)
            groups: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
            for r in db.execute(text(_with(sql, f) if part.cohort else sql), {**f.params(), "now": now}):
                m = r._mapping
                _merge(groups.setdefault((m.get("channel", ""), m.get("language", "")), {}), part, _key(m, part), m)
            for (channel, language), acc in groups.items():
                items = sorted(acc.items(), key=lambda kv: -(kv[1][part.sums[0]] or 0))[:part.keep]
                out += [{"part": name, "day": day, "channel": channel, "language": language, "key": key,
                         **{f"v{i}": values[v] for i, v in enumerate(part.values)}} for key, values in items]
        return out

    def next_change(self, db: Any, day: str, now: float) -> float | None:
        """When the clock next changes a figure of the day (None: never, without a new event)."""
        f = Filters(day, day)
        return db.execute(text(_with(NEXT_CHANGE, f)), {**f.params(), "now": now}).scalar()

    def _one(self, name: str, f: Filters) -> dict[str, Any]:
        return self.part(name, f)[0]

    def summary(self, f: Filters) -> dict[str, Any]:
        conv = self._one("conv", f)
        hand = self._one("hand", f)
        by_who = {r["who"]: r for r in self.part("csat", f)}
        n = int(conv["conversations"])

        def csat_of(who: str) -> dict[str, Any]:
            r = by_who.get(who) or {"answers": 0, "stars_sum": 0, "satisfied": 0}
            return {"answers": int(r["answers"]), "avg_stars": _round(_avg(r["stars_sum"], r["answers"]), 2),
                    "csat_rate": _rate(r["satisfied"], r["answers"])}

        handoffs = int(hand["handoffs"])
        in_hours = int(hand["in_hours"])
        return {
            "no_data": n == 0,
            "conversations": n,
            "bot_resolution": {"resolved": int(conv["bot_resolved"]), "rate": _rate(conv["bot_resolved"], n)},
            "handoff": {"conversations": int(conv["handed_off"]), "handoffs": handoffs,
                        "rate": _rate(conv["handed_off"], n), "tickets": int(hand["tickets"])},
            "first_response_bot": {"answered": int(conv["bot_answered"]),
                                   "avg_s": _round(_avg(conv["bot_frt_sum"], conv["bot_answered"]), 2),
                                   "max_s": _round(conv["bot_frt_max"], 2)},
            "first_response_human": {"handoffs_in_hours": in_hours, "answered": int(hand["human_answered"]),
                                     "avg_s": _round(_avg(hand["human_frt_sum"], hand["human_answered"])),
                                     "max_s": _round(hand["human_frt_max"]),
                                     "queue_wait_avg_s": _round(_avg(hand["queue_wait_sum"], hand["queue_wait_n"]))},
            "resolution_time": {"resolved": int(hand["resolved"]), "closed": int(hand["closed"]),
                                "avg_s": _round(_avg(hand["resolution_sum"], hand["resolved"])),
                                "max_s": _round(hand["resolution_max"])},
            "csat": {"bot": csat_of("bot"), "agents": csat_of("agents")},
            "sla": {"target_s": SLA_FIRST_RESPONSE_S,
                    "bot_breaches": int(conv["bot_sla_breaches"]),
                    "bot_breach_rate": _rate(conv["bot_sla_breaches"], n),
                    "human_breaches": int(hand["human_sla_breaches"]),
                    "human_breach_rate": _rate(hand["human_sla_breaches"], in_hours)},
            "complaints": {"handoffs": int(hand["complaints"]),
                           "answered_24h": int(hand["complaints_24h"]),
                           "answered_24h_rate": _rate(hand["complaints_24h"], hand["complaints"]),
                           "breaches_24h": int(hand["complaints_late_24h"]),
                           "escalated_48h": int(hand["complaints_over_48h"])},
            "first_contact_resolution": {
                "identified": int(conv["identified"]),
                "resolved": int(conv["first_contact_resolved"]),
                "rate": _rate(conv["first_contact_resolved"], conv["identified"])},
            "kb_coverage": self.kb_coverage_summary(f),
            "bot_answers": self.bot_answers(f),
            "repeat_contacts": {"identified": int(conv["identified"]),
                                "repeats": int(conv["repeat_contacts"]),
                                "rate": _rate(conv["repeat_contacts"], conv["identified"])},
            "agent_load": self.agent_load(f),
            "targets": {k: dict(v) for k, v in TARGETS.items()},
        }

    def questions(self, f: Filters) -> list[dict[str, Any]]:
        """The most frequent customer questions of the cohort (masked text, lower-cased and trimmed) and how often the
        bot's next answer came from the knowledge base (a bot message with source ``kb`` before the customer's next
        message). A rolled day keeps its QUESTIONS_KEPT most frequent questions."""
        rows = sorted(self.part("questions", f), key=lambda r: (-r["asked"], r["question"]))[:TOP_QUESTIONS]
        return [{"question": r["question"], "asked": int(r["asked"]), "kb_answered": int(r["kb_answered"]),
                 "kb_rate": _rate(r["kb_answered"], r["asked"]),
                 "covered": (int(r["kb_answered"]) / int(r["asked"])) >= COVERED_SHARE} for r in rows]

    def kb_coverage_summary(self, f: Filters) -> dict[str, Any]:
        top = self.questions(f)
        asked = sum(q["asked"] for q in top)
        return {"top_questions": len(top), "covered": sum(q["covered"] for q in top),
                "rate": _rate(sum(q["covered"] for q in top), len(top)),
                "asked": asked, "kb_answered": sum(q["kb_answered"] for q in top),
                "weighted_rate": _rate(sum(q["kb_answered"] for q in top), asked)}

    def bot_answers(self, f: Filters) -> dict[str, Any]:
        """The cohort's customer messages, how many the bot answered, and those answers by source."""
        r = self._one("answers", f)
        answered = int(r["answered"])
        return {"customer_messages": int(r["messages"]), "answered": answered,
                "by_source": {k: int(r[k]) for k in SOURCES},
                "kb_rate": _rate(r["kb"], answered), "fallback_rate": _rate(r["fallback"], answered)}

    def sources(self, f: Filters) -> list[dict[str, Any]]:
        """Bot answers by source and, for knowledge answers, by article (id, answers, average retrieval score)."""
        rows = sorted(self.part("sources", f),
                      key=lambda r: (-r["answers"], r["source"], r["kb_id"] or ""))[:200]
        total = sum(int(r["answers"]) for r in rows)
        return [{"source": r["source"], "kb_id": r["kb_id"], "answers": int(r["answers"]),
                 "share": _rate(r["answers"], total), "avg_score": _round(_avg(r["score_sum"], r["score_n"]), 3)}
                for r in rows]

    def scores(self, f: Filters) -> list[dict[str, Any]]:
        """The score distribution: for 1 to 5 stars, how many CSAT answers gave it to the bot and to agents, and each
        count's share of that side's answers."""
        counts = {(r["who"], int(r["stars"])): int(r["answers"]) for r in self.part("scores", f)
                  if r["stars"] is not None}
        total = {who: sum(n for (w, _), n in counts.items() if w == who) for who in ("bot", "agents")}
        return [{"stars": stars, **{who: counts.get((who, stars), 0) for who in ("bot", "agents")},
                 **{f"{who}_share": _rate(counts.get((who, stars), 0), total[who]) for who in ("bot", "agents")}}
                for stars in range(1, 6)]

    def complaint_types(self, f: Filters) -> list[dict[str, Any]]:
        """Complaint handoffs by type (handoff/handoffs.py: COMPLAINT_TYPES, chosen by the agent who closed it;
        ``unclassified`` until then), most frequent first, with each type's share and how many an agent answered."""
        rows = sorted(self.part("complaint_types", f), key=lambda r: (-r["complaints"], r["complaint_type"]))
        total = sum(int(r["complaints"]) for r in rows)
        return [{"complaint_type": r["complaint_type"], "complaints": int(r["complaints"]),
                 "share": _rate(r["complaints"], total), "answered": int(r["answered"])} for r in rows]

    def reasons(self, f: Filters) -> list[dict[str, Any]]:
        n = self.summary_count(f)
        rows = sorted(self.part("reasons", f), key=lambda r: (-r["handoffs"], r["reason"]))
        return [{"reason": r["reason"], "handoffs": int(r["handoffs"]), "rate": _rate(r["handoffs"], n)}
                for r in rows]

    def tiers(self, f: Filters) -> list[dict[str, Any]]:
        """Handoffs by the customer's membership tier when queued: how long each tier waited for an agent (queued ->
        claimed or assigned), its first human response in service hours and its 15-s breaches. VIP (priority) tiers
        first: the seeds promise them the front of the queue, and this table shows whether they got it."""
        out = [{"tier": r["tier"], "vip": r["tier"] in self.priority_tiers, "handoffs": int(r["handoffs"]),
                "taken": int(r["taken"]), "queue_wait_avg_s": _round(_avg(r["queue_wait_sum"], r["taken"])),
                "queue_wait_max_s": _round(r["queue_wait_max"]),
                "human_frt_avg_s": _round(_avg(r["human_frt_sum"], r["human_frt_n"])),
                "human_sla_breaches": int(r["human_sla_breaches"]),
                "human_breach_rate": _rate(r["human_sla_breaches"], r["in_hours"])} for r in self.part("tiers", f)]
        return sorted(out, key=lambda r: (not r["vip"], -r["handoffs"], r["tier"]))

    def summary_count(self, f: Filters) -> int:
        return int(self._one("conv", f)["conversations"])

    def daily(self, f: Filters) -> list[dict[str, Any]]:
        rows = sorted(self.part("daily", f), key=lambda r: r["day"])
        return [{"day": r["day"], "conversations": int(r["conversations"]), "bot_resolved": int(r["bot_resolved"]),
                 "handed_off": int(r["handed_off"]),
                 "bot_resolution_rate": _rate(r["bot_resolved"], r["conversations"]),
                 "bot_frt_avg_s": _round(_avg(r["bot_frt_sum"], r["bot_answered"]), 2)} for r in rows]

    def heatmap(self, f: Filters) -> list[dict[str, Any]]:
        rows = sorted(self.part("heatmap", f), key=lambda r: (r["dow"], r["hour"]))
        return [{k: int(v) for k, v in r.items()} for r in rows]

    def agents(self, f: Filters) -> list[dict[str, Any]]:
        rows = sorted(self.part("agents", f), key=lambda r: (-r["handoffs"], r["agent_id"]))
        total = sum(int(r["handoffs"]) for r in rows)
        out = {r["agent_id"]: {"agent_id": r["agent_id"], "handoffs": int(r["handoffs"]),
                               "share": _rate(r["handoffs"], total), "replies": int(r["replies"]),
                               "closed": int(r["closed"]), "handle_avg_s": _round(_avg(r["handle_sum"], r["handle_n"])),
                               "csat_answers": int(r["csat_answers"]),
                               "csat_avg": _round(_avg(r["csat_sum"], r["csat_answers"]), 2)}
               for r in rows}
        for p in self.presence(f):  # members online in the period who took no handoff are rows too
            row = out.setdefault(p["agent_id"], {"agent_id": p["agent_id"], "handoffs": 0, "share": _rate(0, total),
                                                 "replies": 0, "closed": 0, "handle_avg_s": None,
                                                 "csat_answers": 0, "csat_avg": None})
            row.update({k: v for k, v in p.items() if k != "agent_id"})
        for row in out.values():
            row.setdefault("online_minutes", 0)
            row.setdefault("occupancy", None)
            row.setdefault("load", None)
        return list(out.values())

    def agent_load(self, f: Filters) -> dict[str, Any]:
        """The desk's load and occupancy over the period (all members' presence minutes together)."""
        rows = self.part("presence", f)
        online, busy = sum(int(r["online"]) for r in rows), sum(int(r["busy"]) for r in rows)
        return {"online_minutes": online, "busy_minutes": busy, "occupancy": _rate(busy, online),
                "load": _round(_avg(sum(r["load_sum"] for r in rows), sum(r["load_n"] for r in rows)), 4)}

    def presence(self, f: Filters) -> list[dict[str, Any]]:
        """Occupancy and load per desk member from the presence minutes (analytics/presence.py) of the period's days.
        Presence has no channel or language: those filters do not apply to these columns."""
        return [{"agent_id": r["agent_id"], "online_minutes": int(r["online"]),
                 "occupancy": _rate(r["busy"], r["online"]), "load": _round(_avg(r["load_sum"], r["load_n"]), 4)}
                for r in sorted(self.part("presence", f), key=lambda r: r["agent_id"])]

    def conversations(self, f: Filters, segment: str = "all", reason: str | None = None, day: str | None = None,
                      hour: int | None = None, dow: int | None = None, agent: str | None = None,
                      limit: int = 500) -> list[dict[str, Any]]:
        """The conversations behind a number (drill-down): the first ``limit`` of the period by start."""
        where = {
            "all": "1 = 1",
            "bot_resolved": "cv.handoffs = 0",
            "handed_off": "cv.handoffs > 0",
            "repeat": "cv.is_repeat = 1",
            "bot_sla_breach": "((cv.first_bot_ts IS NOT NULL AND cv.first_bot_ts - cv.first_customer_ts > :sla) OR "
                              "(cv.first_bot_ts IS NULL AND cv.handoffs = 0 AND :now - cv.first_customer_ts > :sla))",
            "human_sla_breach": IN_H.format(HUMAN_SLA_BREACH),
            "csat_low": "EXISTS (SELECT 1 FROM csat WHERE csat.conversation_id = cv.conversation_id "
                        "AND csat.stars <= 2)",
            # the answers behind summary.csat.agents / .bot (a rating after a closed handoff / with none before it)
            "csat_agents": "EXISTS (SELECT 1 FROM csat WHERE csat.conversation_id = cv.conversation_id "
                           "AND csat.rated IS NOT NULL)",
            "csat_bot": "EXISTS (SELECT 1 FROM csat WHERE csat.conversation_id = cv.conversation_id "
                        "AND csat.rated IS NULL)",
            # summary.first_contact_resolution: resolved = identified and not back within 7 days
            "first_contact": "cv.customer_ref IS NOT NULL AND NOT " + CAME_BACK,
            "came_back": "cv.customer_ref IS NOT NULL AND " + CAME_BACK,
            # summary.complaints.breaches_24h / .escalated_48h: the conversations of those complaint handoffs
            "complaint_late_24h": IN_H.format(COMPLAINT_LATE_24H),
            "complaint_escalated_48h": IN_H.format(COMPLAINT_ESCALATED_48H),
        }.get(segment)
        if where is None:
            raise ValueError(f"unknown segment {segment!r}")
        extra = "".join(cond for value, cond in (
            (reason, " AND EXISTS (SELECT 1 FROM h WHERE h.conversation_id = cv.conversation_id "
                     "AND h.reason = :reason)"),
            (agent, " AND EXISTS (SELECT 1 FROM h WHERE h.conversation_id = cv.conversation_id "
                    "AND h.closed_by = :agent)"),
            (day, " AND cv.day = :day"), (hour, " AND cv.hour = :hour"), (dow, " AND cv.dow = :dow"))
            if value is not None)
        sql = f"""
SELECT cv.conversation_id, cv.started_ts, cv.day, cv.hour, cv.channel, cv.language, cv.handoffs, cv.is_repeat,
  cv.first_bot_ts - cv.first_customer_ts AS bot_frt_s,
  (SELECT MIN(h.reason) FROM h WHERE h.conversation_id = cv.conversation_id) AS reason,
  (SELECT MIN(h.first_agent_ts - h.queued_ts) FROM h WHERE h.conversation_id = cv.conversation_id) AS human_frt_s,
  (SELECT MAX(h.closed_by) FROM h WHERE h.conversation_id = cv.conversation_id) AS agent_id,
  (SELECT MIN(csat.stars) FROM csat WHERE csat.conversation_id = cv.conversation_id) AS csat
FROM cv WHERE {where} {extra}
ORDER BY cv.started_ts LIMIT :limit"""  # noqa: S608 - fixed fragments, bound values
        # The first ``limit`` conversations by start: the period is read in windows of 1, 2, 4 ... days until they
        # are found (a year's cohort is never computed whole when its first days have enough).
        rows: list[dict[str, Any]] = []
        first, last, span = date.fromisoformat(f.start), date.fromisoformat(f.end), 1
        while first <= last and len(rows) < limit:
            stop = min(last, first + timedelta(days=span - 1))
            window = Filters(first.isoformat(), stop.isoformat(), f.channel, f.language)
            rows += self._rows(sql, window, reason=reason, day=day, hour=hour, dow=dow, agent=agent,
                               limit=limit - len(rows))
            first, span = stop + timedelta(days=1), span * 2
        return [{"conversation_id": r["conversation_id"], "day": r["day"], "hour": int(r["hour"]),
                 "channel": r["channel"], "language": r["language"], "handed_off": int(r["handoffs"]) > 0,
                 "reason": r["reason"], "agent_id": r["agent_id"], "bot_frt_s": _round(r["bot_frt_s"], 2),
                 "human_frt_s": _round(r["human_frt_s"]), "csat": r["csat"], "repeat": bool(r["is_repeat"])}
                for r in rows]
