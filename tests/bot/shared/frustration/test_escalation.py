"""Escalation rules: each reason code, precedence, tiers and priorities, and the look-alikes that must not fire."""
from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from bot.shared.frustration.escalation import (
    COMPLAINT,
    EXPLICIT_REQUEST,
    HIGH_FRUSTRATION,
    REASON_CODES,
    REPEATED_FAILURE,
    EscalationConfig,
    EscalationEngine,
    EscalationRequest,
)
from bot.shared.frustration.paths import DEFAULT_ESCALATION_PATH


def decide(engine: EscalationEngine, text: str, **kwargs: Any):
    kwargs.setdefault("frustration", 0)
    return engine.evaluate(EscalationRequest(text=text, **kwargs))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("我要起诉你们", "sensitive_legal"),
        ("I've talked to my lawyer", "sensitive_legal"),
        ("不解决我就打12315", "sensitive_regulator"),
        ("I'll take this to the consumer association", "sensitive_regulator"),
        ("我要找媒体曝光你们", "sensitive_media"),
        ("I'm going to the press with this", "sensitive_media"),
        ("充电宝充电时起火了", "sensitive_safety"),
        ("my kid got hurt by the toy", "sensitive_safety"),
        ("我的卡被盗刷了", "sensitive_fraud"),
        ("there's an unauthorized charge on my card", "sensitive_fraud"),
    ],
)
def test_sensitive_topics_escalate_at_once_with_top_priority(engine: EscalationEngine, text: str, reason: str) -> None:
    result = decide(engine, text)
    assert result.should_escalate
    assert result.reason_code == reason
    assert result.priority == engine.config.priorities[reason]
    assert result.priority <= 2


@pytest.mark.parametrize(
    "text",
    [
        "这台相机的曝光补偿怎么调",
        "多媒体音箱有货吗",
        "do you sell a media player",
        "are these court shoes real suede?",
        "Kindle Fire case in red please",
        "爆炸头假发有黑色吗",
        "我想买个钓鱼竿",
        "my order DM2026123150 hasn't shipped",  # contains 12315 inside an order number
        "will this cream cause a rash?",
        "I didn't receive the verification code for login",
        # product names and attributes that contain a sensitive word
        "这款律师款的男士公文包有棕色吗",
        "想给儿子买个警察款的玩具车",
        "do you still have the attorney-style leather tote",
        "is the police car toy battery powered",
        "can this laptop burn a CD",
        "do you sell poison ivy relief cream",
        "where are your fraud prevention tips",
        "防范诈骗的宣传册有吗",
        "I need rear shock absorbers for my bike",
        # damaged or melted goods with nobody hurt are not a safety incident
        "the chocolate arrived melted, can you resend",
    ],
)
def test_look_alikes_of_sensitive_topics_do_not_escalate(engine: EscalationEngine, text: str) -> None:
    result = decide(engine, text)
    assert not result.should_escalate, result.signals["matches"]
    assert result.reason_code is None
    assert result.priority == engine.config.no_escalation_priority


@pytest.mark.parametrize(
    "text", ["转人工", "我要找真人", "get me a human", "agent please", "I want to speak to a manager",
             # asking what answers, then asking for a person: the request still counts
             "你是机器人吗 我要真人", "是真人还是机器人 转人工", "are you a bot? I want a real person"]
)
def test_explicit_request_for_a_person(engine: EscalationEngine, text: str) -> None:
    result = decide(engine, text)
    assert result.reason_code == EXPLICIT_REQUEST


@pytest.mark.parametrize(
    "text",
    [
        "不用转人工了，谢谢",
        "no need for a human, it's solved",
        "人工智能翻译机怎么用",
        "人工客服几点上班",
        "until what time are human agents available",
        "are you a bot?",
        "你是真人吗",
        "do you have human hair wigs",
        # "bot or person?" asks what answers; the alternative is not a request (a term after "or"/"还是" used to fire)
        "are you a robot or an actual human?",
        "is it ai or a person replying",
        "你到底是机器人还是真人",
        "屏幕对面是程序还是人啊",
    ],
)
def test_not_a_request_for_a_person(engine: EscalationEngine, text: str) -> None:
    assert not decide(engine, text).should_escalate


@pytest.mark.parametrize(
    "text",
    ["no need to get a human involved, just tell me the return address", "I don't need to speak to a manager"],
)
def test_english_negation_reaches_a_few_words(engine: EscalationEngine, text: str) -> None:
    assert not decide(engine, text).should_escalate


@pytest.mark.parametrize(
    "text",
    [
        "no, I want a human",
        "no bots please, a real person",
        "不要机器人我要人工",
        "I don't want to wait, need a human now",
        "no answer from the bot so get me a human",
    ],
)
def test_a_breaker_ends_the_negation(engine: EscalationEngine, text: str) -> None:
    assert decide(engine, text).reason_code == EXPLICIT_REQUEST


def test_request_human_intent_counts_even_without_wording(engine: EscalationEngine) -> None:
    result = decide(engine, "/request_human", intent="request_human")
    assert result.reason_code == EXPLICIT_REQUEST


def test_complaint_and_its_negation(engine: EscalationEngine) -> None:
    assert decide(engine, "我要投诉快递员").reason_code == COMPLAINT
    assert decide(engine, "I'd like to file a complaint").reason_code == COMPLAINT
    assert decide(engine, "anything", intent="complaint").reason_code == COMPLAINT
    assert not decide(engine, "我不是要投诉，只是问问").should_escalate
    assert not decide(engine, "I'm not complaining, just asking").should_escalate


def test_frustration_threshold_depends_on_tier(engine: EscalationEngine) -> None:
    threshold = engine.config.frustration_threshold
    assert threshold == 70
    assert decide(engine, "ok", frustration=69).should_escalate is False
    regular = decide(engine, "ok", frustration=70)
    assert regular.reason_code == HIGH_FRUSTRATION and regular.priority == 2
    gold_threshold = threshold + engine.config.tiers["gold"].threshold_offset
    platinum_threshold = threshold + engine.config.tiers["platinum"].threshold_offset
    assert platinum_threshold < gold_threshold < threshold
    assert decide(engine, "ok", frustration=int(gold_threshold), tier="gold").reason_code == HIGH_FRUSTRATION
    assert not decide(engine, "ok", frustration=int(gold_threshold) - 1, tier="gold").should_escalate
    assert decide(engine, "ok", frustration=int(platinum_threshold), tier="Platinum").should_escalate


def test_a_gold_customers_first_clear_annoyance_reaches_the_lowered_threshold(engine: EscalationEngine) -> None:
    """A rise counts in full (rise_alpha 1): smoothing must not eat the tier's threshold offset."""
    from bot.shared.frustration.conversation import Turn

    gold = engine.config.frustration_threshold + engine.config.tiers["gold"].threshold_offset
    turns = [Turn("the jacket came in the wrong size", 0), Turn("second time now, annoying", gold)]
    assert engine.assess_conversation(turns, tier="gold").reason_code == HIGH_FRUSTRATION
    assert not engine.assess_conversation(turns, tier=None).should_escalate


def test_melting_next_to_something_electrical_is_still_safety(engine: EscalationEngine) -> None:
    assert decide(engine, "the charger cable melted while plugged in").reason_code == "sensitive_safety"


def test_vip_tier_raises_priority_but_never_above_one(engine: EscalationEngine) -> None:
    assert decide(engine, "转人工").priority == 4
    assert decide(engine, "转人工", tier="gold").priority == 3
    assert decide(engine, "我要起诉", tier="platinum").priority == 1
    assert decide(engine, "转人工", tier="unknown-tier").priority == 4  # unknown = regular


def test_two_consecutive_failures_escalate(engine: EscalationEngine) -> None:
    assert not decide(engine, "hmm", consecutive_failures=1).should_escalate
    result = decide(engine, "hmm", consecutive_failures=2)
    assert result.reason_code == REPEATED_FAILURE and result.priority == 3


def test_precedence_and_priority_when_several_rules_fire(engine: EscalationEngine) -> None:
    result = decide(engine, "转人工！我要投诉，不然就找律师", frustration=90, consecutive_failures=3)
    assert result.reason_code == "sensitive_legal"
    assert result.signals["fired"] == [
        "sensitive_legal", EXPLICIT_REQUEST, COMPLAINT, HIGH_FRUSTRATION, REPEATED_FAILURE
    ]
    angry_request = decide(engine, "转人工", frustration=85)
    assert angry_request.reason_code == EXPLICIT_REQUEST
    assert angry_request.priority == 2, "the most urgent fired rule sets the priority"


def test_an_unsure_classifier_only_reason_yields_to_high_frustration(engine: EscalationEngine) -> None:
    below = engine.config.learned_yield_below
    assert 0.5 < below < 1
    text = "I pay for the fast delivery and it came late again"
    unsure = decide(engine, text, frustration=85, topics={"sensitive_fraud": below - 0.1})
    assert unsure.reason_code == HIGH_FRUSTRATION and unsure.priority == 2
    assert unsure.signals["yielded_to_frustration"] == ["sensitive_fraud"]
    calm = decide(engine, text, frustration=20, topics={"sensitive_fraud": below - 0.1})
    assert calm.reason_code == "sensitive_fraud", "without high frustration the classifier's reason stands"
    sure = decide(engine, text, frustration=85, topics={"sensitive_fraud": min(1.0, below + 0.1)})
    assert sure.reason_code == "sensitive_fraud"
    listed = decide(
        engine, "there is an unauthorized charge on my card", frustration=85, topics={"sensitive_fraud": 0.6}
    )
    assert listed.reason_code == "sensitive_fraud", "a listed term keeps its reason"


def test_repeat_complaint_raises_complaint_priority(engine: EscalationEngine) -> None:
    assert decide(engine, "我要投诉").priority == 3
    assert decide(engine, "我要投诉", repeat_complaint=True).priority == 2


def test_assess_events_reads_scores_and_failures_from_the_tracker(engine: EscalationEngine) -> None:
    def user(text: str, intent: str, score: int) -> dict[str, Any]:
        return {"event": "user", "text": text,
                "parse_data": {"intent": {"name": intent}, "frustration": {"score": score, "signals": {}}}}

    calm = [user("hi", "greet", 0), user("where is my order", "order_status", 5)]
    assert not engine.assess_events(calm).should_escalate
    furious = calm + [user("什么破服务！！！", "complaint", 92)]
    result = engine.assess_events(furious)
    assert result.reason_code == COMPLAINT  # the NLU intent is complaint; precedence puts it before frustration
    assert HIGH_FRUSTRATION in result.signals["fired"]
    failing = calm + [
        user("merge my orders", "ask_policy", 5), {"event": "action", "name": "action_fallback"},
        user("combine both orders", "ask_policy", 5), {"event": "action", "name": "action_fallback"},
    ]
    assert engine.assess_events(failing).reason_code == REPEATED_FAILURE
    assert not engine.assess_events([]).should_escalate


def _raw() -> dict[str, Any]:
    with open(DEFAULT_ESCALATION_PATH, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def test_config_file_is_complete_and_validated() -> None:
    raw = _raw()
    config = EscalationConfig.from_dict(raw)
    assert set(config.priorities) >= set(REASON_CODES)
    broken = copy.deepcopy(raw)
    del broken["priorities"]["complaint"]
    with pytest.raises(ValueError, match="priorities missing"):
        EscalationConfig.from_dict(broken)
    broken = copy.deepcopy(raw)
    broken["precedence"] = broken["precedence"][:-1]
    with pytest.raises(ValueError, match="precedence"):
        EscalationConfig.from_dict(broken)
    broken = copy.deepcopy(raw)
    broken["priorities"]["complaint"] = 7
    with pytest.raises(ValueError, match="between 1"):
        EscalationConfig.from_dict(broken)


@pytest.mark.parametrize(("text", "intent", "fires"), [
    ("我不是要投诉，就是提个意见：App上的字太小了，这种建议跟谁说", "complaint", False),
    ("this is not a complaint, just feedback about your search page", "complaint", False),
    ("I don't need a human, just tell me the return window", "request_human", False),
    ("我要投诉你们的快递员", "complaint", True),
    ("get me a human", "request_human", True),
])
def test_an_intent_does_not_fire_when_the_listed_terms_occur_only_negated(text: str, intent: str, fires: bool) -> None:
    """The NLU reads the topic (complaint), the rules read the negation ("not a complaint")."""
    engine = EscalationEngine.from_yaml(DEFAULT_ESCALATION_PATH)
    decision = decide(engine, text, intent=intent)
    reason = COMPLAINT if intent == "complaint" else EXPLICIT_REQUEST
    assert (reason in decision.signals["fired"]) is fires
