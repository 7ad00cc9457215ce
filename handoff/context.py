"""The context package an agent (or an external helpdesk) receives at handoff time.

Built from the gateway's own message stream (the complete transcript, both sides, with timestamps), the escalation
request of the action server with the tracker part it built (intents and confidences per turn, entities, slots,
actions and their results, knowledge articles, per-message frustration: bot/shared/context_tracker.py) and the
customer's earlier handoffs. The desk never reads Rasa's tracker for it. The shape is
documented as a versioned JSON schema in docs/handoff-context.schema.json; bump SCHEMA_VERSION on any change.

No secrets (1.1.0): verification digits are removed and phone numbers masked everywhere in the package (transcript,
turns, slots, identifiers, summary, signals); see bot/shared/redact.py. The desk checks once more before storing.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Dict, Iterable, List, Set

from bot.shared.context_tracker import iso
from bot.shared.redact import DIGIT_RUN_RE, MASK, Redactor, scrub_stored
from bot.shared.text import to_halfwidth

SCHEMA_VERSION = "1.1.0"
SCHEMA_ID = "https://csbot.example/schemas/handoff-context/1.1.0"
_TRUNCATED = 50  # the smallest WEB_NLU_CHARS the gateway accepts (conversations/settings.py)
PRIVACY = {"phones": "masked", "verification_digits": "removed", "address": "region_only"}

# Intents that say nothing about what the customer wants.
_GENERIC_INTENTS = {"greet", "goodbye", "affirm", "deny", "thank", "thanks", "thankyou", "nlu_fallback",
                    "out_of_scope", "request_human", "chitchat", "bot_challenge", "mood_unhappy", "insult"}
_IDENTIFIER_SLOTS = ("order_number", "tracking_number", "phone")
_EMPTY_TRACKER: Dict[str, Any] = {"turns": [], "actions": [], "kb_articles": [], "slots": {},
                                  "frustration_per_message": []}


def _learn_masked(turns: Iterable[Dict[str, Any]], texts: Iterable[str]) -> Set[str]:
    """Digit strings the action server masked in its (redacted) turn texts, read at the same places of the raw
    customer messages the desk holds: the desk learns which digits are secrets without the action sending any."""
    generic = Redactor()
    raw = [generic.text(t) for t in texts if t]  # phones masked exactly as the action server masked them
    secrets: Set[str] = set()
    for turn in turns:
        masked = str(turn.get("text") or "")
        if MASK not in masked:
            continue
        for candidate in raw:
            # Rasa sees the first WEB_NLU_CHARS characters: a long message may be cut, a short one must be whole.
            if len(candidate) != len(masked) and not (len(masked) >= _TRUNCATED and len(candidate) > len(masked)):
                continue
            head = to_halfwidth(candidate[:len(masked)])
            if len(head) != len(masked) or any(m != c and not (m == MASK and c.isdigit())
                                               for m, c in zip(masked, head)):
                continue
            for run in DIGIT_RUN_RE.finditer(head):
                if set(masked[run.start():run.end()]) == {MASK}:
                    secrets.add(run.group(0))
    return secrets


def conversation_redactor(tracker_part: Dict[str, Any] | None, transcript: List[Dict[str, Any]]) -> Redactor:
    """The secrets of one conversation: phone tails anywhere in the transcript, and the digits the action server
    masked in the customer's messages (see :func:`_learn_masked`)."""
    texts = [str(m.get("text") or "") for m in transcript if m.get("role") == "customer"]
    base = Redactor.from_sources(None, texts)
    learned = _learn_masked((tracker_part or {}).get("turns") or [], texts)
    return Redactor(base.secrets | learned)


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


def build_context(
    *,
    handoff_id: str,
    request: Dict[str, Any],
    transcript: List[Dict[str, Any]],
    earlier: List[Dict[str, Any]],
    created_at: float,
    effective_priority: int,
    redactor: Redactor | None = None,
) -> Dict[str, Any]:
    """Assemble the package (pure function: all I/O is done by the caller). The tracker part is the one the action
    server built and sent with the request (``request["tracker"]``, see bot/shared/context_tracker.py); the desk
    checks it once more. ``redactor``: what to mask (default: :func:`conversation_redactor`)."""
    sent = request.get("tracker")
    redactor = redactor or conversation_redactor(sent, transcript)
    tracker = scrub_stored({**_EMPTY_TRACKER, **{k: v for k, v in (sent or {}).items() if k in _EMPTY_TRACKER}},
                           redactor)
    transcript = [redactor.message(m) for m in transcript]
    for turn in tracker["turns"]:
        turn["text"] = redactor.text(str(turn.get("text") or ""), customer=True)
    identifiers = redactor.deep(_collect_identifiers(tracker["slots"], tracker["turns"]))
    request = {k: v for k, v in request.items() if k != "tracker"}
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
        "tracker_available": sent is not None,
        "privacy": dict(PRIVACY),
    }
    return scrub_stored(package, redactor)
