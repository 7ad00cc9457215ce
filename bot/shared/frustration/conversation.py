"""Conversation-level frustration: smooths message scores and adds what single messages cannot show.

A customer who repeats the same request, meets two fallbacks or waits beyond half a minute gets more frustrated
even when each message reads calm (the source report: waits over 30 s halve satisfaction). The smoothing rises
fast (one furious message counts at once) and decays slowly (one polite "ok" after a rant does not reset it).
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from bot.shared.text import to_halfwidth
from bot.shared.tracker_events import applied_events

FRUSTRATION_KEY = "frustration"
TOPICS_KEY = "topics"  # same key as bot.shared.frustration.topics.TOPICS_KEY (this module must not import numpy)
_NON_WORD = re.compile(r"[\s\W_]+", re.UNICODE)


@dataclass(frozen=True)
class ConversationConfig:
    """Weights of the conversation score (``conversation:`` in data/escalation.yml)."""

    rise_alpha: float = 0.85
    decay_alpha: float = 0.3
    repeat_similarity: float = 0.6
    repeat_lookback: int = 4
    repeat_min_chars: int = 5
    repeat_points: float = 12.0
    repeat_max_points: float = 30.0
    repeat_ignore_intents: frozenset[str] = frozenset()
    failure_points: float = 10.0
    failure_max_points: float = 30.0
    sustained_threshold: float = 35.0
    sustained_points: float = 6.0
    sustained_max_points: float = 18.0
    wait_patience_seconds: float = 30.0
    wait_multiplier: float = 1.2
    wait_points_per_step: float = 5.0
    wait_step_seconds: float = 30.0
    wait_max_points: float = 20.0

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ConversationConfig:
        """Build from the YAML mapping; unknown keys are an error (a typo must not silently keep a default)."""
        known = {f.name for f in fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"unknown conversation settings: {sorted(unknown)}")
        values: dict[str, Any] = dict(raw)
        if "repeat_ignore_intents" in values:
            values["repeat_ignore_intents"] = frozenset(values["repeat_ignore_intents"])
        return cls(**values)


@dataclass(frozen=True)
class Turn:
    """One customer message with its message-level score (and the NLU intent and topic probabilities if known)."""

    text: str
    score: float
    intent: str | None = None
    # Escalation reasons the topic classifier saw in this message, reason -> probability (see topics.py).
    topics: Mapping[str, float] | None = None


@dataclass(frozen=True)
class ConversationScore:
    """Conversation frustration 0-100 and its parts."""

    score: int
    signals: dict[str, Any]


def _bigrams(text: str) -> frozenset[str]:
    compact = _NON_WORD.sub("", to_halfwidth(text).lower())
    return frozenset(compact[i : i + 2] for i in range(len(compact) - 1))


def similarity(a: str, b: str) -> float:
    """Dice coefficient of character bigrams: language-independent and tolerant to small rewording."""
    grams_a, grams_b = _bigrams(a), _bigrams(b)
    if not grams_a or not grams_b:
        return 0.0
    return 2 * len(grams_a & grams_b) / (len(grams_a) + len(grams_b))


def count_repeated_requests(turns: Sequence[Turn], config: ConversationConfig) -> int:
    """Customer messages that repeat an earlier recent request (near-identical text or the same task intent)."""
    repeats = 0
    for i, turn in enumerate(turns):
        long_enough = len(_NON_WORD.sub("", turn.text)) >= config.repeat_min_chars
        for previous in turns[max(0, i - config.repeat_lookback) : i]:
            same_text = long_enough and similarity(turn.text, previous.text) >= config.repeat_similarity
            same_intent = (
                turn.intent is not None
                and turn.intent == previous.intent
                and turn.intent not in config.repeat_ignore_intents
            )
            if same_text or same_intent:
                repeats += 1
                break
    return repeats


def score_conversation(
    turns: Sequence[Turn],
    *,
    consecutive_failures: int = 0,
    wait_seconds: float = 0.0,
    config: ConversationConfig = ConversationConfig(),
) -> ConversationScore:
    """Smoothed frustration of a conversation so far.

    Args:
        turns: the customer's messages of this session, oldest first, with their message scores.
        consecutive_failures: bot failures in a row up to now (fallbacks, "did this help?" -> no).
        wait_seconds: how long the customer has been waiting for an answer or an agent.
        config: weights, from data/escalation.yml.
    """
    if not turns:
        return ConversationScore(0, {"turns": 0})
    smoothed = float(turns[0].score)
    for turn in turns[1:]:
        alpha = config.rise_alpha if turn.score > smoothed else config.decay_alpha
        smoothed += alpha * (float(turn.score) - smoothed)

    streak = 0
    for turn in reversed(turns):
        if turn.score < config.sustained_threshold:
            break
        streak += 1
    sustained = min(max(streak - 1, 0) * config.sustained_points, config.sustained_max_points)

    repeats = count_repeated_requests(turns, config)
    repeat_points = min(repeats * config.repeat_points, config.repeat_max_points)
    failure_points = min(max(consecutive_failures, 0) * config.failure_points, config.failure_max_points)

    multiplier, wait_points = 1.0, 0.0
    if wait_seconds > config.wait_patience_seconds:
        multiplier = config.wait_multiplier
        steps = (wait_seconds - config.wait_patience_seconds) / config.wait_step_seconds
        wait_points = min((1 + int(steps)) * config.wait_points_per_step, config.wait_max_points)

    total = smoothed * multiplier + sustained + repeat_points + failure_points + wait_points
    score = int(round(min(max(total, 0.0), 100.0)))
    return ConversationScore(
        score,
        {
            "turns": len(turns),
            "smoothed": round(smoothed, 1),
            "last_message": int(round(turns[-1].score)),
            "sustained_streak": streak,
            "repeated_requests": repeats,
            "consecutive_failures": consecutive_failures,
            "wait_seconds": wait_seconds,
            "points": {
                "sustained": sustained,
                "repeats": repeat_points,
                "failures": failure_points,
                "wait": wait_points,
                "wait_multiplier": multiplier,
            },
        },
    )


@dataclass(frozen=True)
class FailureSignals:
    """What counts as a bot failure in tracker events (``failures:`` in data/escalation.yml)."""

    fallback_actions: frozenset[str]
    fallback_intents: frozenset[str]
    help_check_responses: frozenset[str]
    negative_intents: frozenset[str]
    # Slots the bot sets when it gave the customer an answer (an article): such a turn did not fail, whatever the
    # NLU made of the message (the fallback found the article) - a calm follow-up is not a "repeated failure".
    answered_slots: frozenset[str] = frozenset()

    @classmethod
    def from_dict(cls, raw: Mapping[str, Iterable[str]]) -> FailureSignals:
        return cls(
            fallback_actions=frozenset(raw.get("fallback_actions", [])),
            fallback_intents=frozenset(raw.get("fallback_intents", [])),
            help_check_responses=frozenset(raw.get("help_check_responses", [])),
            negative_intents=frozenset(raw.get("negative_intents", [])),
            answered_slots=frozenset(raw.get("answered_slots", [])),
        )


def turns_from_events(
    events: Sequence[Mapping[str, Any]], failures: FailureSignals
) -> tuple[list[Turn], int]:
    """Customer turns of the current session and the consecutive bot failures at its end.

    Reads rasa-sdk tracker events (plain dicts) through :func:`bot.shared.tracker_events.applied_events`, so
    rewound, undone and restarted turns do not count: message scores come from the ``frustration`` entry that the
    FrustrationScorer component writes into each user message's parse data (0 when absent).
    """
    turns: list[Turn] = []
    consecutive = 0
    count_before_turn = 0
    turn_failed = False
    answered = False
    help_check_pending = False
    for event in applied_events(events):
        kind = event.get("event")
        if kind == "user":
            parse = event.get("parse_data") or {}
            intent = (parse.get("intent") or {}).get("name")
            frustration = parse.get(FRUSTRATION_KEY) or {}
            topics = (frustration.get("signals") or {}).get(TOPICS_KEY)
            turns.append(
                Turn(
                    event.get("text") or "",
                    float(frustration.get("score", 0)),
                    intent,
                    dict(topics) if isinstance(topics, Mapping) else None,
                )
            )
            count_before_turn = consecutive
            turn_failed = intent in failures.fallback_intents or (
                help_check_pending and intent in failures.negative_intents
            )
            answered = False
            help_check_pending = False
        elif kind == "action" and event.get("name") in failures.fallback_actions and turns:
            turn_failed = True
        elif kind == "slot" and event.get("name") in failures.answered_slots and event.get("value") and turns:
            answered = True
        elif kind == "bot":
            utter = (event.get("metadata") or {}).get("utter_action")
            if utter in failures.help_check_responses:
                help_check_pending = True
        if turns:
            consecutive = count_before_turn + 1 if turn_failed and not answered else 0
    return turns, consecutive
