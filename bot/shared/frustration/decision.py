"""The escalation decision as the Rasa policy records it and the handoff action reads it (one decision, one config).

On every customer message, ``EscalationPolicy`` (bot/plugins/escalation_policy.py) scores the conversation with the
engine built from the model's copy of data/escalation.yml and returns this record as a ``SlotSet`` of
:data:`DECISION_SLOT` in its prediction's ``events``. Rasa 3.6 applies the ``events`` of every policy's prediction
(winner or not) before the predicted action runs and logs them on the tracker, so the record reaches
``action_handoff_to_human`` however the action was chosen: by the policy itself (a rule fired) or by a rule
(explicit request, complaint, button). The action then only looks up, it never scores the curve again.

The record holds, for every membership tier the config knows, what a handoff in this turn would carry: the reason
(the first fired rule, else what the customer asked for: ``complaint`` for the complaint intent, otherwise
``explicit_request``), the priority, the priority if the complaint turns out to be a repeat (complaint statistics
live in Redis, which only the action server reads) and the scalar signals. The action picks the tier the server
vouches for (a forged ``customer_tier`` slot cannot raise the priority).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bot.shared.frustration.conversation import turns_from_events
from bot.shared.frustration.escalation import REGULAR_TIER, Escalation, EscalationEngine
from bot.shared.reasons import COMPLAINT, EXPLICIT_REQUEST

DECISION_SLOT = "escalation_decision"
# Priority used when no decision was recorded for the turn (Rasa running without the EscalationPolicy): the
# least urgent queue, with the reason the customer asked for.
UNDECIDED_PRIORITY = 4


def _scalars(signals: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in signals.items() if isinstance(v, (str, int, float, bool, list))}


def _variant(decision: Escalation, repeat: Escalation, requested: str, priorities: Mapping[str, int]
             ) -> dict[str, Any]:
    return {
        "escalate": decision.should_escalate,
        "reason": decision.reason_code if decision.should_escalate else requested,
        "priority": decision.priority if decision.should_escalate else priorities[requested],
        "repeat_complaint_priority": repeat.priority if repeat.should_escalate else priorities[requested],
        "signals": _scalars(decision.signals),
    }


def decide(engine: EscalationEngine, events: Sequence[Mapping[str, Any]], tier: str | None
           ) -> tuple[Escalation, dict[str, Any]]:
    """(the decision for ``tier``, the record for :data:`DECISION_SLOT`). ``events``: tracker events as dicts."""
    cfg = engine.config
    turns, failures = turns_from_events(events, cfg.failures)
    intent = turns[-1].intent if turns else None
    requested = COMPLAINT if intent == COMPLAINT else EXPLICIT_REQUEST
    by_tier = {}
    for name in sorted(set(cfg.tiers) | {REGULAR_TIER}):
        plain = engine.assess_conversation(turns, consecutive_failures=failures, tier=name)
        repeat = engine.assess_conversation(turns, consecutive_failures=failures, tier=name, repeat_complaint=True)
        by_tier[name] = _variant(plain, repeat, requested, cfg.priorities)
    decision = engine.assess_conversation(turns, consecutive_failures=failures, tier=tier)
    record: dict[str, Any] = {"tier": (tier or REGULAR_TIER).lower(), "escalate": decision.should_escalate,
                              "by_tier": by_tier}
    if intent == COMPLAINT:
        record["complaints"] = dict(cfg.complaints)  # the repeat/group windows, for the action's statistics
    return decision, record


def for_handoff(record: Mapping[str, Any] | None, tier: str | None, intent: str | None, repeat_complaint: bool
                ) -> dict[str, Any]:
    """What the handoff carries: ``reason``, ``priority``, ``signals`` from the policy's record for ``tier`` (the
    verified one; unknown tiers count as regular). Without a record: the reason asked for, least urgent."""
    variants = (record or {}).get("by_tier") or {}
    variant = variants.get((tier or REGULAR_TIER).lower()) or variants.get(REGULAR_TIER)
    if not variant:
        reason = COMPLAINT if intent == COMPLAINT else EXPLICIT_REQUEST
        return {"reason": reason, "priority": UNDECIDED_PRIORITY, "signals": {"decision": "missing"}}
    priority = variant["repeat_complaint_priority"] if repeat_complaint else variant["priority"]
    return {"reason": variant["reason"], "priority": int(priority),
            "signals": {**variant["signals"], "repeat_complaint": repeat_complaint}}
