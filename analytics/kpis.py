"""The KPIs of docs/KPIS.md, each one SQL aggregate over the event record (no rows are walked in Python).

Every figure is about one cohort: the conversations that STARTED in the date range (China-time days, inclusive),
on the channel / in the language asked for, with at least one customer message. Handoffs, replies, CSAT answers
and so on count for the conversation they belong to, whenever they happened. A rate whose denominator is 0 is
``None`` (the page shows "no data"), never a division by zero.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
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
  SELECT e.handoff_id, e.conversation_id,
    MIN(CASE WHEN e.kind = 'handoff_queued' THEN e.ts END) AS queued_ts,
    MIN(CASE WHEN e.kind IN """ + TAKE_KINDS + """ THEN e.ts END) AS taken_ts,
    MAX(CASE WHEN e.kind IN """ + CLOSE_KINDS + """ THEN e.ts END) AS closed_ts,
    MAX(CASE WHEN e.kind = 'handoff_queued' THEN e.reason END) AS reason,
    MAX(CASE WHEN e.kind = 'handoff_queued' THEN e.tier END) AS tier,
    MAX(CASE WHEN e.kind = 'handoff_queued' AND e.in_hours THEN 1 ELSE 0 END) AS in_hours,
    MAX(CASE WHEN e.kind IN """ + CLOSE_KINDS + """ THEN e.agent_id END) AS closed_by,
    MAX(CASE WHEN e.kind = 'handoff_closed' THEN 1 ELSE 0 END) AS closed,
    MAX(CASE WHEN e.ticket_id IS NOT NULL THEN 1 ELSE 0 END) AS ticket
  FROM analytics_events e JOIN c ON c.conversation_id = e.conversation_id
  WHERE e.handoff_id IS NOT NULL AND e.kind LIKE 'handoff%'
  GROUP BY e.handoff_id, e.conversation_id
),
h AS (
  SELECT hb.*,
    (SELECT MIN(m.ts) FROM analytics_events m WHERE m.conversation_id = hb.conversation_id
       AND m.kind = 'message_agent' AND m.ts >= hb.queued_ts
       AND (hb.closed_ts IS NULL OR m.ts <= hb.closed_ts)) AS first_agent_ts
  FROM hb WHERE hb.queued_ts IS NOT NULL
),
cs AS (
  SELECT e.conversation_id, e.ts, e.stars,
    (SELECT x.handoff_id FROM analytics_events x WHERE x.conversation_id = e.conversation_id
       AND x.kind = 'handoff_closed' AND x.ts <= e.ts ORDER BY x.ts DESC LIMIT 1) AS rated
  FROM analytics_events e JOIN c ON c.conversation_id = e.conversation_id
  WHERE e.kind = 'csat'
),
csat AS (
  SELECT cs.* FROM cs WHERE cs.ts = (SELECT MIN(y.ts) FROM cs y WHERE y.conversation_id = cs.conversation_id
                                       AND COALESCE(y.rated, '') = COALESCE(cs.rated, ''))
)"""  # noqa: S608 - fixed fragments only; values are bound parameters


# Presence minutes (analytics/presence.py) of the period's days: online, busy (owning a conversation), average load.
PRESENCE_SQL = """
SELECT {group}COUNT(*) AS online, SUM(CASE WHEN owned > 0 THEN 1 ELSE 0 END) AS busy,
  AVG(CASE WHEN max_concurrent > 0 THEN 1.0 * owned / max_concurrent END) AS load
FROM analytics_agent_minutes WHERE day BETWEEN :d0 AND :d1{by}"""


def _with(body: str, f: Filters) -> str:
    return "WITH " + _cohort(f) + "\n" + body


def _rate(part: Any, whole: Any) -> float | None:
    return round(float(part) / float(whole), 4) if whole else None


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
  SELECT m.conversation_id, LOWER(TRIM(m.text)) AS question,
    (SELECT b.id FROM analytics_events b WHERE b.conversation_id = m.conversation_id
       AND b.kind = 'message_bot' AND b.ts >= m.ts
       AND NOT EXISTS (SELECT 1 FROM analytics_events n WHERE n.conversation_id = m.conversation_id
                       AND n.kind = 'message_customer' AND n.ts > m.ts AND n.ts <= b.ts)
     ORDER BY b.ts, b.id LIMIT 1) AS answer_id
  FROM analytics_events m JOIN c ON c.conversation_id = m.conversation_id
  WHERE m.kind = 'message_customer' AND m.text IS NOT NULL AND TRIM(m.text) <> ''),
ans AS (
  SELECT qa.conversation_id, qa.question, a.source, a.kb_id, a.kb_score
  FROM qa LEFT JOIN analytics_events a ON a.id = qa.answer_id)
"""
SOURCES = ("kb", "flow", "fallback", "unknown")
# A handoff in service hours first answered by an agent more than 15 s after it was queued, or never (closed without an
# answer, or still waiting past 15 s). Over the ``h`` CTE; the summary and the tiers table share it.
HUMAN_SLA_BREACH = """h.in_hours = 1 AND ((h.first_agent_ts IS NOT NULL AND h.first_agent_ts - h.queued_ts > :sla)
        OR (h.first_agent_ts IS NULL AND (h.closed_ts IS NOT NULL OR :now - h.queued_ts > :sla)))"""
IN_H = "EXISTS (SELECT 1 FROM h WHERE h.conversation_id = cv.conversation_id AND {})"  # a handoff of the conversation


class Kpis:
    def __init__(self, engine: Engine, priority_tiers: frozenset[str] = frozenset()) -> None:
        self.engine = engine
        self.priority_tiers = priority_tiers  # data/store_policy.yml membership.priority_tiers (the VIP tiers)

    def _rows(self, sql: str, f: Filters, **extra: Any) -> list[dict[str, Any]]:
        with self.engine.connect() as db:
            return [dict(r._mapping) for r in db.execute(text(_with(sql, f)), {**f.params(), **extra})]

    def summary(self, f: Filters) -> dict[str, Any]:
        conv = self._rows("""
SELECT COUNT(*) AS conversations,
  SUM(CASE WHEN handoffs = 0 THEN 1 ELSE 0 END) AS bot_resolved,
  SUM(CASE WHEN handoffs > 0 THEN 1 ELSE 0 END) AS handed_off,
  COUNT(first_bot_ts) AS bot_answered,
  AVG(first_bot_ts - first_customer_ts) AS bot_frt_avg_s,
  MAX(first_bot_ts - first_customer_ts) AS bot_frt_max_s,
  SUM(CASE WHEN (first_bot_ts IS NOT NULL AND first_bot_ts - first_customer_ts > :sla)
            OR (first_bot_ts IS NULL AND handoffs = 0 AND :now - first_customer_ts > :sla) THEN 1 ELSE 0 END)
    AS bot_sla_breaches,
  SUM(CASE WHEN customer_ref IS NOT NULL THEN 1 ELSE 0 END) AS identified,
  SUM(is_repeat) AS repeat_contacts,
  SUM(CASE WHEN customer_ref IS NOT NULL AND NOT """ + CAME_BACK + """ THEN 1 ELSE 0 END) AS first_contact_resolved
FROM cv""", f)[0]
        hand = self._rows("""
SELECT COUNT(*) AS handoffs,
  SUM(in_hours) AS in_hours,
  COUNT(CASE WHEN in_hours = 1 THEN first_agent_ts END) AS human_answered,
  AVG(CASE WHEN in_hours = 1 THEN first_agent_ts - queued_ts END) AS human_frt_avg_s,
  MAX(CASE WHEN in_hours = 1 THEN first_agent_ts - queued_ts END) AS human_frt_max_s,
  SUM(CASE WHEN """ + HUMAN_SLA_BREACH + """ THEN 1 ELSE 0 END) AS human_sla_breaches,
  COUNT(closed_ts) AS resolved,
  SUM(closed) AS closed,
  AVG(closed_ts - queued_ts) AS resolution_avg_s,
  MAX(closed_ts - queued_ts) AS resolution_max_s,
  AVG(taken_ts - queued_ts) AS queue_wait_avg_s,
  SUM(ticket) AS tickets,
  SUM(CASE WHEN reason = 'complaint' THEN 1 ELSE 0 END) AS complaints,
  SUM(CASE WHEN reason = 'complaint' AND first_agent_ts - queued_ts <= :c24 THEN 1 ELSE 0 END) AS complaints_24h,
  SUM(CASE WHEN """ + COMPLAINT_LATE_24H + """ THEN 1 ELSE 0 END) AS complaints_late_24h,
  SUM(CASE WHEN """ + COMPLAINT_ESCALATED_48H + """ THEN 1 ELSE 0 END) AS complaints_over_48h
FROM h""", f)[0]
        sat = self._rows("""
SELECT CASE WHEN rated IS NULL THEN 'bot' ELSE 'agents' END AS who, COUNT(*) AS answers, AVG(stars) AS avg_stars,
  SUM(CASE WHEN stars >= 4 THEN 1 ELSE 0 END) AS satisfied
FROM csat GROUP BY CASE WHEN rated IS NULL THEN 'bot' ELSE 'agents' END""", f)
        by_who = {r["who"]: r for r in sat}
        n = int(conv["conversations"] or 0)

        def csat_of(who: str) -> dict[str, Any]:
            r = by_who.get(who) or {"answers": 0, "avg_stars": None, "satisfied": 0}
            return {"answers": int(r["answers"]), "avg_stars": _round(r["avg_stars"], 2),
                    "csat_rate": _rate(r["satisfied"] or 0, r["answers"])}

        handoffs = int(hand["handoffs"] or 0)
        in_hours = int(hand["in_hours"] or 0)
        return {
            "no_data": n == 0,
            "conversations": n,
            "bot_resolution": {"resolved": int(conv["bot_resolved"] or 0),
                               "rate": _rate(conv["bot_resolved"] or 0, n)},
            "handoff": {"conversations": int(conv["handed_off"] or 0), "handoffs": handoffs,
                        "rate": _rate(conv["handed_off"] or 0, n), "tickets": int(hand["tickets"] or 0)},
            "first_response_bot": {"answered": int(conv["bot_answered"] or 0),
                                   "avg_s": _round(conv["bot_frt_avg_s"], 2),
                                   "max_s": _round(conv["bot_frt_max_s"], 2)},
            "first_response_human": {"handoffs_in_hours": in_hours, "answered": int(hand["human_answered"] or 0),
                                     "avg_s": _round(hand["human_frt_avg_s"]), "max_s": _round(hand["human_frt_max_s"]),
                                     "queue_wait_avg_s": _round(hand["queue_wait_avg_s"])},
            "resolution_time": {"resolved": int(hand["resolved"] or 0), "closed": int(hand["closed"] or 0),
                                "avg_s": _round(hand["resolution_avg_s"]),
                                "max_s": _round(hand["resolution_max_s"])},
            "csat": {"bot": csat_of("bot"), "agents": csat_of("agents")},
            "sla": {"target_s": SLA_FIRST_RESPONSE_S,
                    "bot_breaches": int(conv["bot_sla_breaches"] or 0),
                    "bot_breach_rate": _rate(conv["bot_sla_breaches"] or 0, n),
                    "human_breaches": int(hand["human_sla_breaches"] or 0),
                    "human_breach_rate": _rate(hand["human_sla_breaches"] or 0, in_hours)},
            "complaints": {"handoffs": int(hand["complaints"] or 0),
                           "answered_24h": int(hand["complaints_24h"] or 0),
                           "answered_24h_rate": _rate(hand["complaints_24h"] or 0, hand["complaints"] or 0),
                           "breaches_24h": int(hand["complaints_late_24h"] or 0),
                           "escalated_48h": int(hand["complaints_over_48h"] or 0)},
            "first_contact_resolution": {
                "identified": int(conv["identified"] or 0),
                "resolved": int(conv["first_contact_resolved"] or 0),
                "rate": _rate(conv["first_contact_resolved"] or 0, conv["identified"] or 0)},
            "kb_coverage": self.kb_coverage_summary(f),
            "bot_answers": self.bot_answers(f),
            "repeat_contacts": {"identified": int(conv["identified"] or 0),
                                "repeats": int(conv["repeat_contacts"] or 0),
                                "rate": _rate(conv["repeat_contacts"] or 0, conv["identified"] or 0)},
            "agent_load": self.agent_load(f),
            "targets": {k: dict(v) for k, v in TARGETS.items()},
        }

    def questions(self, f: Filters) -> list[dict[str, Any]]:
        """The most frequent customer questions of the cohort (masked text, lower-cased and trimmed) and how often the
        bot's next answer came from the knowledge base (a bot message with source ``kb`` before the customer's next
        message)."""
        rows = self._rows(ANSWERS.lstrip() + """
SELECT question, COUNT(*) AS asked, SUM(CASE WHEN source = 'kb' THEN 1 ELSE 0 END) AS kb_answered
FROM ans GROUP BY question ORDER BY asked DESC, question LIMIT :top""", f, top=TOP_QUESTIONS)
        return [{"question": r["question"], "asked": int(r["asked"]), "kb_answered": int(r["kb_answered"] or 0),
                 "kb_rate": _rate(r["kb_answered"] or 0, r["asked"]),
                 "covered": (int(r["kb_answered"] or 0) / int(r["asked"])) >= COVERED_SHARE} for r in rows]

    def kb_coverage_summary(self, f: Filters) -> dict[str, Any]:
        top = self.questions(f)
        asked = sum(q["asked"] for q in top)
        return {"top_questions": len(top), "covered": sum(q["covered"] for q in top),
                "rate": _rate(sum(q["covered"] for q in top), len(top)),
                "asked": asked, "kb_answered": sum(q["kb_answered"] for q in top),
                "weighted_rate": _rate(sum(q["kb_answered"] for q in top), asked)}

    def bot_answers(self, f: Filters) -> dict[str, Any]:
        """The cohort's customer messages, how many the bot answered, and those answers by source."""
        r = self._rows(ANSWERS.lstrip() + """
SELECT COUNT(*) AS messages, COUNT(source) AS answered,
  SUM(CASE WHEN source = 'kb' THEN 1 ELSE 0 END) AS kb,
  SUM(CASE WHEN source = 'flow' THEN 1 ELSE 0 END) AS flow,
  SUM(CASE WHEN source = 'fallback' THEN 1 ELSE 0 END) AS fallback,
  SUM(CASE WHEN source = 'unknown' THEN 1 ELSE 0 END) AS unknown
FROM ans""", f)[0]
        answered = int(r["answered"] or 0)
        return {"customer_messages": int(r["messages"] or 0), "answered": answered,
                "by_source": {k: int(r[k] or 0) for k in SOURCES},
                "kb_rate": _rate(r["kb"] or 0, answered), "fallback_rate": _rate(r["fallback"] or 0, answered)}

    def sources(self, f: Filters) -> list[dict[str, Any]]:
        """Bot answers by source and, for knowledge answers, by article (id, answers, average retrieval score)."""
        rows = self._rows(ANSWERS.lstrip() + """
SELECT source, kb_id, COUNT(*) AS answers, AVG(kb_score) AS avg_score FROM ans WHERE source IS NOT NULL
GROUP BY source, kb_id ORDER BY answers DESC, source, kb_id LIMIT 200""", f)
        total = sum(int(r["answers"]) for r in rows)
        return [{"source": r["source"], "kb_id": r["kb_id"], "answers": int(r["answers"]),
                 "share": _rate(r["answers"], total), "avg_score": _round(r["avg_score"], 3)} for r in rows]

    def reasons(self, f: Filters) -> list[dict[str, Any]]:
        n = self.summary_count(f)
        rows = self._rows("SELECT COALESCE(reason, 'unknown') AS reason, COUNT(*) AS handoffs FROM h "
                          "GROUP BY COALESCE(reason, 'unknown') ORDER BY handoffs DESC, reason", f)
        return [{"reason": r["reason"], "handoffs": int(r["handoffs"]), "rate": _rate(r["handoffs"], n)}
                for r in rows]

    def tiers(self, f: Filters) -> list[dict[str, Any]]:
        """Handoffs by the customer's membership tier when queued: how long each tier waited for an agent (queued ->
        claimed or assigned), its first human response in service hours and its 15-s breaches. VIP (priority) tiers
        first: the seeds promise them the front of the queue, and this table shows whether they got it."""
        rows = self._rows("""
SELECT COALESCE(tier, 'unknown') AS tier, COUNT(*) AS handoffs, COUNT(taken_ts) AS taken,
  AVG(taken_ts - queued_ts) AS queue_wait_avg_s, MAX(taken_ts - queued_ts) AS queue_wait_max_s,
  SUM(in_hours) AS in_hours,
  AVG(CASE WHEN in_hours = 1 THEN first_agent_ts - queued_ts END) AS human_frt_avg_s,
  SUM(CASE WHEN """ + HUMAN_SLA_BREACH + """ THEN 1 ELSE 0 END) AS human_sla_breaches
FROM h GROUP BY COALESCE(tier, 'unknown')""", f)
        out = [{"tier": r["tier"], "vip": r["tier"] in self.priority_tiers, "handoffs": int(r["handoffs"]),
                "taken": int(r["taken"]), "queue_wait_avg_s": _round(r["queue_wait_avg_s"]),
                "queue_wait_max_s": _round(r["queue_wait_max_s"]), "human_frt_avg_s": _round(r["human_frt_avg_s"]),
                "human_sla_breaches": int(r["human_sla_breaches"] or 0),
                "human_breach_rate": _rate(r["human_sla_breaches"] or 0, r["in_hours"] or 0)} for r in rows]
        return sorted(out, key=lambda r: (not r["vip"], -r["handoffs"], r["tier"]))

    def summary_count(self, f: Filters) -> int:
        return int(self._rows("SELECT COUNT(*) AS n FROM c", f)[0]["n"] or 0)

    def daily(self, f: Filters) -> list[dict[str, Any]]:
        rows = self._rows("""
SELECT day, COUNT(*) AS conversations, SUM(CASE WHEN handoffs = 0 THEN 1 ELSE 0 END) AS bot_resolved,
  SUM(CASE WHEN handoffs > 0 THEN 1 ELSE 0 END) AS handed_off, AVG(first_bot_ts - first_customer_ts) AS bot_frt_avg_s
FROM cv GROUP BY day ORDER BY day""", f)
        return [{"day": r["day"], "conversations": int(r["conversations"]), "bot_resolved": int(r["bot_resolved"]),
                 "handed_off": int(r["handed_off"]),
                 "bot_resolution_rate": _rate(r["bot_resolved"], r["conversations"]),
                 "bot_frt_avg_s": _round(r["bot_frt_avg_s"], 2)} for r in rows]

    def heatmap(self, f: Filters) -> list[dict[str, Any]]:
        rows = self._rows("""
SELECT dow, hour, COUNT(*) AS conversations, SUM(CASE WHEN handoffs > 0 THEN 1 ELSE 0 END) AS handed_off
FROM cv GROUP BY dow, hour ORDER BY dow, hour""", f)
        return [{k: int(v) for k, v in r.items()} for r in rows]

    def agents(self, f: Filters) -> list[dict[str, Any]]:
        rows = self._rows("""
, taken AS (
  SELECT e.agent_id, COUNT(DISTINCT e.handoff_id) AS handoffs FROM analytics_events e
  JOIN c ON c.conversation_id = e.conversation_id WHERE e.kind IN """ + TAKE_KINDS + """ AND e.agent_id IS NOT NULL
  GROUP BY e.agent_id),
replies AS (
  SELECT e.agent_id, COUNT(*) AS replies FROM analytics_events e JOIN c ON c.conversation_id = e.conversation_id
  WHERE e.kind = 'message_agent' AND e.agent_id IS NOT NULL GROUP BY e.agent_id),
done AS (
  SELECT closed_by AS agent_id, COUNT(*) AS closed, AVG(closed_ts - taken_ts) AS handle_avg_s FROM h
  WHERE closed_by IS NOT NULL AND closed_ts IS NOT NULL GROUP BY closed_by),
rated AS (
  SELECT h.closed_by AS agent_id, COUNT(*) AS csat_answers, AVG(csat.stars) AS csat_avg FROM csat
  JOIN h ON h.handoff_id = csat.rated WHERE h.closed_by IS NOT NULL GROUP BY h.closed_by),
ids AS (SELECT agent_id FROM taken UNION SELECT agent_id FROM replies UNION SELECT agent_id FROM done)
SELECT ids.agent_id, COALESCE(taken.handoffs, 0) AS handoffs, COALESCE(replies.replies, 0) AS replies,
  COALESCE(done.closed, 0) AS closed, done.handle_avg_s, COALESCE(rated.csat_answers, 0) AS csat_answers,
  rated.csat_avg
FROM ids LEFT JOIN taken ON taken.agent_id = ids.agent_id LEFT JOIN replies ON replies.agent_id = ids.agent_id
LEFT JOIN done ON done.agent_id = ids.agent_id LEFT JOIN rated ON rated.agent_id = ids.agent_id
ORDER BY handoffs DESC, ids.agent_id""".lstrip(), f)  # noqa: S608 - fixed SQL
        total = sum(int(r["handoffs"]) for r in rows)
        out = {r["agent_id"]: {"agent_id": r["agent_id"], "handoffs": int(r["handoffs"]),
                               "share": _rate(r["handoffs"], total), "replies": int(r["replies"]),
                               "closed": int(r["closed"]), "handle_avg_s": _round(r["handle_avg_s"]),
                               "csat_answers": int(r["csat_answers"]), "csat_avg": _round(r["csat_avg"], 2)}
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
        with self.engine.connect() as db:
            r = db.execute(text(PRESENCE_SQL.format(group="", by="")), {"d0": f.start, "d1": f.end}).one()
        return {"online_minutes": int(r.online or 0), "busy_minutes": int(r.busy or 0),
                "occupancy": _rate(r.busy or 0, r.online or 0), "load": _round(r.load, 4)}

    def presence(self, f: Filters) -> list[dict[str, Any]]:
        """Occupancy and load per desk member from the presence minutes (analytics/presence.py) of the period's days.
        Presence has no channel or language: those filters do not apply to these columns."""
        with self.engine.connect() as db:
            rows = db.execute(text(PRESENCE_SQL.format(group="agent_id, ", by=" GROUP BY agent_id ORDER BY agent_id")),
                              {"d0": f.start, "d1": f.end}).all()
        return [{"agent_id": r.agent_id, "online_minutes": int(r.online), "occupancy": _rate(r.busy, r.online),
                 "load": _round(r.load, 4)} for r in rows]

    def conversations(self, f: Filters, segment: str = "all", reason: str | None = None, day: str | None = None,
                      hour: int | None = None, dow: int | None = None, agent: str | None = None,
                      limit: int = 500) -> list[dict[str, Any]]:
        """The conversations behind a number (drill-down)."""
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
        rows = self._rows(sql, f, reason=reason, day=day, hour=hour, dow=dow, agent=agent, limit=limit)
        return [{"conversation_id": r["conversation_id"], "day": r["day"], "hour": int(r["hour"]),
                 "channel": r["channel"], "language": r["language"], "handed_off": int(r["handoffs"]) > 0,
                 "reason": r["reason"], "agent_id": r["agent_id"], "bot_frt_s": _round(r["bot_frt_s"], 2),
                 "human_frt_s": _round(r["human_frt_s"]), "csat": r["csat"], "repeat": bool(r["is_repeat"])}
                for r in rows]
