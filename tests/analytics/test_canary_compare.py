"""The canary's comparison (analytics/canary.py) on a real SQLite record: which conversation is in which arm, what
counts as answered / fallback / handed off / rated, the intervals against scipy and hand computation, and when a
difference is called significant."""
from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

from scipy import stats

from analytics import canary, db

_ids = itertools.count(1)


def _event(conversation_id: str, kind: str, ts: float, **extra: Any) -> dict[str, Any]:
    return {"stream": f"csbot:conv:{conversation_id}:messages", "entry_id": f"{next(_ids)}-0", "ts": ts,
            "day": "2026-12-07", "hour": 10, "dow": 0, "in_hours": True, "conversation_id": conversation_id,
            "kind": kind, **extra}


def _conversation(rows: list[dict[str, Any]], cid: str, arm: str | None, turns: list[str], *,
                  handoff: bool = False, stars: list[int] = ()) -> None:
    """``turns``: the source of the bot's answer to each customer message (kb, flow, fallback, none)."""
    ts = 1000.0
    for source in turns:
        rows.append(_event(cid, "message_customer", ts, text="q"))
        if source != "none":
            rows.append(_event(cid, "message_bot", ts + 1, source=source, arm=arm, text="a"))
            rows.append(_event(cid, "message_bot", ts + 2, source="flow", arm=arm, text="more"))  # not an answer
        ts += 10
    if handoff:
        rows.append(_event(cid, "handoff_queued", ts, handoff_id=f"h-{cid}"))
    for s in stars:
        rows.append(_event(cid, "csat", ts + 5, stars=s))


def _engine(tmp_path: Path, rows: list[dict[str, Any]]) -> Any:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    db.write(engine, rows, [])
    return engine


def test_arms_and_outcomes_come_from_the_recorded_bot_messages(tmp_path: Path) -> None:
    rows: list[dict[str, Any]] = []
    _conversation(rows, "c1", "4:canary", ["kb", "fallback", "none"], stars=[5, 1])
    _conversation(rows, "c2", "4:canary", ["flow"], handoff=True)
    _conversation(rows, "k1", "4:control", ["fallback", "fallback"], handoff=True, stars=[2])
    _conversation(rows, "old", None, ["kb"])  # started before the canary: in neither arm
    _conversation(rows, "other", "3:canary", ["kb"])  # an earlier canary
    arms = canary.conversations(_engine(tmp_path, rows), 4)
    assert set(arms["canary"]) == {"c1", "c2"} and set(arms["control"]) == {"k1"}
    c1 = arms["canary"]["c1"]
    assert (c1.questions, c1.answered, c1.fallbacks, c1.handoff, c1.stars) == (3, 1, 1, False, 5)
    k1 = arms["control"]["k1"]
    assert (k1.questions, k1.answered, k1.fallbacks, k1.handoff, k1.stars) == (2, 0, 2, True, 2)

    report = canary.compare(_engine(tmp_path, []), 4)
    assert report["canary"]["conversations"] == 2 and report["control"]["conversations"] == 1
    assert report["canary"]["answered"]["value"] == 2 / 4  # c1: 1 of 3, c2: 1 of 1
    assert report["canary"]["handoff"]["value"] == 0.5 and report["canary"]["csat"]["value"] == 5.0
    assert report["difference"]["answered"]["significant"] is False, "two conversations prove nothing"


def test_intervals_match_the_textbook_formulas() -> None:
    wilson = canary.proportion(30, 100)
    expected = stats.binomtest(30, 100).proportion_ci(method="wilson")
    assert math.isclose(wilson["low"], expected.low) and math.isclose(wilson["high"], expected.high)
    # With one message per conversation the clustered ratio is a plain proportion (se with n-1).
    parts, wholes = [1] * 30 + [0] * 70, [1] * 100
    r = canary.ratio(parts, wholes)
    assert math.isclose(r["se"], math.sqrt(0.3 * 0.7 / 99))
    # Every conversation answered: the delta method alone would say "certainly 100 %" from three conversations.
    perfect = canary.ratio([1, 2, 1], [1, 2, 1])
    assert perfect["value"] == 1.0 and perfect["se"] > 0.1 and perfect["low"] < 0.6
    # Messages of one conversation are not independent: all-or-nothing conversations of 5 messages have the same
    # rate but a wider interval than 500 independent messages would give.
    clustered = canary.ratio([5] * 30 + [0] * 70, [5] * 100)
    assert clustered["value"] == 0.3 and clustered["se"] > 2 * math.sqrt(0.3 * 0.7 / 500)
    m = canary.mean([5, 4, 4, 3, 5])
    half = stats.t.ppf(0.975, 4) * stats.tstd([5, 4, 4, 3, 5]) / math.sqrt(5)
    assert math.isclose(m["high"] - m["value"], half)


def test_a_difference_is_significant_only_with_enough_conversations_and_an_interval_away_from_zero(
        tmp_path: Path) -> None:
    rows: list[dict[str, Any]] = []
    for i in range(40):
        _conversation(rows, f"a{i}", "9:canary", ["kb", "kb"] if i % 10 else ["kb", "fallback"])
        _conversation(rows, f"b{i}", "9:control", ["fallback", "kb"] if i % 2 else ["fallback", "fallback"],
                      handoff=i % 2 == 0)
    report = canary.compare(_engine(tmp_path, rows), 9)
    answered = report["difference"]["answered"]
    assert report["canary"]["answered"]["value"] == 0.95 and report["control"]["answered"]["value"] == 0.25
    assert answered["enough"] and answered["significant"] and answered["low"] > 0
    se = math.hypot(report["canary"]["answered"]["se"], report["control"]["answered"]["se"])
    assert math.isclose(answered["se"], se) and math.isclose(answered["low"], 0.7 - stats.norm.ppf(0.975) * se)
    assert report["difference"]["handoff"]["significant"] and report["difference"]["handoff"]["value"] == -0.5
    assert report["difference"]["csat"] == {"value": None, "low": None, "high": None, "se": None,
                                            "significant": False, "enough": False}
    few = canary.compare(_engine(tmp_path / "few", [r for r in rows if r["conversation_id"][1:] in
                                                     {str(i) for i in range(10)}]), 9)
    assert few["difference"]["answered"]["enough"] is False and few["difference"]["answered"]["significant"] is False
