"""The learned escalation-reason (topic) classifier: data, training, persistence and a few behaviours."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bot.shared.frustration.classifier import LabelledMessage, NgramClassifier, label_counts, ngram_features
from bot.shared.frustration.escalation import EscalationEngine, EscalationRequest
from bot.shared.frustration.paths import DEFAULT_TOPICS_PATH
from bot.shared.frustration.scorer import ScoringContext, load_scoring_context, save_scoring_context, score_message
from bot.shared.frustration.topics import NONE, TOPIC_LABELS, load_topic_data, similarity_groups, train_topic_classifier


def test_topic_data_is_large_bilingual_and_covers_every_label() -> None:
    examples = load_topic_data(DEFAULT_TOPICS_PATH)
    counts = label_counts(examples)
    for label in TOPIC_LABELS:
        for lang in ("zh", "en"):
            assert counts[(label, lang)] >= (150 if label == NONE else 60), (label, lang)
    texts = [e.text for e in examples]
    assert len(set(texts)) == len(texts), "duplicate topic training messages"


def _toy() -> list[LabelledMessage]:
    data = {
        NONE: ["where is my order", "thanks a lot", "fried chicken deal", "fire tv stick price"],
        "explicit_request": ["human please", "get me an agent", "real person now", "talk to a human"],
        "complaint": ["file a complaint", "I want to complain", "formal complaint", "complaint about staff"],
        "sensitive_safety": ["it caught fire", "burned my hand", "smoke and sparks", "kid got hurt"],
        "sensitive_fraud": ["scam call", "account hacked", "charged without consent", "fake agent scam"],
        "sensitive_legal": ["my lawyer", "see you in court", "I will sue", "legal action"],
        "sensitive_regulator": ["report to regulator", "consumer agency", "call the ftc", "regulator report"],
        "sensitive_media": ["post on twitter", "tell the press", "journalist story", "going viral online"],
    }
    return [LabelledMessage(t, label, "en") for label, texts in data.items() for t in texts]


def test_topic_classifier_learns_and_round_trips_through_files(tmp_path: Path) -> None:
    clf = train_topic_classifier(_toy(), str.lower, epochs=150)
    assert clf.labels == TOPIC_LABELS
    probs = dict(zip(clf.labels, clf.predict_proba("my lawyer will sue"), strict=True))
    assert max(probs, key=probs.__getitem__) == "sensitive_legal"
    clf.save(tmp_path, "topics")
    assert (tmp_path / "topics.json").exists() and not (tmp_path / "classifier.json").exists()
    loaded = NgramClassifier.load(tmp_path, "topics")
    assert loaded.labels == TOPIC_LABELS
    for text in ("human please", "it caught fire", "thanks"):
        assert np.allclose(loaded.predict_proba(text), clf.predict_proba(text))
        assert np.allclose(loaded.predict_proba_features(ngram_features(text)), clf.predict_proba(text))


def test_topic_classifier_refuses_unknown_labels() -> None:
    with pytest.raises(ValueError, match="every label"):
        train_topic_classifier(_toy() + [LabelledMessage("grr", "angry", "en")], str.lower, epochs=2)


def test_similarity_groups_keep_paraphrases_together() -> None:
    examples = [LabelledMessage(t, NONE, "en") for t in ("where is my order", "where is my order now", "hello")]
    groups = similarity_groups(examples)
    assert groups[0] == groups[1] != groups[2]


def test_scoring_context_round_trip_keeps_topic_output(scoring_context: ScoringContext, tmp_path: Path) -> None:
    save_scoring_context(scoring_context, tmp_path)
    loaded = load_scoring_context(tmp_path)
    assert loaded.topics is not None
    for text in ("电热毯半夜冒烟了", "my lawyer will contact you", "炸鸡桶有优惠吗"):
        assert score_message(text, context=loaded).signals == score_message(text, context=scoring_context).signals
    size = sum(f.stat().st_size for f in tmp_path.glob("topics*"))
    assert size < 4_000_000, f"topic model is {size} bytes"


# Written for this test (not evaluation messages): unseen wordings of each reason, and calm look-alikes.
REASONS = {
    "我家的电热水壶底座冒烟了，插头都烧黑了": "sensitive_safety",
    "the toaster sparked and now the kitchen smells like burnt plastic": "sensitive_safety",
    "有人冒充你们客服让我把钱转到安全账户": "sensitive_fraud",
    "someone pretending to be your staff asked for my bank login": "sensitive_fraud",
    "我已经请了律师，准备起诉你们": "sensitive_legal",
    "I'm talking to a lawyer about suing you": "sensitive_legal",
    "我会把这件事拍成视频发到网上": "sensitive_media",
    "I'll be posting this whole story on reddit": "sensitive_media",
    "帮我找个真人客服吧": "explicit_request",
    "could you get a real person to help me": "explicit_request",
}
CALM = [
    "炸鸡全家桶今天打折吗！！！", "火锅底料有辣的吗", "police car toy with lights, in stock?",
    "is the bath bomb set a good gift", "killer deal on headphones!!! still on?", "Fire TV remote sold separately?",
    "好的，谢谢", "ok thanks", "人工草坪一平米多少钱", "I don't need a human, just the tracking please",
]


@pytest.mark.parametrize("text", sorted(REASONS))
def test_unseen_wordings_fire_their_reason(
    text: str, scoring_context: ScoringContext, engine: EscalationEngine
) -> None:
    topics = score_message(text, context=scoring_context).signals["topics"]
    decision = engine.evaluate(EscalationRequest(text=text, frustration=0, topics=topics))
    assert decision.should_escalate and decision.reason_code == REASONS[text], (topics, decision.signals)


@pytest.mark.parametrize("text", CALM)
def test_calm_look_alikes_do_not_escalate(text: str, scoring_context: ScoringContext, engine: EscalationEngine) -> None:
    topics = score_message(text, context=scoring_context).signals["topics"]
    decision = engine.evaluate(EscalationRequest(text=text, frustration=0, topics=topics))
    assert not decision.should_escalate, (topics, decision.signals)


def test_negated_request_overrides_the_classifier(engine: EscalationEngine) -> None:
    text = "I don't need a human"
    fired = engine.evaluate(EscalationRequest(text="get me someone", frustration=0, topics={"explicit_request": 0.9}))
    assert fired.should_escalate and fired.reason_code == "explicit_request"
    negated = engine.evaluate(EscalationRequest(text=text, frustration=0, topics={"explicit_request": 0.9}))
    assert not negated.should_escalate


def test_learned_topics_config_is_validated(engine: EscalationEngine) -> None:
    assert set(engine.config.learned_topics) <= set(TOPIC_LABELS) - {NONE}
    assert all(0 < p <= 1 for p in engine.config.learned_topics.values())


def test_the_knowledge_base_questions_are_calm_topic_background(scoring_context: ScoringContext) -> None:
    """The KB's example questions are "none" for the topic classifier (except the articles about escalating), so a
    calm money question is not read as a fraud report, while a fraud report still is."""
    from bot.shared.frustration.lexicon import Lexicon
    from bot.shared.frustration.paths import DEFAULT_SCORING_PATH, resolve_data_path
    from bot.shared.frustration.topics import kb_topic_background

    spec = Lexicon.from_yaml(DEFAULT_SCORING_PATH).raw["background"]
    background = kb_topic_background(spec, resolve_data_path)
    assert len(background) > 300 and {e.label for e in background} == {NONE}
    assert {e.lang for e in background} == {"zh", "en"}
    excluded = kb_topic_background({"kb": {**spec["kb"], "exclude": []}}, resolve_data_path)
    assert len(excluded) > len(background)  # how to complain / reach a person are left out

    def fraud(text: str) -> float:
        return float((score_message(text, context=scoring_context).signals.get("topics") or {}).get(
            "sensitive_fraud", 0.0))

    # without the background both read as fraud (0.84, 0.66)
    assert fraud("一个订单扣了我两次钱 银行短信有两条") < 0.5
    assert fraud("付款的时候银行卡被扣款了但是订单显示未付款") < 0.5
    assert fraud("有人冒充你们客服打电话骗我转账，已经被骗了两千块") >= 0.5
    assert fraud("someone hacked my account and placed orders with my saved card") >= 0.5
