"""The Rasa graph component: train, persist, load, predict the same (pattern of Rasa's keyword classifier test).

Runs in the Rasa environment: /tmp/envs/rasa/bin/python -m pytest tests/bot/plugins/test_frustration_component.py
(in the 3.11 app environment, which has no Rasa, this module is reported as skipped).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("rasa.engine.graph", reason="the Rasa component is tested in the Python 3.10 Rasa environment")

from rasa.engine.graph import ExecutionContext, GraphSchema  # noqa: E402
from rasa.engine.recipes.default_recipe import DefaultV1Recipe  # noqa: E402
from rasa.engine.storage.local_model_storage import LocalModelStorage  # noqa: E402
from rasa.engine.storage.resource import Resource  # noqa: E402
from rasa.shared.nlu.constants import ENTITIES, INTENT, TEXT  # noqa: E402
from rasa.shared.nlu.training_data.message import Message  # noqa: E402
from rasa.shared.nlu.training_data.training_data import TrainingData  # noqa: E402

from bot.plugins.frustration import FrustrationScorer, nlu_background, nlu_topic_background  # noqa: E402
from bot.shared.frustration.lexicon import Lexicon  # noqa: E402
from bot.shared.frustration.paths import DEFAULT_SCORING_PATH  # noqa: E402

TEXTS = [
    "什么破服务！！！垃圾",
    "THANK YOU SO MUCH!!!",
    "great, another delay 🙂",
    "请问退款几天到账",
    "傻瓜相机还有货吗",
    "WHERE IS MY ORDER???",
]


@pytest.fixture
def model_storage(tmp_path: Path) -> LocalModelStorage:
    return LocalModelStorage(tmp_path)


@pytest.fixture
def execution_context() -> ExecutionContext:
    return ExecutionContext(GraphSchema({}), "frustration-test")


def nlu_data() -> TrainingData:
    examples = [
        Message(data={TEXT: "where is my order", INTENT: "order_status"}),
        Message(data={TEXT: "我的快递到哪了", INTENT: "order_status"}),
        Message(data={TEXT: "hello", INTENT: "greet"}),
        Message(data={TEXT: "my parcel is late", INTENT: "delivery_delay"}),
    ]
    return TrainingData(training_examples=examples)


def run(component: FrustrationScorer, texts: list[str]) -> list[dict[str, Any]]:
    messages = component.process([Message(data={TEXT: t}) for t in texts])
    return [m.as_dict(only_output_properties=True) for m in messages]


def test_component_is_registered_as_trainable_entity_extractor() -> None:
    registered = DefaultV1Recipe._from_registry("FrustrationScorer")
    assert registered.clazz is FrustrationScorer
    assert registered.is_trainable
    assert DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR in registered.types


def test_train_persist_load_predicts_the_same(
    model_storage: LocalModelStorage, execution_context: ExecutionContext
) -> None:
    resource = Resource("frustration_scorer")
    config = FrustrationScorer.get_default_config()
    trained = FrustrationScorer.create(config, model_storage, resource, execution_context)
    assert trained.train(nlu_data()) == resource
    before = run(trained, TEXTS)

    loaded = FrustrationScorer.load(config, model_storage, resource, execution_context)
    after = run(loaded, TEXTS)
    assert after == before

    scores = {text: out["frustration"]["score"] for text, out in zip(TEXTS, before, strict=True)}
    assert scores["什么破服务！！！垃圾"] >= 70
    assert scores["THANK YOU SO MUCH!!!"] < 30
    assert scores["请问退款几天到账"] < 30
    assert scores["傻瓜相机还有货吗"] < 30
    assert scores["great, another delay 🙂"] >= 45
    assert all("topics" in out["frustration"]["signals"] for out in before), "topic classifier persisted and loaded"


def test_output_carries_score_signals_and_entity(
    model_storage: LocalModelStorage, execution_context: ExecutionContext
) -> None:
    component = FrustrationScorer.create({}, model_storage, Resource("fs"), execution_context)
    component.train(nlu_data())
    message = Message(data={TEXT: "sb客服，听不懂人话", ENTITIES: [
        {"entity": "frustration", "value": "1", "start": 0, "end": 0, "extractor": "FrustrationScorer"},
        {"entity": "language", "value": "zh", "start": 0, "end": 0, "extractor": "LanguageDetector"},
    ]})
    [processed] = component.process([message])
    output = processed.as_dict(only_output_properties=True)
    score = output["frustration"]["score"]
    assert isinstance(score, int) and score >= 70
    assert output["frustration"]["signals"]["hits"]["insult"] == ["sb"]
    entities = output[ENTITIES]
    assert [e["entity"] for e in entities] == ["language", "frustration"], "old frustration entity replaced"
    assert entities[1] == {
        "entity": "frustration", "value": str(score), "start": 0, "end": 0, "confidence_entity": 1.0,
        "extractor": "FrustrationScorer",
    }


def test_nlu_background_uses_only_calm_intents() -> None:
    lexicon = Lexicon.from_yaml(DEFAULT_SCORING_PATH)
    background = nlu_background(nlu_data(), lexicon)
    assert [(e.text, e.lang, e.label) for e in background] == [
        ("where is my order", "en", "calm"), ("我的快递到哪了", "zh", "calm"), ("hello", "en", "calm"),
    ]


def test_nlu_topic_background_maps_intents_to_reasons() -> None:
    lexicon = Lexicon.from_yaml(DEFAULT_SCORING_PATH)
    data = TrainingData(training_examples=[
        Message(data={TEXT: "hello", INTENT: "greet"}),
        Message(data={TEXT: "转人工", INTENT: "request_human"}),
        Message(data={TEXT: "I want to complain", INTENT: "complaint"}),
        Message(data={TEXT: "my parcel is late", INTENT: "delivery_delay"}),
    ])
    background = nlu_topic_background(data, lexicon)
    assert [(e.text, e.label) for e in background[:3]] == [
        ("hello", "none"), ("转人工", "explicit_request"), ("I want to complain", "complaint"),
    ]
    # then the knowledge base's example questions, all calm (scoring.yml: background.kb)
    assert len(background) > 300 and {e.label for e in background[3:]} == {"none"}


def test_untrained_resource_loads_with_a_warning_and_scores_nothing(
    model_storage: LocalModelStorage, execution_context: ExecutionContext
) -> None:
    with pytest.warns(UserWarning, match="no trained model"):
        component = FrustrationScorer.load({}, model_storage, Resource("never-trained"), execution_context)
    [output] = run(component, ["什么破服务"])
    assert "frustration" not in output


def test_corrupt_model_is_an_error_not_a_silent_fallback(
    model_storage: LocalModelStorage, execution_context: ExecutionContext
) -> None:
    resource = Resource("fs")
    FrustrationScorer.create({}, model_storage, resource, execution_context).train(nlu_data())
    with model_storage.write_to(resource) as directory:
        (Path(directory) / "classifier.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(RuntimeError, match="corrupt"):
        FrustrationScorer.load({}, model_storage, resource, execution_context)


def test_fingerprint_follows_the_data_files(tmp_path: Path) -> None:
    train, scoring = tmp_path / "train.yml", tmp_path / "scoring.yml"
    train.write_text("a", encoding="utf-8")
    scoring.write_text("b", encoding="utf-8")
    config = {"training_data_path": str(train), "scoring_config_path": str(scoring)}
    first = FrustrationScorer.fingerprint_addon(config)
    assert FrustrationScorer.fingerprint_addon(config) == first
    train.write_text("a2", encoding="utf-8")
    assert FrustrationScorer.fingerprint_addon(config) != first


def test_fingerprint_follows_the_knowledge_base_the_topic_background_reads(tmp_path: Path) -> None:
    kb = tmp_path / "kb"
    kb.mkdir()
    (kb / "a.yml").write_text("articles: []", encoding="utf-8")
    scoring, topics = tmp_path / "scoring.yml", tmp_path / "topics.yml"
    scoring.write_text(f"background:\n  kb:\n    paths: [{kb}]\n", encoding="utf-8")
    topics.write_text("t", encoding="utf-8")
    config = {"scoring_config_path": str(scoring), "topics_data_path": str(topics)}
    first = FrustrationScorer.fingerprint_addon(config)
    (kb / "a.yml").write_text("articles: [{id: x}]", encoding="utf-8")
    assert FrustrationScorer.fingerprint_addon(config) != first
