"""The tracker part of the handoff context package, built by the action server (which holds the tracker).

``action_handoff_to_human`` builds it from the events still in force (:func:`bot.shared.tracker_events.applied_events`:
rewound, undone and restarted turns are not shown) and sends it, redacted, with the handoff request; the desk
(handoff/context.py) adds the transcript, the customer's earlier handoffs and the summary, and never reads the
tracker of a turn that is still running. Pure code: no Rasa, no I/O.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bot.shared.redact import Redactor
from bot.shared.tracker_events import applied_events

# Rasa housekeeping actions that say nothing about what the bot tried.
SILENT_ACTIONS = {"action_listen", "action_session_start", "action_extract_slots", "action_default_ask_affirmation",
                  "action_unlikely_intent"}
# Slots whose setting is not worth showing as an action's result (set on every turn).
QUIET_SLOTS = {"language", "escalation_decision"}
# Slots not copied into the package (internal records of the bot).
HIDDEN_SLOTS = {"escalation_decision"}
FEEDBACK_INTENTS = {"affirm": "helpful", "deny": "not_helpful"}
KEYS = ("turns", "actions", "kb_articles", "slots", "frustration_per_message")


def iso(ts: float | None) -> str | None:
    from datetime import datetime, timezone

    if ts is None:
        return None
    return datetime.fromtimestamp(float(ts), timezone.utc).isoformat()


def _kb_from_metadata(metadata: Any) -> list[dict[str, Any]]:
    """Knowledge articles a bot message carried: ``metadata.kb`` (one dict or a list) or ``metadata.kb_articles``."""
    if not isinstance(metadata, dict):
        return []
    found: list[dict[str, Any]] = []
    for key in ("kb", "kb_articles", "kb_article"):
        value = metadata.get(key)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict) and (item.get("id") or item.get("article_id")):
                found.append({
                    "id": str(item.get("id") or item.get("article_id")),
                    "title": item.get("title"),
                    "score": float(item["score"]) if isinstance(item.get("score"), (int, float)) else None,
                })
    return found


def parse_tracker(events: Sequence[Mapping[str, Any]], slots: Mapping[str, Any] | None) -> dict[str, Any]:
    """Turns (intent, confidence, entities, frustration), actions and their results, knowledge articles, slots and
    per-message frustration; tolerant of missing keys (old trackers, other versions)."""
    turns: list[dict[str, Any]] = []
    actions: list[dict[str, Any]] = []
    kb_articles: list[dict[str, Any]] = []
    frustration: list[dict[str, Any]] = []
    for event in applied_events(events):
        kind = event.get("event")
        ts = event.get("timestamp")
        if kind == "user":
            parse = event.get("parse_data") or {}
            intent = parse.get("intent") or {}
            frus = parse.get("frustration") if isinstance(parse.get("frustration"), dict) else None
            turn = {
                "ts": iso(ts),
                "text": event.get("text") or "",
                "intent": intent.get("name"),
                "confidence": intent.get("confidence"),
                "intent_ranking": [
                    {"name": r.get("name"), "confidence": r.get("confidence")}
                    for r in (parse.get("intent_ranking") or [])[:3]
                ],
                "entities": [
                    {"entity": e.get("entity"), "value": e.get("value"), "extractor": e.get("extractor")}
                    for e in parse.get("entities") or [] if e.get("entity") != "frustration"
                ],
                "frustration": frus.get("score") if frus else None,
            }
            turns.append(turn)
            if frus and isinstance(frus.get("score"), (int, float)):
                frustration.append({"ts": iso(ts), "score": frus["score"]})
            # Customer feedback on the last knowledge answer (yes/no right after it).
            if kb_articles and kb_articles[-1].get("feedback") is None and turn["intent"] in FEEDBACK_INTENTS:
                kb_articles[-1]["feedback"] = FEEDBACK_INTENTS[turn["intent"]]
        elif kind == "action" and event.get("name") not in SILENT_ACTIONS:
            actions.append({"name": event.get("name"), "ts": iso(ts), "confidence": event.get("confidence"),
                            "policy": event.get("policy"), "results": []})
        elif kind == "action_execution_rejected" and actions:
            actions[-1]["results"].append("rejected")
        elif kind == "bot":
            if actions:
                actions[-1]["results"].append("replied")
            for article in _kb_from_metadata(event.get("metadata")):
                kb_articles.append({**article, "ts": iso(ts), "feedback": None})
        elif kind == "slot" and actions and event.get("name") not in QUIET_SLOTS:
            actions[-1]["results"].append(f"set {event.get('name')}")
    kept = {k: v for k, v in (slots or {}).items() if v is not None and k not in HIDDEN_SLOTS}
    if kept.get("kb_feedback") and kb_articles and kb_articles[-1]["feedback"] is None:
        kb_articles[-1]["feedback"] = str(kept["kb_feedback"])
    return {"turns": turns, "actions": actions, "kb_articles": kb_articles, "slots": kept,
            "frustration_per_message": frustration}


def redacted(part: dict[str, Any], redactor: Redactor) -> dict[str, Any]:
    """The part as agents may see it: customer texts and entities without secrets, slots summarised."""
    out = {**part, "turns": [dict(t) for t in part.get("turns") or []]}
    for turn in out["turns"]:
        turn["text"] = redactor.text(turn.get("text") or "", customer=True)
        turn["entities"] = redactor.deep(turn.get("entities") or [])
    out["slots"] = redactor.slots(dict(part.get("slots") or {}))
    return out


def tracker_part(events: Sequence[Mapping[str, Any]], slots: Mapping[str, Any] | None) -> dict[str, Any]:
    """What the action server sends as ``tracker``: parsed and redacted (secrets learnt from the same tracker)."""
    redactor = Redactor.from_sources({"slots": dict(slots or {}), "events": list(events)})
    return redacted(parse_tracker(events, slots), redactor)
