"""Escalation reason codes: the one list every side imports (policy, engine, action server, desk, topic classifier).

The escalation engine (bot/shared/frustration/escalation.py) fires the first eight; ``csat_low`` is raised by the
desk itself when a customer rates a closed case 1-2 stars. The context package schema
(docs/handoff-context.schema.json) lists the same codes (tests/bot/shared/test_reasons.py checks it).
"""
from __future__ import annotations

EXPLICIT_REQUEST = "explicit_request"
HIGH_FRUSTRATION = "high_frustration"
REPEATED_FAILURE = "repeated_failure"
SENSITIVE_LEGAL = "sensitive_legal"
SENSITIVE_REGULATOR = "sensitive_regulator"
SENSITIVE_MEDIA = "sensitive_media"
SENSITIVE_SAFETY = "sensitive_safety"
SENSITIVE_FRAUD = "sensitive_fraud"
COMPLAINT = "complaint"
CSAT_LOW = "csat_low"

SENSITIVE_PREFIX = "sensitive_"
SENSITIVE_REASONS: tuple[str, ...] = (SENSITIVE_SAFETY, SENSITIVE_FRAUD, SENSITIVE_LEGAL, SENSITIVE_REGULATOR,
                                      SENSITIVE_MEDIA)
# What the bot's escalation engine can fire (every one needs a priority in data/escalation.yml).
BOT_REASONS: tuple[str, ...] = (
    EXPLICIT_REQUEST,
    HIGH_FRUSTRATION,
    REPEATED_FAILURE,
    SENSITIVE_LEGAL,
    SENSITIVE_REGULATOR,
    SENSITIVE_MEDIA,
    SENSITIVE_SAFETY,
    SENSITIVE_FRAUD,
    COMPLAINT,
)
# Every reason a handoff can carry.
ALL_REASONS: tuple[str, ...] = (*BOT_REASONS, CSAT_LOW)
# Reasons the customer can state in words (the topic classifier's labels besides "none").
STATED_REASONS: tuple[str, ...] = (EXPLICIT_REQUEST, COMPLAINT, SENSITIVE_SAFETY, SENSITIVE_FRAUD, SENSITIVE_LEGAL,
                                   SENSITIVE_REGULATOR, SENSITIVE_MEDIA)
# Reasons whose empathy line is "I can hear you're upset" (sensitive ones get the serious line, others the request).
UPSET_REASONS: tuple[str, ...] = (HIGH_FRUSTRATION, COMPLAINT, REPEATED_FAILURE)
