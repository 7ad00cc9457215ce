"""Escalation rules: decides whether the bot hands over to a human, with a reason code and a queue priority.

All thresholds, word lists and priorities live in ``data/escalation.yml``; this module only applies them.
Rules (any one escalates): a sensitive topic (safety, fraud, legal, regulator, media) at once; an explicit
request for a person; a complaint; conversation frustration at or above the tier's threshold; too many bot
failures in a row. Gold/Platinum members get a lower threshold and a higher priority.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot.shared.frustration.conversation import (
    ConversationConfig,
    ConversationScore,
    FailureSignals,
    Turn,
    score_conversation,
    turns_from_events,
)
from bot.shared.frustration.lexicon import TermMatcher, compile_terms, normalize
from bot.shared.frustration.paths import DEFAULT_ESCALATION_PATH
from bot.shared.reasons import (  # noqa: F401 - re-exported
    BOT_REASONS,
    COMPLAINT,
    EXPLICIT_REQUEST,
    HIGH_FRUSTRATION,
    REPEATED_FAILURE,
    SENSITIVE_FRAUD,
    SENSITIVE_LEGAL,
    SENSITIVE_MEDIA,
    SENSITIVE_REASONS,
    SENSITIVE_REGULATOR,
    SENSITIVE_SAFETY,
)

# The reason codes live in bot/shared/reasons.py (one list for every side); re-exported here for the engine's users.
REASON_CODES = BOT_REASONS
REGULAR_TIER = "regular"
_CLAUSE_BREAK = re.compile(r"[.,!?;:，。！？；：\n]")
# How a match found only by the learned topic classifier is written in the signals (no listed term, no intent).
LEARNED_HIT = "classifier p="


@dataclass(frozen=True)
class Escalation:
    """The decision. ``priority`` 1 is the most urgent queue, 4 the least (also used when not escalating)."""

    should_escalate: bool
    reason_code: str | None
    priority: int
    signals: dict[str, Any]


@dataclass(frozen=True)
class EscalationRequest:
    """What the rules look at for the latest customer message."""

    text: str
    frustration: int
    consecutive_failures: int = 0
    tier: str | None = None
    intent: str | None = None
    repeat_complaint: bool = False
    conversation_signals: Mapping[str, Any] = field(default_factory=dict)
    # Topic classifier output for the message (reason -> probability), from the FrustrationScorer's signals.
    topics: Mapping[str, float] | None = None


@dataclass(frozen=True)
class PhraseMatcher:
    """Terms with protected look-alikes and optional negators (negation = a negator ending close before a hit).

    "Close" is at most ``negation_window_chars`` characters between negator and hit, or, when that gap is Latin
    text, at most ``negation_window_words`` words ("no need to get a human involved"). A scope breaker in the gap
    ("but", "I want", "我要") ends the negation: "no bot, I want a human", "不要机器人我要人工".
    """

    terms: TermMatcher | None
    protect: TermMatcher | None = None
    negators: TermMatcher | None = None
    negation_window_chars: int = 0
    negation_window_words: int = 0
    negation_breakers: TermMatcher | None = None

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> PhraseMatcher:
        terms = compile_terms(raw.get("terms") or [])
        if terms is None:
            raise ValueError("a phrase list needs at least one term")
        return cls(
            terms=terms,
            protect=compile_terms(raw.get("protect") or []),
            negators=compile_terms(raw.get("negators") or []),
            negation_window_chars=int(raw.get("negation_window_chars", 0)),
            negation_window_words=int(raw.get("negation_window_words", 0)),
            negation_breakers=compile_terms(raw.get("negation_breakers") or []),
        )

    def find(self, normalized_text: str) -> list[str]:
        """Non-negated matches in text that went through :func:`bot.shared.frustration.lexicon.normalize`."""
        text = normalized_text
        if self.protect is not None:
            text = self.protect.sub(lambda m: " " * len(m.group(0)), text)
        if self.terms is None:
            return []
        return [m.group(0) for m in self.terms.finditer(text) if not self._negated(text, m.start())]

    def only_negated(self, normalized_text: str) -> bool:
        """True when the terms occur only negated ("I don't need a human"): overrides the learned classifier."""
        text = normalized_text
        if self.protect is not None:
            text = self.protect.sub(lambda m: " " * len(m.group(0)), text)
        if self.terms is None:
            return False
        flags = [self._negated(text, m.start()) for m in self.terms.finditer(text)]
        return bool(flags) and all(flags)

    def _negated(self, text: str, start: int) -> bool:
        if self.negators is None:
            return False
        prefix = text[:start]
        breaks = list(_CLAUSE_BREAK.finditer(prefix))
        if breaks:
            prefix = prefix[breaks[-1].end():]
        for negator in self.negators.finditer(prefix):
            gap = prefix[negator.end():]
            if self.negation_breakers is not None and next(self.negation_breakers.finditer(gap), None):
                continue
            if len(gap) <= self.negation_window_chars:
                return True
            if gap.isascii() and len(gap.split()) <= self.negation_window_words:
                return True
        return False


@dataclass(frozen=True)
class TierRule:
    threshold_offset: float = 0.0
    priority_boost: int = 0


@dataclass(frozen=True)
class EscalationConfig:
    """Parsed ``data/escalation.yml``."""

    frustration_threshold: float
    failure_threshold: int
    tiers: Mapping[str, TierRule]
    priorities: Mapping[str, int]
    no_escalation_priority: int
    repeat_complaint_priority_boost: int
    precedence: tuple[str, ...]
    intents: Mapping[str, frozenset[str]]
    topics: Mapping[str, PhraseMatcher]
    explicit_request: PhraseMatcher
    complaint: PhraseMatcher
    conversation: ConversationConfig
    failures: FailureSignals
    complaints: Mapping[str, Any]
    # Reason -> probability at which the learned topic classifier fires it (reasons not listed never fire).
    learned_topics: Mapping[str, float] = field(default_factory=dict)
    # A reason only the classifier found, below this probability, gives way to high frustration (see evaluate).
    learned_yield_below: float = 0.0

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> EscalationConfig:
        """Validate and compile; a missing reason or priority outside 1-4 is an error, not a silent default."""
        priorities = {str(k): int(v) for k, v in raw["priorities"].items()}
        missing = set(REASON_CODES) - set(priorities)
        if missing:
            raise ValueError(f"priorities missing for {sorted(missing)}")
        if any(not 1 <= p <= 4 for p in priorities.values()):
            raise ValueError("priorities must be between 1 (most urgent) and 4")
        precedence = tuple(raw["precedence"])
        if sorted(precedence) != sorted(REASON_CODES):
            raise ValueError("precedence must list every reason code exactly once")
        topics = {name: PhraseMatcher.from_dict(spec) for name, spec in raw["topics"].items()}
        if set(topics) != set(SENSITIVE_REASONS):
            raise ValueError(f"topics must be exactly {SENSITIVE_REASONS}")
        tiers = {
            str(name).lower(): TierRule(float(spec.get("threshold_offset", 0)), int(spec.get("priority_boost", 0)))
            for name, spec in raw["tiers"].items()
        }
        thresholds = raw["thresholds"]
        learned_raw = (raw.get("learned_topics") or {}).get("min_probability") or {}
        learned = {str(k): float(v) for k, v in learned_raw.items()}
        allowed = set(SENSITIVE_REASONS) | {EXPLICIT_REQUEST, COMPLAINT}
        if set(learned) - allowed:
            raise ValueError(f"learned_topics may only name {sorted(allowed)}, got {sorted(set(learned) - allowed)}")
        if any(not 0 < p <= 1 for p in learned.values()):
            raise ValueError("learned_topics probabilities must be in (0, 1]")
        yield_below = float((raw.get("learned_topics") or {}).get("yield_to_frustration_below", 0.0))
        if not 0 <= yield_below <= 1:
            raise ValueError("learned_topics.yield_to_frustration_below must be in [0, 1]")
        return cls(
            frustration_threshold=float(thresholds["frustration"]),
            failure_threshold=int(thresholds["consecutive_failures"]),
            tiers=tiers,
            priorities=priorities,
            no_escalation_priority=int(raw.get("no_escalation_priority", 4)),
            repeat_complaint_priority_boost=int(raw.get("repeat_complaint_priority_boost", 0)),
            precedence=precedence,
            intents={k: frozenset(v) for k, v in (raw.get("intents") or {}).items()},
            topics=topics,
            explicit_request=PhraseMatcher.from_dict(raw["explicit_request"]),
            complaint=PhraseMatcher.from_dict(raw["complaint"]),
            conversation=ConversationConfig.from_dict(raw.get("conversation") or {}),
            failures=FailureSignals.from_dict(raw.get("failures") or {}),
            complaints=dict(raw.get("complaints") or {}),
            learned_topics=learned,
            learned_yield_below=yield_below,
        )

    @classmethod
    def from_yaml(cls, path: Path = DEFAULT_ESCALATION_PATH) -> EscalationConfig:
        with open(path, encoding="utf-8") as handle:
            return cls.from_dict(yaml.safe_load(handle))

    def tier_rule(self, tier: str | None) -> TierRule:
        """Rule of a membership tier; unknown or missing tiers are treated as regular."""
        return self.tiers.get((tier or REGULAR_TIER).lower(), self.tiers.get(REGULAR_TIER, TierRule()))


class EscalationEngine:
    """Applies the escalation rules; built once from the config and shared (it holds no per-user state)."""

    def __init__(self, config: EscalationConfig) -> None:
        self.config = config

    @classmethod
    def from_yaml(cls, path: Path = DEFAULT_ESCALATION_PATH) -> EscalationEngine:
        return cls(EscalationConfig.from_yaml(path))

    def sensitive_topics(self, text: str) -> dict[str, list[str]]:
        """Sensitive topics mentioned in a message, with the words that matched."""
        normalized = normalize(text)
        found = {}
        for name, matcher in self.config.topics.items():
            hits = matcher.find(normalized)
            if hits:
                found[name] = hits
        return found

    def evaluate(self, request: EscalationRequest) -> Escalation:
        """Decide for the latest message; see the module docstring for the rules."""
        cfg = self.config
        normalized = normalize(request.text)
        tier_rule = cfg.tier_rule(request.tier)
        threshold = cfg.frustration_threshold + tier_rule.threshold_offset
        matches: dict[str, list[str]] = dict(self.sensitive_topics(request.text))

        # An intent fires its reason unless the listed terms occur only negated: "我不是要投诉，就是提个意见", "I don't
        # need a human" - the NLU reads the topic, the rules read the negation.
        explicit = cfg.explicit_request.find(normalized)
        if request.intent in cfg.intents.get(EXPLICIT_REQUEST, ()) \
                and not cfg.explicit_request.only_negated(normalized):
            explicit.append(f"intent:{request.intent}")
        if explicit:
            matches[EXPLICIT_REQUEST] = explicit
        complaint = cfg.complaint.find(normalized)
        if request.intent in cfg.intents.get(COMPLAINT, ()) and not cfg.complaint.only_negated(normalized):
            complaint.append(f"intent:{request.intent}")
        if complaint:
            matches[COMPLAINT] = complaint
        negatable = {EXPLICIT_REQUEST: cfg.explicit_request, COMPLAINT: cfg.complaint}
        learned_only: dict[str, float] = {}
        for reason, probability in (request.topics or {}).items():
            threshold_p = cfg.learned_topics.get(reason)
            if threshold_p is None or probability < threshold_p:
                continue
            matcher = negatable.get(reason)
            if matcher is not None and reason not in matches and matcher.only_negated(normalized):
                continue  # "I'm not complaining", "不需要人工": the n-grams cannot read the negation, the rules can
            if reason not in matches:
                learned_only[reason] = probability
            matches.setdefault(reason, []).append(f"{LEARNED_HIT}{probability:.2f}")
        if request.frustration >= threshold:
            matches[HIGH_FRUSTRATION] = [f"score {request.frustration} >= {threshold:g}"]
        if request.consecutive_failures >= cfg.failure_threshold:
            matches[REPEATED_FAILURE] = [f"{request.consecutive_failures} failures in a row"]

        # An angry customer's words pull the n-gram classifier towards every reason a little ("I pay for premium
        # delivery" read as fraud, "还做不做生意" as a complaint); when high frustration fires anyway and only the
        # classifier, not very sure, suggests the reason, the frustration is the better-founded reason.
        yielded = sorted(
            reason for reason, p in learned_only.items()
            if HIGH_FRUSTRATION in matches and p < cfg.learned_yield_below
        )
        fired = [reason for reason in cfg.precedence if reason in matches and reason not in yielded]
        signals: dict[str, Any] = {
            "fired": fired,
            "matches": matches,
            "yielded_to_frustration": yielded,
            # Reasons only the learned classifier read (no listed term, no intent): weaker evidence that the action
            # server weighs against "this is a calm question" (actions/handoff.py: may_be_a_question).
            "learned_only": sorted(learned_only),
            "frustration": request.frustration,
            "threshold": threshold,
            "tier": (request.tier or REGULAR_TIER).lower(),
            "consecutive_failures": request.consecutive_failures,
            "repeat_complaint": request.repeat_complaint,
            "conversation": dict(request.conversation_signals),
        }
        if not fired:
            return Escalation(False, None, cfg.no_escalation_priority, signals)

        def priority_of(reason: str) -> int:
            boost = cfg.repeat_complaint_priority_boost if reason == COMPLAINT and request.repeat_complaint else 0
            return cfg.priorities[reason] - boost

        priority = max(1, min(priority_of(r) for r in fired) - tier_rule.priority_boost)
        return Escalation(True, fired[0], priority, signals)

    def assess_conversation(
        self,
        turns: Sequence[Turn],
        *,
        consecutive_failures: int = 0,
        tier: str | None = None,
        wait_seconds: float = 0.0,
        repeat_complaint: bool = False,
    ) -> Escalation:
        """Score the conversation (turns with message scores) and decide for its latest message."""
        if not turns:
            return Escalation(False, None, self.config.no_escalation_priority, {"fired": [], "turns": 0})
        conversation: ConversationScore = score_conversation(
            turns, consecutive_failures=consecutive_failures, wait_seconds=wait_seconds, config=self.config.conversation
        )
        latest = turns[-1]
        return self.evaluate(
            EscalationRequest(
                text=latest.text,
                frustration=conversation.score,
                consecutive_failures=consecutive_failures,
                tier=tier,
                intent=latest.intent,
                repeat_complaint=repeat_complaint,
                conversation_signals=conversation.signals,
                topics=latest.topics,
            )
        )

    def assess_events(
        self,
        events: Sequence[Mapping[str, Any]],
        *,
        tier: str | None = None,
        wait_seconds: float = 0.0,
        repeat_complaint: bool = False,
    ) -> Escalation:
        """Entry point for actions: decide from rasa-sdk ``tracker.events`` of the current conversation."""
        turns, failures = turns_from_events(events, self.config.failures)
        return self.assess_conversation(
            turns,
            consecutive_failures=failures,
            tier=tier,
            wait_seconds=wait_seconds,
            repeat_complaint=repeat_complaint,
        )
