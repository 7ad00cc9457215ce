"""The context package an agent (or an external helpdesk) receives at handoff time.

Built from the gateway's own message stream (the complete transcript, both sides, with timestamps), the escalation
request of the action server with the tracker part it built (intents and confidences per turn, entities, slots,
actions and their results, knowledge articles, per-message frustration: bot/shared/context_tracker.py) and the
customer's earlier handoffs. The desk never reads Rasa's tracker for it. The shape is
documented as a versioned JSON schema in docs/handoff-context.schema.json; bump SCHEMA_VERSION on any change.

No secrets (1.1.0): verification digits are removed and phone numbers masked everywhere in the package (transcript,
turns, slots, identifiers, summary, signals); see bot/shared/redact.py. The desk checks once more before storing.

Readable for a person (1.2.0): a customer message that is a button's payload (``/affirm``, ``/csat{"stars":1}``, ``2``)
carries ``shown``, the button's title as the customer saw it (transcript and turns; :func:`label_buttons`, also used
for the console's live transcript); ``summary.bot_attempts`` says in words what the bot tried and what came of it
(:func:`describe_attempts`); Rasa's ``session_started_metadata`` is not a slot worth copying.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from bot.shared.context_tracker import iso
from bot.shared.redact import DIGIT_RUN_RE, MASK, Redactor, scrub_stored
from bot.shared.text import to_halfwidth

SCHEMA_VERSION = "1.3.0"
SCHEMA_ID = "https://csbot.example/schemas/handoff-context/1.3.0"
_TRUNCATED = 50  # the smallest WEB_NLU_CHARS the gateway accepts (conversations/settings.py)
PRIVACY = {"phones": "masked", "verification_digits": "removed", "address": "region_only"}

# Intents that say nothing about what the customer wants.
_GENERIC_INTENTS = {"greet", "goodbye", "affirm", "deny", "thank", "thanks", "thankyou", "nlu_fallback",
                    "out_of_scope", "request_human", "chitchat", "bot_challenge", "mood_unhappy", "insult"}
_IDENTIFIER_SLOTS = ("order_number", "tracking_number", "phone")
# Slots the package never carries: Rasa's session metadata (client details, not the customer's case).
_DROPPED_SLOTS = {"session_started_metadata", "phone_last4"}
_EMPTY_TRACKER: dict[str, Any] = {"turns": [], "actions": [], "kb_articles": [], "slots": {},
                                  "frustration_per_message": []}


def _learn_masked(turns: Iterable[dict[str, Any]], texts: Iterable[str]) -> set[str]:
    """Digit strings the action server masked in its (redacted) turn texts, read at the same places of the raw
    customer messages the desk holds: the desk learns which digits are secrets without the action sending any."""
    generic = Redactor()
    raw = [generic.text(t) for t in texts if t]  # phones masked exactly as the action server masked them
    secrets: set[str] = set()
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


def conversation_redactor(tracker_part: dict[str, Any] | None, transcript: list[dict[str, Any]]) -> Redactor:
    """The secrets of one conversation: phone tails anywhere in the transcript, and the digits the action server
    masked in the customer's messages (see :func:`_learn_masked`)."""
    texts = [str(m.get("text") or "") for m in transcript if m.get("role") == "customer"]
    base = Redactor.from_sources(None, texts)
    learned = _learn_masked((tracker_part or {}).get("turns") or [], texts)
    return Redactor(base.secrets | learned)


def _collect_identifiers(slots: dict[str, Any], turns: Iterable[dict[str, Any]]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {name: [] for name in _IDENTIFIER_SLOTS}
    for turn in turns:
        for entity in turn["entities"]:
            if entity["entity"] in found and entity["value"] and str(entity["value"]) not in found[entity["entity"]]:
                found[entity["entity"]].append(str(entity["value"]))
    for name in _IDENTIFIER_SLOTS:
        if slots.get(name) and str(slots[name]) not in found[name]:
            found[name].append(str(slots[name]))
    return {f"{k}s": v for k, v in found.items()}


def label_buttons(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The customer's button taps as they saw them: a customer message whose text is the payload of a button shown
    earlier (latest offer wins) gets ``shown`` = that button's title. Other messages are returned unchanged."""
    offered: dict[str, str] = {}
    out = []
    for message in messages:
        if message.get("role") == "customer":
            title = offered.get(str(message.get("text") or "").strip())
            out.append({**message, "shown": title} if title else message)
            continue
        for button in message.get("buttons") or []:
            if isinstance(button, dict) and button.get("payload") and button.get("title"):
                offered[str(button["payload"]).strip()] = str(button["title"])
        out.append(message)
    return out


# What an action means to a person reading the case; {order} is the order number the bot had, if any.
_ACTION_WORDS = {
    "action_order_status": "looked up {order}",
    "action_order_delay": "checked the delay of {order}",
    "action_order_cancel": "offered to cancel {order}",
    "action_order_change_address": "offered to change the address of {order}",
    "action_order_confirm": "carried out the confirmed change of {order}",
    "action_order_return": "started a return for {order}",
    "action_order_exchange": "started an exchange for {order}",
    "action_order_refund_status": "looked up the refund of {order}",
    "action_order_payment": "looked up the payment of {order}",
    "order_verification_form": "asked for the phone digits that verify {order}",
    "return_form": "asked what to return and why",
    "address_form": "asked for the new address",
    "action_out_of_scope": "said the question is outside what it can do",
}
_ORDER_LOOKUPS = {"action_order_status", "action_order_delay", "action_order_refund_status", "action_order_payment",
                  "action_order_cancel", "action_order_change_address", "action_order_return",
                  "action_order_exchange", "action_order_confirm"}
_FEEDBACK_WORDS = {"helpful": "customer said it helped", "not_helpful": "customer said it did not help",
                   "affirm": "customer said it helped", "deny": "customer said it did not help"}


def _first_sentence(text: str, limit: int = 90) -> str:
    text = " ".join(str(text).split())
    for stop in ("。", ". ", "！", "! ", "？", "? ", "\n"):
        cut = text.find(stop)
        if 0 < cut < limit:
            return text[:cut + len(stop.strip())]
    return text if len(text) <= limit else text[:limit - 1] + "…"


def describe_attempts(tracker: dict[str, Any], transcript: list[dict[str, Any]]) -> list[str]:
    """What the bot tried, in words, in order: order look-ups with the first sentence of the answer the customer
    got ("looked up DM2026110512: \"Your parcel is in transit...\""), knowledge answers with the customer's feedback
    ("answered 'Refund times' - customer said it did not help"), verification asked (and whether it succeeded),
    turns not understood. Actions without a meaning for a person (listen, validators, the handoff itself) are left
    out; an unknown action is named plainly."""
    slots = tracker.get("slots") or {}
    order = str(slots.get("order_number") or "") or "the order"
    verified = {str(o) for o in (slots.get("verified_orders") or []) if o}
    bot_lines = [m for m in transcript if m.get("role") == "bot" and m.get("text")]
    out: list[str] = []
    for action in tracker.get("actions") or []:
        name = str(action.get("name") or "")
        if name.startswith(("utter_", "validate_")) or name in {"action_handoff_to_human", "action_answer_policy",
                                                                 "action_kb_feedback", "action_fallback",
                                                                 "action_acknowledge_order_number",
                                                                 "action_ask_return_item", "action_listen"}:
            continue
        words = _ACTION_WORDS.get(name)
        if words is None:
            words = name.removeprefix("action_").replace("_", " ")
        line = words.format(order=order)
        if name == "order_verification_form":
            line += " - verified" if order in verified else ""
        if name in _ORDER_LOOKUPS and "rejected" not in (action.get("results") or []):
            ts = str(action.get("ts") or "")
            answer = next((m["text"] for m in bot_lines if str(m.get("ts") or "") >= ts), None) if ts else None
            if answer:
                line += f': "{_first_sentence(answer)}"'
        if not out or out[-1] != line:
            out.append(line)
    for article in tracker.get("kb_articles") or []:
        title = article.get("title") if isinstance(article.get("title"), str) else article.get("id")
        feedback = _FEEDBACK_WORDS.get(str(article.get("feedback") or ""))
        out.append(f"answered '{title}'" + (f" - {feedback}" if feedback else ""))
    fallbacks = sum(1 for t in tracker.get("turns") or [] if t.get("intent") == "nlu_fallback")
    if fallbacks:
        out.append(f"did not understand {fallbacks} message(s) and asked the customer to rephrase")
    return out


def summarise(request: dict[str, Any], transcript: list[dict[str, Any]], tracker: dict[str, Any],
              identifiers: dict[str, list[str]]) -> dict[str, Any]:
    """Rule-based summary: the customer's main intent (and first words), what the bot did, why it escalated."""
    intents = Counter(t["intent"] for t in tracker["turns"] if t["intent"] and t["intent"] not in _GENERIC_INTENTS)
    main_intent = intents.most_common(1)[0][0] if intents else None
    customer_lines = [m["text"] for m in transcript
                      if m["role"] == "customer" and not m["text"].startswith("/") and not m.get("shown")]
    first_words = customer_lines[0][:160] if customer_lines else ""
    tried = [a["name"] for a in tracker["actions"]]
    tried_distinct = list(dict.fromkeys(tried))
    fallbacks = sum(1 for t in tracker["turns"] if t["intent"] == "nlu_fallback")
    ids = ", ".join(v for values in identifiers.values() for v in values)
    wants = main_intent or "unclear"
    parts = [f"Customer wants: {wants}" + (f" ({ids})" if ids else "") + (f' - "{first_words}"' if first_words else "")]
    attempts = describe_attempts(tracker, transcript)
    parts.append("Bot tried: " + ("; ".join(attempts[:8]) if attempts else "nothing recorded")
                 + (f"; {fallbacks} not understood" if fallbacks else "")
                 + (f"; {len(tracker['kb_articles'])} knowledge article(s) shown" if tracker["kb_articles"] else ""))
    parts.append(f"Escalated: {request['reason_code']}, priority {request['priority']}, "
                 f"frustration {request['frustration']['score']}")
    if request.get("summary"):
        parts.append(f"Bot's note: {request['summary']}")
    return {"text": ". ".join(parts) + ".", "customer_wants": main_intent, "first_message": first_words or None,
            "bot_tried": tried_distinct, "bot_attempts": attempts, "not_understood_turns": fallbacks,
            "provided": request.get("summary")}


def build_context(
    *,
    handoff_id: str,
    request: dict[str, Any],
    transcript: list[dict[str, Any]],
    earlier: list[dict[str, Any]],
    created_at: float,
    effective_priority: int,
    redactor: Redactor | None = None,
) -> dict[str, Any]:
    """Assemble the package (pure function: all I/O is done by the caller). The tracker part is the one the action
    server built and sent with the request (``request["tracker"]``, see bot/shared/context_tracker.py); the desk
    checks it once more. ``redactor``: what to mask (default: :func:`conversation_redactor`)."""
    sent = request.get("tracker")
    redactor = redactor or conversation_redactor(sent, transcript)
    tracker = scrub_stored({**_EMPTY_TRACKER, **{k: v for k, v in (sent or {}).items() if k in _EMPTY_TRACKER}},
                           redactor)
    # Buttons are matched on the raw texts (a payload "2" would be masked as a short number), then redacted.
    labelled = label_buttons(transcript)
    payload_titles = {str(m["text"]).strip(): m["shown"] for m in labelled if m.get("shown")}
    transcript = []
    for message in labelled:
        shown = message.get("shown")
        message = redactor.message({k: v for k, v in message.items() if k not in ("buttons", "shown")})
        transcript.append({**message, "shown": redactor.text(shown)} if shown else message)
    tracker["slots"] = {k: v for k, v in tracker["slots"].items() if k not in _DROPPED_SLOTS}
    for turn in tracker["turns"]:
        raw = str(turn.get("text") or "").strip()
        turn["text"] = redactor.text(str(turn.get("text") or ""), customer=True)
        if raw in payload_titles:
            turn["shown"] = redactor.text(payload_titles[raw])
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
