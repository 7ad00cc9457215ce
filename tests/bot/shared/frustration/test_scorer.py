"""Message scoring: anger wording, shouting, sarcasm and the traps that must stay calm."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.shared.frustration.lexicon import Lexicon
from bot.shared.frustration.paths import DEFAULT_SCORING_PATH
from bot.shared.frustration.scorer import (
    Evidence,
    ScoringContext,
    combine_evidence,
    expected_anger,
    intensity_of,
    load_scoring_context,
    save_scoring_context,
    score_message,
)


def score(text: str, ctx: ScoringContext) -> int:
    return score_message(text, context=ctx).score


@pytest.mark.parametrize(
    "text",
    [
        "tmd 什么破快递",
        "sb客服，听不懂人话",
        "你们这个service真的trash",
        "what the fuck is wrong with you",
        "傻逼机器人",
        "给你们差评",
    ],
)
def test_insults_and_threats_score_high_in_both_languages(text: str, scoring_context: ScoringContext) -> None:
    result = score_message(text, context=scoring_context)
    assert result.score >= 70
    assert result.signals["hits"], "the wording rules must explain a high score"


@pytest.mark.parametrize(
    "text",
    [
        "THANK YOU SO MUCH!!!",
        "太好了！！！终于收到了！！！",
        "哈哈哈哈",
        "wow it arrived already!!! so fast!!!",
        "Great, it finally arrived after the delay!!",
    ],
)
def test_excited_happy_customers_stay_calm(text: str, scoring_context: ScoringContext) -> None:
    result = score_message(text, context=scoring_context)
    assert result.score < 30
    assert result.signals["sarcasm"] is False


@pytest.mark.parametrize(
    "text",
    [
        "this blender is seriously AMAZING!!!",
        "BEST. PURCHASE. EVER!!!",
        "OMG空气炸锅到了！！！超好用",
        "爱了爱了！！！下次还买",
        "绝了绝了！！！颜色太正了",
    ],
)
def test_praise_with_shouting_and_mild_words_is_excitement_not_anger(
    text: str, scoring_context: ScoringContext
) -> None:
    result = score_message(text, context=scoring_context)
    assert result.signals["positive"] is True
    assert result.score < 45, result.signals


def test_excitement_damping_needs_praise_and_only_mild_wording(scoring_context: ScoringContext) -> None:
    # without praise, "seriously??" + a failure stays annoyed; a strong word next to praise is not excitement
    assert score_message("seriously?? still nothing after two weeks", context=scoring_context).score >= 55
    strong = score_message("amazing, the worst service ever!!!", context=scoring_context)
    assert strong.signals["mild_only"] is False and strong.score >= 55


def test_air_fryer_is_a_product_not_anger(scoring_context: ScoringContext) -> None:
    result = score_message("空气炸锅有没有大一点的", context=scoring_context)
    assert result.signals["hits"] == {} and "空气炸锅" in result.signals["protected"]


def test_a_problem_that_comes_back_is_annoying_in_both_languages(scoring_context: ScoringContext) -> None:
    for text in ("有点烦，这是第二次改时间了", "wrong size again, second time now, a bit annoying"):
        result = score_message(text, context=scoring_context)
        assert "impatience" in result.signals["hits"] and result.score >= 50, (text, result.signals)


def test_shouting_raises_a_neutral_question(scoring_context: ScoringContext) -> None:
    calm = score_message("where is my order", context=scoring_context)
    shouted = score_message("WHERE IS MY ORDER???", context=scoring_context)
    assert calm.score < 30
    assert shouted.score >= calm.score + 30
    assert {"caps", "question"} <= set(shouted.signals["intensity_parts"])


@pytest.mark.parametrize("text", ["great, another delay 🙂", "真是太棒了，又延迟了", "呵呵，效率真高"])
def test_sarcasm_is_detected_and_counts_as_frustration(text: str, scoring_context: ScoringContext) -> None:
    result = score_message(text, context=scoring_context)
    assert result.signals["sarcasm"] is True
    assert result.score >= 45


@pytest.mark.parametrize(
    ("text", "protected"),
    [
        ("傻瓜相机还有货吗", "傻瓜相机"),
        ("Dick's Sporting Goods gift card?", "dick's sporting goods"),
        ("我想买几卷垃圾袋", "垃圾袋"),
        ("do you sell trash cans with lids", "trash cans"),
        ("2B铅笔有没有整盒卖的", "2b铅笔"),
    ],
)
def test_rude_looking_words_inside_names_are_not_insults(
    text: str, protected: str, scoring_context: ScoringContext
) -> None:
    result = score_message(text, context=scoring_context)
    assert result.signals["hits"] == {}
    assert protected in result.signals["protected"]
    assert result.score < 30


def test_scunthorpe_does_not_match_an_embedded_word(scoring_context: ScoringContext) -> None:
    result = score_message("I live in Scunthorpe, can you deliver?", context=scoring_context)
    assert result.signals["hits"] == {}
    assert result.score < 30


def test_protected_product_name_does_not_hide_a_real_insult_next_to_it(scoring_context: ScoringContext) -> None:
    result = score_message("垃圾袋质量太垃圾了", context=scoring_context)
    assert result.signals["hits"] == {"anger_strong": ["垃圾"]}
    assert result.signals["protected"] == ["垃圾袋"]


@pytest.mark.parametrize(
    "text",
    [
        "我不生气，只是问问",
        "I'm not angry, just asking",
        "你们不是骗子吧？",
        "包装什么破损都没有",
        "还没用过，可以退吗",
    ],
)
def test_negated_or_look_alike_wording_is_not_a_hit(text: str, scoring_context: ScoringContext) -> None:
    result = score_message(text, context=scoring_context)
    assert result.signals["hits"] == {}
    assert result.score < 70  # the classifier may still find it tense, but never at escalation level alone


def test_explicit_negative_feedback_about_the_bot(scoring_context: ScoringContext) -> None:
    for text in ("useless", "答非所问", "没用"):
        assert "negative_feedback" in score_message(text, context=scoring_context).signals["hits"]


def test_intensity_parts() -> None:
    lexicon = Lexicon.from_yaml(DEFAULT_SCORING_PATH)
    assert "elongation" in intensity_of("whyyyy", lexicon)[1]
    assert "question" in intensity_of("？？？", lexicon)[1]  # full-width question marks
    assert "cjk_repeat" in intensity_of("快快快", lexicon)[1]
    assert "cjk_repeat" not in intensity_of("哈哈哈哈", lexicon)[1]  # laughter is not anger
    assert "caps" not in intensity_of("SF JD ZTO VIP", lexicon)[1]  # codes are not shouting
    assert intensity_of("ok", lexicon) == (0.0, {})


def test_signals_are_json_serialisable_and_scores_bounded(scoring_context: ScoringContext) -> None:
    for text in ["", "😀", "？", "a" * 3000, "什么破服务！！！垃圾！！！骗子！！！", "DM2026110512"]:
        result = score_message(text, context=scoring_context)
        assert 0 <= result.score <= 100
        json.dumps(result.signals, ensure_ascii=False)


def test_saved_context_scores_exactly_like_the_trained_one(
    scoring_context: ScoringContext, tmp_path: Path
) -> None:
    save_scoring_context(scoring_context, tmp_path)
    loaded = load_scoring_context(tmp_path)
    texts = ["什么破服务！！！", "THANK YOU!!!", "great, another delay 🙂", "where is my refund", "你们有病吧"]
    assert [score(t, loaded) for t in texts] == [score(t, scoring_context) for t in texts]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "classifier.json", "classifier_bias.npy", "classifier_weights.npy", "scoring.json",
        "topics.json", "topics_bias.npy", "topics_weights.npy",
    ]


def test_wording_only_context_works_without_classifier() -> None:
    ctx = ScoringContext(Lexicon.from_yaml(DEFAULT_SCORING_PATH), None)
    assert score_message("你们这些骗子", context=ctx).score >= 50
    assert score_message("请问几点发货", context=ctx).score == 0


def test_malformed_scoring_config_is_rejected() -> None:
    with pytest.raises(ValueError, match="weight"):
        Lexicon.from_dict({"categories": {"anger": {"weight": 0, "terms": ["x"]}}})
    with pytest.raises(ValueError, match="no terms"):
        Lexicon.from_dict({"categories": {"anger": {"weight": 10, "terms": []}}})


def _combine() -> dict:
    return dict(Lexicon.from_yaml(DEFAULT_SCORING_PATH).combine)


def test_marked_sarcasm_counts_the_classifier_as_at_least_annoyed() -> None:
    combine = _combine()
    # The classifier reads sarcastic praise as praise (expected anger 0.1); a marker (🙄, 呵呵) overrides that.
    plain = Evidence(0.45, 0.1, 0.0, True, True, False, 0.05, sarcasm_marked=False)
    marked = Evidence(0.45, 0.1, 0.0, True, True, False, 0.05, sarcasm_marked=True)
    assert combine_evidence(marked, combine)[0] > combine_evidence(plain, combine)[0] + 0.15
    assert combine_evidence(marked, combine)[0] >= 0.69


def test_only_a_confident_angry_classifier_passes_the_no_wording_cap() -> None:
    combine = _combine()
    unsure = Evidence(0.0, 0.95, 0.0, False, False, False, 0.6)
    confident = Evidence(0.0, 0.95, 0.0, False, False, False, 0.9)
    praised = Evidence(0.0, 0.95, 0.0, True, False, False, 0.9)
    assert combine_evidence(unsure, combine)[0] == pytest.approx(combine["classifier_alone_cap"])
    assert combine_evidence(confident, combine)[0] >= 0.7
    assert combine_evidence(praised, combine)[0] < 0.3  # praise: damped, never escalates on the classifier alone


def test_annoyed_probability_lands_in_the_annoyed_band() -> None:
    combine = _combine()
    anger = expected_anger({"calm": 0.1, "annoyed": 0.85, "angry": 0.05}, combine)
    score = combine_evidence(Evidence(0.0, anger, 0.0, False, False, False, 0.05), combine)[0]
    assert 0.38 <= score <= 0.55


@pytest.mark.parametrize("text", ["挺烦的，又坏了", "这事特别烦", "实在烦躁"])
def test_degree_word_with_fan_is_mild_annoyance(text: str, scoring_context: ScoringContext) -> None:
    assert "anger_mild" in score_message(text, context=scoring_context).signals["hits"]


def test_trouble_is_not_annoyance(scoring_context: ScoringContext) -> None:
    assert "anger_mild" not in score_message("非常麻烦您了，谢谢", context=scoring_context).signals["hits"]
