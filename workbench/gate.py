"""The retrain gate's verdict: a candidate release against the live one, on data neither was trained or tuned on.

Pure functions (no I/O): workbench/releases.py runs the measurements and hands their JSON here.

* **NLU** - ``python -m bot.nlu_eval`` on the held-out sets (tests/nlu/heldout_<lang>.yml, never trained or tuned
  on): intent macro-F1 and entity recall per language, F1 per intent, and each line's prediction.
* **Conversation tests** - ``rasa test core`` on tests/stories: no story the live model passes may fail.
* **Knowledge base** - ``python -m kb_index check`` on the retrieval dev set (tests/kb_index/devset.yml): a question
  is *right* when its best article is the expected one AND the bot would answer it (decision level ``confident``);
  an out-of-scope question is *wrong* when the bot would answer it confidently.

The candidate passes when, in every language, none of these loses more than ``tolerance`` (absolute, e.g. 0.01 =
one point) against the live release: NLU macro-F1, entity recall, KB right rate; and the KB's confident answers to
out-of-scope questions do not grow by more than ``tolerance``. Lines the live release got right and the candidate gets
wrong are listed ("newly failing"), as are the ones it fixed.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any

LIST_LIMIT = 50  # newly failing / fixed lines listed per check and language


def _verdict(name: str, language: str, current: float | None, candidate: float | None, tolerance: float,
             *, higher_is_better: bool = True) -> dict[str, Any]:
    if candidate is None:
        return {"check": name, "language": language, "current": current, "candidate": None, "delta": None,
                "passed": False}
    delta = None if current is None else round(candidate - current, 4)
    # Nothing live to compare with: the candidate is the reference.
    passed = True if delta is None else (delta >= -tolerance if higher_is_better else delta <= tolerance)
    return {"check": name, "language": language, "current": current, "candidate": candidate, "delta": delta,
            "passed": passed}


def compare_nlu(current: dict[str, Any] | None, candidate: dict[str, Any] | None, tolerance: float
                ) -> dict[str, Any]:
    """``current`` / ``candidate``: ``{file name: bot.nlu_eval report}`` (None or ``{"error"}``: not measured)."""
    if not candidate or "error" in candidate:
        reason = (candidate or {}).get("error", "the candidate model was not evaluated")
        return {"passed": False, "error": f"candidate: {reason}", "rows": [], "per_intent": {}, "changes": {}}
    current = current if current and "error" not in current else {}
    rows: list[dict[str, Any]] = []
    per_intent: dict[str, dict[str, Any]] = {}
    changes: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for name in sorted(candidate):
        language = name.removesuffix(".yml").split("_")[-1]
        cand, cur = candidate[name], current.get(name) or {}
        rows.append(_verdict("nlu_macro_f1", language, cur.get("macro_f1"), cand.get("macro_f1"), tolerance))
        rows.append(_verdict("nlu_entity_recall", language, cur.get("entity_recall"), cand.get("entity_recall"),
                             tolerance))
        intents = sorted(set(cand.get("per_intent", {})) | set(cur.get("per_intent", {})))
        per_intent[language] = {
            intent: {"current": (cur.get("per_intent", {}).get(intent) or {}).get("f1"),
                     "candidate": (cand.get("per_intent", {}).get(intent) or {}).get("f1")}
            for intent in intents}
        changes[language] = _line_changes(cur.get("lines") or [], cand.get("lines") or [],
                                          right=lambda line: line["predicted"] == line["gold"],
                                          show=lambda line: {"text": line["text"], "expected": line["gold"],
                                                             "got": line["predicted"],
                                                             "confidence": line.get("confidence")})
    return {"passed": all(r["passed"] for r in rows), "rows": rows, "per_intent": per_intent, "changes": changes}


def kb_right(row: dict[str, Any]) -> bool:
    """A dev-set question is answered right: in scope, the expected article, and the bot would answer it."""
    if row.get("expected"):
        return row.get("top1") == row["expected"] and row.get("level") == "confident"
    return row.get("level") != "confident"  # out of scope: right when the bot does not answer it confidently


def kb_rates(result: dict[str, Any] | None) -> dict[str, dict[str, float | int]]:
    """Per language: right rate of the in-scope questions, confident-answer rate of the out-of-scope ones."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {"n": 0, "right": 0, "oos": 0, "oos_answered": 0})
    for row in (result or {}).get("rows") or []:
        c = counts[str(row.get("lang"))]
        if row.get("expected"):
            c["n"] += 1
            c["right"] += kb_right(row)
        else:
            c["oos"] += 1
            c["oos_answered"] += not kb_right(row)
    return {lang: {"n": c["n"], "right": round(c["right"] / c["n"], 4) if c["n"] else 0.0,
                   "oos": c["oos"], "oos_answered": round(c["oos_answered"] / c["oos"], 4) if c["oos"] else 0.0}
            for lang, c in sorted(counts.items())}


def compare_kb(current: dict[str, Any] | None, candidate: dict[str, Any] | None, tolerance: float
               ) -> dict[str, Any]:
    """``current`` / ``candidate``: ``python -m kb_index check`` results (None or ``{"error"}``: not measured)."""
    if not candidate or "error" in candidate or not candidate.get("rows"):
        reason = (candidate or {}).get("error", "the candidate index was not evaluated")
        return {"passed": False, "error": f"candidate: {reason}", "rows": [], "changes": {}}
    current = current if current and "error" not in current else None
    cand_rates, cur_rates = kb_rates(candidate), kb_rates(current)
    rows: list[dict[str, Any]] = []
    for language in sorted(cand_rates):
        cur = cur_rates.get(language) if current else None
        rows.append(_verdict("kb_right", language, cur["right"] if cur else None, cand_rates[language]["right"],
                             tolerance))
        rows.append(_verdict("kb_out_of_scope_answered", language, cur["oos_answered"] if cur else None,
                             cand_rates[language]["oos_answered"], tolerance, higher_is_better=False))
    changes: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for language in sorted(cand_rates):
        def of(result: dict[str, Any] | None, lang: str = language) -> list[dict[str, Any]]:
            return [row for row in (result or {}).get("rows") or [] if row.get("lang") == lang]
        changes[language] = _line_changes(of(current), of(candidate), right=kb_right,
                                          show=lambda row: {"text": row["text"], "expected": row.get("expected"),
                                                            "got": row.get("top1"), "level": row.get("level"),
                                                            "score": row.get("score")})
    return {"passed": all(r["passed"] for r in rows), "rows": rows, "changes": changes}


def _line_changes(current: list[dict[str, Any]], candidate: list[dict[str, Any]], *, right: Any, show: Any
                  ) -> dict[str, list[dict[str, Any]]]:
    """Lines (matched by text) right before and wrong now, and the reverse; at most LIST_LIMIT each."""
    before = {line["text"]: right(line) for line in current}
    newly_failing = [show(line) for line in candidate if before.get(line["text"]) is True and not right(line)]
    fixed = [show(line) for line in candidate if before.get(line["text"]) is False and right(line)]
    return {"newly_failing": newly_failing[:LIST_LIMIT], "fixed": fixed[:LIST_LIMIT],
            "newly_failing_count": len(newly_failing), "fixed_count": len(fixed)}


def compare_stories(current: dict[str, Any] | None, candidate: dict[str, Any] | None) -> dict[str, Any]:
    """Conversation tests: the candidate may not fail a story the live model passes (no tolerance: each story is a
    flow customers go through)."""
    if not candidate or not candidate.get("stories"):
        return {"passed": False, "error": "candidate: the conversation tests did not run", "rows": [], "changes": {}}
    cand = candidate["stories"]
    cur = (current or {}).get("stories") or {}
    newly_failing = [name for name, ok in cand.items() if not ok and cur.get(name) is True]
    fixed = [name for name, ok in cand.items() if ok and cur.get(name) is False]
    row = {"check": "stories_passed", "language": "all",
           "current": round(sum(cur.values()) / len(cur), 4) if cur else None,
           "candidate": round(sum(cand.values()) / len(cand), 4),
           "delta": None, "passed": not newly_failing}
    if row["current"] is not None:
        row["delta"] = round(row["candidate"] - row["current"], 4)
    show = [{"text": name, "expected": "passes", "got": "fails"} for name in newly_failing]
    return {"passed": not newly_failing, "rows": [row],
            "changes": {"all": {"newly_failing": show[:LIST_LIMIT], "newly_failing_count": len(newly_failing),
                                "fixed": [{"text": name, "expected": "passes", "got": "passes"}
                                          for name in fixed][:LIST_LIMIT], "fixed_count": len(fixed)}}}


CHECKS = ("nlu", "stories", "kb")


def verdict(nlu: dict[str, Any], kb: dict[str, Any], tolerance: float, *, stories: dict[str, Any] | None = None
            ) -> dict[str, Any]:
    """The gate's report: every check, and whether the candidate may be deployed without an override."""
    checks = {"nlu": nlu, "kb": kb, **({"stories": stories} if stories is not None else {})}
    return {"passed": all(bool(c.get("passed")) for c in checks.values()), "tolerance": tolerance, **checks}
