"""The tracker part the action server sends, and how the desk learns what to mask without receiving secrets."""
from __future__ import annotations

from bot.shared.context_tracker import tracker_part
from handoff.context import build_context, conversation_redactor

DIGITS = "5310"


def _user(text: str, intent: str, ts: float) -> dict:
    return {"event": "user", "text": text, "timestamp": ts,
            "parse_data": {"intent": {"name": intent, "confidence": 0.9}, "entities": []}}


EVENTS = [
    {"event": "slot", "name": "requested_slot", "value": "phone_last4", "timestamp": 1.0},
    _user(f"ok it is {DIGITS} I think", "inform", 2.0),
    {"event": "action", "name": "utter_wrong", "timestamp": 2.1},
    _user("WORST SHOP EVER", "complaint", 3.0),
    {"event": "action", "name": "action_failed", "timestamp": 3.1},
    {"event": "rewind", "timestamp": 3.2},
    {"event": "action", "name": "action_listen", "timestamp": 3.3},
    _user("I want a human", "request_human", 4.0),
]


def test_the_action_side_part_honours_rewind_and_masks_what_it_knows() -> None:
    part = tracker_part(EVENTS, {"phone_last4": DIGITS, "language": "en"})
    assert [t["text"] for t in part["turns"]] == ["ok it is **** I think", "I want a human"]
    assert "phone_last4" not in part["slots"]


def test_the_desk_learns_the_masked_digits_from_the_raw_transcript() -> None:
    part = tracker_part(EVENTS, {"phone_last4": DIGITS})
    transcript = [{"role": "customer", "text": f"ok it is {DIGITS} I think", "ts": None},
                  {"role": "customer", "text": "I want a human", "ts": None},
                  {"role": "customer", "text": f"(later, to the agent) my code was {DIGITS}", "ts": None}]
    redactor = conversation_redactor(part, transcript)
    assert DIGITS in redactor.secrets
    request = {"conversation_id": "c", "channel": "webchat", "reason_code": "explicit_request", "priority": 4,
               "language": "en", "customer": {"id": None, "tier": "regular", "verified": False},
               "frustration": {"score": 10, "curve": []}, "signals": {}, "summary": None, "tracker": part}
    package = build_context(handoff_id="h", request=request, transcript=transcript, earlier=[], created_at=0.0,
                            effective_priority=4)
    assert DIGITS not in str(package)
    assert package["tracker_available"] is True and len(package["turns"]) == 2
    # Without the part (an old request) the transcript is still there, masked as far as the desk can tell.
    bare = build_context(handoff_id="h", request={**request, "tracker": None}, transcript=transcript, earlier=[],
                         created_at=0.0, effective_priority=4)
    assert bare["tracker_available"] is False and bare["turns"] == [] and len(bare["transcript"]) == 3
