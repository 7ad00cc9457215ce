"""The canary's two arms compared from the managers' event record (the workbench "Releases" tab shows it).

While a candidate release runs as a canary (conversations/canary.py), every bot message is recorded with its arm,
``<release>:canary`` or ``<release>:control`` (analytics/consumer.py). A conversation belongs to the arm its bot
messages carry. Per arm, with conversations as the unit (the messages of one conversation are not independent):

* ``answered``: customer messages the bot answered from the knowledge base or a flow, over customer messages
  (interval: delta method, clustered by conversation);
* ``fallback``: customer messages answered with a fallback (analytics/consumer.py FALLBACK_RESPONSES), over customer
  messages (the same interval);
* ``handoff``: conversations handed to a person, over conversations (Wilson score interval);
* ``csat``: the mean of each rated conversation's first rating, 1-5 (Student's t interval).

The difference (canary - control) has a normal-approximation interval from the two standard errors; it is
``significant`` when that interval excludes 0 and both arms have at least MIN_CONVERSATIONS conversations (for CSAT,
MIN_RATINGS ratings); otherwise the page says the difference is not yet significant. These are plain per-measure
95 % intervals, not corrected for looking at four measures or for looking repeatedly (docs/KB_EDITING.md).
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from scipy import stats
from sqlalchemy import Engine, text

CONFIDENCE = 0.95
MIN_CONVERSATIONS = 30
MIN_RATINGS = 10
ANSWERED_SOURCES = ("kb", "flow")
MEASURES = ("answered", "fallback", "handoff", "csat")


@dataclass
class Conversation:
    questions: int = 0
    answered: int = 0
    fallbacks: int = 0
    handoff: bool = False
    stars: int | None = None
    pending: bool = field(default=False, repr=False)  # a customer message still waiting for its answer


def _z() -> float:
    return float(stats.norm.ppf(0.5 + CONFIDENCE / 2))


def ratio(parts: list[int], wholes: list[int]) -> dict[str, Any]:
    """sum(parts) / sum(wholes) over conversations, with a delta-method interval clustered by conversation.

    The delta method's variance is 0 when every conversation had the same outcome (a rate of 0 or 1 in a small
    sample): then it would claim certainty. So the standard error is at least the Agresti-Coull one of the pooled
    messages, and the interval contains the pooled messages' Wilson interval."""
    n, total = len(wholes), sum(wholes)
    if n == 0 or total == 0:
        return {"value": None, "low": None, "high": None, "se": None, "n": n, "count": total}
    hits = sum(parts)
    value = hits / total
    if n < 2:
        return {"value": value, "low": None, "high": None, "se": None, "n": n, "count": total}
    mean_w = total / n
    mean_p = hits / n
    var_p = sum((p - mean_p) ** 2 for p in parts) / (n - 1)
    var_w = sum((w - mean_w) ** 2 for w in wholes) / (n - 1)
    cov = sum((p - mean_p) * (w - mean_w) for p, w in zip(parts, wholes)) / (n - 1)
    se = math.sqrt(max(0.0, var_p - 2 * value * cov + value * value * var_w) / n) / mean_w
    adjusted = (hits + 2) / (total + 4)
    se = max(se, math.sqrt(adjusted * (1 - adjusted) / (total + 4)))
    out = _interval(value, se, n, total)
    wilson = stats.binomtest(hits, total).proportion_ci(confidence_level=CONFIDENCE, method="wilson")
    out["low"], out["high"] = min(out["low"], float(wilson.low)), max(out["high"], float(wilson.high))
    return out


def proportion(successes: int, n: int) -> dict[str, Any]:
    """successes / n with Wilson's score interval (scipy); the standard error (for the difference) is the
    Agresti-Coull one, which is not 0 at a rate of 0 or 1."""
    if n == 0:
        return {"value": None, "low": None, "high": None, "se": None, "n": 0, "count": 0}
    ci = stats.binomtest(successes, n).proportion_ci(confidence_level=CONFIDENCE, method="wilson")
    adjusted = (successes + 2) / (n + 4)
    return {"value": successes / n, "low": float(ci.low), "high": float(ci.high),
            "se": math.sqrt(adjusted * (1 - adjusted) / (n + 4)), "n": n, "count": n}


def mean(values: list[int]) -> dict[str, Any]:
    """The mean with Student's t interval."""
    n = len(values)
    if n == 0:
        return {"value": None, "low": None, "high": None, "se": None, "n": 0, "count": 0}
    value = sum(values) / n
    if n < 2:
        return {"value": value, "low": None, "high": None, "se": None, "n": n, "count": n}
    sd = math.sqrt(sum((v - value) ** 2 for v in values) / (n - 1))
    se = sd / math.sqrt(n)
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * se
    return {"value": value, "low": value - half, "high": value + half, "se": se, "n": n, "count": n}


def _interval(value: float, se: float | None, n: int, count: int) -> dict[str, Any]:
    if se is None:
        return {"value": value, "low": None, "high": None, "se": None, "n": n, "count": count}
    half = _z() * se
    return {"value": value, "low": max(0.0, value - half), "high": min(1.0, value + half), "se": se, "n": n,
            "count": count}


def difference(canary: dict[str, Any], control: dict[str, Any], minimum: int) -> dict[str, Any]:
    """canary - control with a normal-approximation interval; ``significant`` only with enough data on both sides."""
    if canary["value"] is None or control["value"] is None or canary["se"] is None or control["se"] is None:
        return {"value": None, "low": None, "high": None, "se": None, "significant": False, "enough": False}
    value = canary["value"] - control["value"]
    se = math.sqrt(canary["se"] ** 2 + control["se"] ** 2)
    enough = canary["n"] >= minimum and control["n"] >= minimum
    low, high = value - _z() * se, value + _z() * se
    return {"value": value, "low": low, "high": high, "se": se, "enough": enough,
            "significant": bool(enough and (low > 0 or high < 0))}


def conversations(engine: Engine, release: int) -> dict[str, dict[str, Conversation]]:
    """The conversations of each arm of canary ``release`` with their outcomes, from the event record."""
    labels = {f"{release}:canary": "canary", f"{release}:control": "control"}
    with engine.connect() as db:
        arms = dict(db.execute(text(
            "SELECT conversation_id, MIN(arm) FROM analytics_events WHERE kind = 'message_bot' "
            "AND arm IN (:a, :b) GROUP BY conversation_id"), {"a": f"{release}:canary", "b": f"{release}:control"}
        ).all())
        rows = db.execute(text(
            "SELECT e.conversation_id, e.kind, e.source, e.stars FROM analytics_events e "
            "WHERE e.conversation_id IN (SELECT DISTINCT conversation_id FROM analytics_events "
            "  WHERE kind = 'message_bot' AND arm IN (:a, :b)) "
            "AND e.kind IN ('message_customer', 'message_bot', 'handoff_queued', 'csat') ORDER BY e.ts, e.id"),
            {"a": f"{release}:canary", "b": f"{release}:control"}).all()
    out: dict[str, dict[str, Conversation]] = {"canary": {}, "control": {}}
    seen: dict[str, Conversation] = defaultdict(Conversation)
    for conversation_id, kind, source, stars in rows:
        c = seen[conversation_id]
        if kind == "message_customer":
            c.questions += 1
            c.pending = True
        elif kind == "message_bot" and c.pending:  # the first bot message after a customer message answers it
            c.pending = False
            c.answered += source in ANSWERED_SOURCES
            c.fallbacks += source == "fallback"
        elif kind == "handoff_queued":
            c.handoff = True
        elif kind == "csat" and c.stars is None and stars:
            c.stars = int(stars)
    for conversation_id, arm in arms.items():
        out[labels[arm]][conversation_id] = seen[conversation_id]
    return out


def compare(engine: Engine, release: int) -> dict[str, Any]:
    """Both arms' measures with their intervals, and each difference (see the module's table)."""
    arms = conversations(engine, release)
    measured: dict[str, dict[str, Any]] = {}
    for name, convs in arms.items():
        values = [c for c in convs.values() if c.questions]
        measured[name] = {
            "conversations": len(convs),
            "answered": ratio([c.answered for c in values], [c.questions for c in values]),
            "fallback": ratio([c.fallbacks for c in values], [c.questions for c in values]),
            "handoff": proportion(sum(c.handoff for c in convs.values()), len(convs)),
            "csat": mean([c.stars for c in convs.values() if c.stars]),
        }
    diffs = {m: difference(measured["canary"][m], measured["control"][m],
                           MIN_RATINGS if m == "csat" else MIN_CONVERSATIONS) for m in MEASURES}
    return {"release": release, "canary": measured["canary"], "control": measured["control"], "difference": diffs,
            "confidence": CONFIDENCE, "min_conversations": MIN_CONVERSATIONS, "min_ratings": MIN_RATINGS}
