"""Conversation-level score: smoothing, repeats, failures, waiting, and reading tracker events."""
from __future__ import annotations

from typing import Any

import pytest

from bot.shared.frustration.conversation import (
    ConversationConfig,
    FailureSignals,
    Turn,
    count_repeated_requests,
    score_conversation,
    similarity,
    turns_from_events,
)

CONFIG = ConversationConfig(
    rise_alpha=0.85, decay_alpha=0.3, repeat_points=24, repeat_max_points=72, failure_points=10,
    sustained_threshold=30, sustained_points=8, sustained_max_points=24, wait_patience_seconds=30,
    wait_multiplier=1.2, wait_points_per_step=8, wait_step_seconds=30, wait_max_points=30,
    repeat_ignore_intents=frozenset({"affirm", "deny"}),
)


DISTINCT = ["where is my parcel", "the refund never came", "can I change the colour", "你们几点下班", "发票开错了"]


def turns(*scores: float) -> list[Turn]:
    return [Turn(DISTINCT[i], s) for i, s in enumerate(scores)]


def test_one_furious_message_counts_at_once() -> None:
    assert score_conversation(turns(90), config=CONFIG).score == 90


def test_rises_fast_and_decays_slowly() -> None:
    rising = score_conversation(turns(10, 90), config=CONFIG)
    assert rising.signals["smoothed"] == pytest.approx(10 + 0.85 * 80, abs=0.1)
    falling = score_conversation(turns(90, 10), config=CONFIG)
    assert falling.signals["smoothed"] == pytest.approx(90 - 0.3 * 80, abs=0.1)
    assert falling.score >= 60, "one polite message after a rant must not reset the mood"


def test_sustained_annoyance_adds_up() -> None:
    once = score_conversation(turns(5, 45), config=CONFIG)
    thrice = score_conversation(turns(45, 45, 45), config=CONFIG)
    assert thrice.signals["sustained_streak"] == 3
    assert thrice.score == 45 + 2 * 8
    assert thrice.score > once.score


def test_repeated_request_is_detected_by_text_and_by_intent() -> None:
    assert similarity("我的订单DM2026110333怎么还没发货", "我的订单DM2026110333为什么还没发货") >= 0.6
    by_text = [Turn("我的订单DM2026110333怎么还没发货", 0), Turn("我的订单DM2026110333为什么还没发货", 0)]
    assert count_repeated_requests(by_text, CONFIG) == 1
    by_intent = [Turn("where's my stuff", 0, "order_status"), Turn("any news on the parcel", 0, "order_status")]
    assert count_repeated_requests(by_intent, CONFIG) == 1
    ignored = [Turn("yes", 0, "affirm"), Turn("yes", 0, "affirm"), Turn("no", 0, "deny"), Turn("no", 0, "deny")]
    assert count_repeated_requests(ignored, CONFIG) == 0


def test_three_repeats_alone_reach_the_escalation_level() -> None:
    asks = [Turn("when will order DM2026110333 ship", 0)] * 4
    result = score_conversation(asks, config=CONFIG)
    assert result.signals["repeated_requests"] == 3
    assert result.score >= 70


def test_failures_and_waiting_add_points_only_beyond_patience() -> None:
    base = score_conversation(turns(20), config=CONFIG).score
    assert score_conversation(turns(20), consecutive_failures=2, config=CONFIG).score == base + 20
    assert score_conversation(turns(20), wait_seconds=30, config=CONFIG).score == base
    waited = score_conversation(turns(20), wait_seconds=45, config=CONFIG)
    assert waited.score == round(20 * 1.2 + 8)
    long_wait = score_conversation(turns(20), wait_seconds=600, config=CONFIG)
    assert long_wait.signals["points"]["wait"] == 30


def test_empty_conversation_scores_zero() -> None:
    assert score_conversation([], config=CONFIG).score == 0


def test_unknown_setting_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown"):
        ConversationConfig.from_dict({"rise_alfa": 0.5})


SIGNALS = FailureSignals(
    fallback_actions=frozenset({"action_fallback"}),
    fallback_intents=frozenset({"nlu_fallback"}),
    help_check_responses=frozenset({"utter_did_that_help"}),
    negative_intents=frozenset({"deny"}),
)


def user(text: str, intent: str, score: int | None = None) -> dict[str, Any]:
    parse: dict[str, Any] = {"intent": {"name": intent, "confidence": 0.9}, "entities": []}
    if score is not None:
        parse["frustration"] = {"score": score, "signals": {}}
    return {"event": "user", "text": text, "parse_data": parse}


def test_turns_and_consecutive_failures_from_tracker_events() -> None:
    events = [
        user("old session", "greet", 99),
        {"event": "session_started"},
        user("hi", "greet", 0),
        {"event": "bot", "text": "Hello!", "metadata": {"utter_action": "utter_greet"}},
        user("blah blah", "nlu_fallback", 10),
        {"event": "action", "name": "action_fallback"},
        user("can you merge my orders", "ask_policy", 20),
        {"event": "action", "name": "action_fallback"},
    ]
    found, failures = turns_from_events(events, SIGNALS)
    assert [t.text for t in found] == ["hi", "blah blah", "can you merge my orders"]
    assert [t.score for t in found] == [0, 10, 20]
    assert failures == 2


def test_did_that_help_no_counts_as_failure_and_success_resets() -> None:
    events = [
        user("where is my refund", "refund_status", 30),
        {"event": "bot", "text": "Did that help?", "metadata": {"utter_action": "utter_did_that_help"}},
        user("no", "deny"),
        {"event": "action", "name": "action_fallback"},  # same turn: counted once
    ]
    _, failures = turns_from_events(events, SIGNALS)
    assert failures == 1
    _, after_success = turns_from_events(events + [user("ok thanks", "thank", 0)], SIGNALS)
    assert after_success == 0


def test_shipped_config_lets_staying_annoyed_reach_the_thresholds() -> None:
    """With data/escalation.yml: a customer who stays annoyed (about 45 a message) is frustrated after three turns,
    a Gold customer (threshold 55) after two; one annoyed message or calm chatter never is."""
    from bot.shared.frustration.escalation import EscalationConfig

    shipped = EscalationConfig.from_yaml().conversation
    threshold = EscalationConfig.from_yaml().frustration_threshold
    assert score_conversation(turns(45, 45, 45), config=shipped).score >= threshold
    assert score_conversation(turns(45, 45), config=shipped).score >= threshold - 15
    assert score_conversation(turns(45), config=shipped).score < threshold - 15
    assert score_conversation(turns(20, 25, 20, 25), config=shipped).score < 30


def test_a_fallback_that_found_the_answer_is_not_a_failure() -> None:
    """The NLU fell back, but the bot answered from the knowledge base (it set the article slot): a calm follow-up
    after it must not count as the second failure in a row (it was escalated as "repeated failure")."""
    signals = FailureSignals(**{**SIGNALS.__dict__, "answered_slots": frozenset({"kb_last_article"})})
    answered = [
        user("换回来的东西又是坏的怎么办", "nlu_fallback", 10),
        {"event": "action", "name": "action_fallback"},
        {"event": "bot", "text": "...", "metadata": {}},
        {"event": "slot", "name": "kb_last_article", "value": "exchanges-replacement-faulty"},
    ]
    _, failures = turns_from_events(answered, signals)
    assert failures == 0
    _, failures = turns_from_events(answered + [user("能直接退钱吗", "nlu_fallback", 5)], signals)
    assert failures == 1  # the current turn, not yet answered
    not_answered = answered[:2] + [{"event": "slot", "name": "kb_last_article", "value": None}]
    _, failures = turns_from_events(not_answered + [user("能直接退钱吗", "nlu_fallback", 5)], signals)
    assert failures == 2
    _, failures = turns_from_events(answered, SIGNALS)  # without the setting: counted as before
    assert failures == 1


def test_the_shipped_config_names_the_article_slot_of_the_domain() -> None:
    import yaml

    from bot.shared.frustration.escalation import EscalationConfig
    from bot.shared.paths import REPO_ROOT

    slots = yaml.safe_load((REPO_ROOT / "domain.yml").read_text(encoding="utf-8"))["slots"]
    answered = EscalationConfig.from_yaml(REPO_ROOT / "data" / "escalation.yml").failures.answered_slots
    assert answered and answered <= set(slots)
