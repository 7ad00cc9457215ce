"""The context package an agent (or an external helpdesk) receives at handoff time.

Built from the gateway's own message stream (the complete transcript, both sides, with timestamps), Rasa's tracker
(intents and confidences per turn, entities, slots, actions and their results, knowledge articles, per-message
frustration), the escalation request of the action server and the customer's earlier handoffs. The shape is
documented as a versioned JSON schema in docs/handoff-context.schema.json; bump SCHEMA_VERSION on any change.

No secrets (1.1.0): verification digits are removed and phone numbers masked everywhere in the package (transcript,
turns, slots, identifiers, summary, signals); see bot/shared/redact.py. The desk checks once more before storing.
"""
from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from typing import Any, Dict, Iterable, List

from bot.shared.redact import Redactor, scrub_stored

SCHEMA_VERSION = "1.1.0"
SCHEMA_ID = "https://csbot.example/schemas/handoff-context/1.1.0"
PRIVACY = {"phones": "masked", "verification_digits": "removed", "address": "region_only"}

# Rasa housekeeping actions that say nothing about what the bot tried.
_SILENT_ACTIONS = {"action_listen", "action_session_start", "action_extract_slots", "action_default_ask_affirmation",
                   "action_unlikely_intent"}
# Intents that say nothing about what the customer wants.
_GENERIC_INTENTS = {"greet", "goodbye", "affirm", "deny", "thank", "thanks", "thankyou", "nlu_fallback",
                    "out_of_scope", "request_human", "chitchat", "bot_challenge", "mood_unhappy", "insult"}
_IDENTIFIER_SLOTS = ("order_number", "tracking_number", "phone")
_FEEDBACK_INTENTS = {"affirm": "helpful", "deny": "not_helpful"}


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(float(ts), timezone.utc).isoformat()


def _kb_from_metadata(metadata: Any) -> List[Dict[str, Any]]:
    """Knowledge articles a bot message carried: ``metadata.kb`` (one dict or a list) or ``metadata.kb_articles``."""
    if not isinstance(metadata, dict):
        return []
    found: List[Dict[str, Any]] = []
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


def parse_tracker(tracker: Dict[str, Any]) -> Dict[str, Any]:
    """Everything the desk reads from a Rasa tracker; tolerant of missing keys (old trackers, other versions)."""
    turns: List[Dict[str, Any]] = []
    actions: List[Dict[str, Any]] = []
    kb_articles: List[Dict[str, Any]] = []
    frustration: List[Dict[str, Any]] = []
    for event in tracker.get("events") or []:
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
            if kb_articles and kb_articles[-1].get("feedback") is None and turn["intent"] in _FEEDBACK_INTENTS:
                kb_articles[-1]["feedback"] = _FEEDBACK_INTENTS[turn["intent"]]
        elif kind == "action" and event.get("name") not in _SILENT_ACTIONS:
            actions.append({"name": event.get("name"), "ts": iso(ts), "confidence": event.get("confidence"),
                            "policy": event.get("policy"), "results": []})
        elif kind == "action_execution_rejected" and actions:
            actions[-1]["results"].append("rejected")
        elif kind == "bot":
            if actions:
                actions[-1]["results"].append("replied")
            for article in _kb_from_metadata(event.get("metadata")):
                kb_articles.append({**article, "ts": iso(ts), "feedback": None})
        elif kind == "slot" and actions and event.get("name") not in ("language",):
            actions[-1]["results"].append(f"set {event.get('name')}")
    slots = {k: v for k, v in (tracker.get("slots") or {}).items() if v is not None}
    if slots.get("kb_feedback") and kb_articles and kb_articles[-1]["feedback"] is None:
        kb_articles[-1]["feedback"] = str(slots["kb_feedback"])
    return {"turns": turns, "actions": actions, "kb_articles": kb_articles, "slots": slots,
            "frustration_per_message": frustration}


def _collect_identifiers(slots: Dict[str, Any], turns: Iterable[Dict[str, Any]]) -> Dict[str, List[str]]:
    found: Dict[str, List[str]] = {name: [] for name in _IDENTIFIER_SLOTS}
    for turn in turns:
        for entity in turn["entities"]:
            if entity["entity"] in found and entity["value"] and str(entity["value"]) not in found[entity["entity"]]:
                found[entity["entity"]].append(str(entity["value"]))
    for name in _IDENTIFIER_SLOTS:
        if slots.get(name) and str(slots[name]) not in found[name]:
            found[name].append(str(slots[name]))
    return {f"{k}s": v for k, v in found.items()}


def summarise(request: Dict[str, Any], transcript: List[Dict[str, Any]], tracker: Dict[str, Any],
              identifiers: Dict[str, List[str]]) -> Dict[str, Any]:
    """Rule-based summary: the customer's main intent (and first words), what the bot did, why it escalated."""
    intents = Counter(t["intent"] for t in tracker["turns"] if t["intent"] and t["intent"] not in _GENERIC_INTENTS)
    main_intent = intents.most_common(1)[0][0] if intents else None
    customer_lines = [m["text"] for m in transcript if m["role"] == "customer" and not m["text"].startswith("/")]
    first_words = customer_lines[0][:160] if customer_lines else ""
    tried = [a["name"] for a in tracker["actions"]]
    tried_distinct = list(dict.fromkeys(tried))
    fallbacks = sum(1 for t in tracker["turns"] if t["intent"] == "nlu_fallback")
    ids = ", ".join(v for values in identifiers.values() for v in values)
    wants = main_intent or "unclear"
    parts = [f"Customer wants: {wants}" + (f" ({ids})" if ids else "") + (f' - "{first_words}"' if first_words else "")]
    parts.append("Bot tried: " + (", ".join(tried_distinct[:8]) if tried_distinct else "nothing recorded")
                 + (f"; {fallbacks} not understood" if fallbacks else "")
                 + (f"; {len(tracker['kb_articles'])} knowledge article(s) shown" if tracker["kb_articles"] else ""))
    parts.append(f"Escalated: {request['reason_code']}, priority {request['priority']}, "
                 f"frustration {request['frustration']['score']}")
    if request.get("summary"):
        parts.append(f"Bot's note: {request['summary']}")
    return {"text": ". ".join(parts) + ".", "customer_wants": main_intent, "first_message": first_words or None,
            "bot_tried": tried_distinct, "not_understood_turns": fallbacks, "provided": request.get("summary")}


def conversation_redactor(tracker_json: Dict[str, Any] | None, transcript: List[Dict[str, Any]]) -> Redactor:
    """The secrets of one conversation: verification slots and answers from the tracker, phones anywhere."""
    return Redactor.from_sources(tracker_json, [m.get("text") or "" for m in transcript])


def build_context(
    *,
    handoff_id: str,
    request: Dict[str, Any],
    transcript: List[Dict[str, Any]],
    tracker_json: Dict[str, Any] | None,
    earlier: List[Dict[str, Any]],
    created_at: float,
    effective_priority: int,
    redactor: Redactor | None = None,
) -> Dict[str, Any]:
    """Assemble the package (pure function: all I/O is done by the caller). ``redactor``: what to mask (by
    default learnt from this tracker and transcript, see :func:`conversation_redactor`)."""
    tracker = parse_tracker(tracker_json or {})
    redactor = redactor or conversation_redactor(tracker_json, transcript)
    transcript = [redactor.message(m) for m in transcript]
    for turn in tracker["turns"]:
        turn["text"] = redactor.text(turn["text"], customer=True)
        turn["entities"] = redactor.deep(turn["entities"])
    tracker["slots"] = redactor.slots(tracker["slots"])
    identifiers = redactor.deep(_collect_identifiers(tracker["slots"], tracker["turns"]))
    request = {**request, "signals": redactor.deep(request.get("signals") or {}),
               "summary": redactor.text(request["summary"]) if request.get("summary") else None}
    customer = request["customer"]
    package = {
        "$schema": SCHEMA_ID,
        "schema_version": SCHEMA_VERSION,
        "handoff_id": handoff_id,
        "conversation_id": request["conversation_id"],
        "channel": request["channel"],
        "created_at": iso(created_at),
        "customer": {"id": customer.get("id"), "tier": customer.get("tier"), "verified": customer.get("verified"),
                     "language": request["language"]},
        "escalation": {"reason_code": request["reason_code"], "priority": request["priority"],
                       "effective_priority": effective_priority, "signals": request.get("signals") or {}},
        "frustration": {"score": request["frustration"]["score"], "curve": request["frustration"].get("curve") or [],
                        "per_message": tracker["frustration_per_message"]},
        "summary": summarise(request, transcript, tracker, identifiers),
        "transcript": transcript,
        "turns": tracker["turns"],
        "slots": tracker["slots"],
        "identifiers": identifiers,
        "actions": tracker["actions"],
        "kb_articles": tracker["kb_articles"],
        "earlier_conversations": earlier,
        "tracker_available": tracker_json is not None,
        "privacy": dict(PRIVACY),
    }
    return scrub_stored(package, redactor)
