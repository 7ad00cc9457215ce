"""The project's Rasa graph components, created/trained, persisted and loaded through Rasa's model storage."""
from __future__ import annotations

from pathlib import Path

import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.nlu.constants import TOKENS_NAMES
from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.components.identifiers import IdentifierExtractor
from bot.components.language import LanguageDetector
from bot.components.tokenizer import BilingualTokenizer

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def storage(tmp_path: Path) -> LocalModelStorage:
    return LocalModelStorage(tmp_path)


@pytest.fixture
def context() -> ExecutionContext:
    return ExecutionContext(GraphSchema({}), "test")


def _entities(message: Message, name: str) -> list:
    return [e["value"] for e in message.get(ENTITIES, []) if e["entity"] == name]


def test_language_detector_sets_language_entity_and_output(storage, context) -> None:
    component = LanguageDetector.create({}, storage, Resource("lang"), context)
    zh, en, emoji, hinted = (
        Message(data={TEXT: "我的快递到哪了"}),
        Message(data={TEXT: "where is my parcel"}),
        Message(data={TEXT: "😡😡"}),
        Message(data={TEXT: "👍", "metadata": {"ui_lang": "en"}}),
    )
    component.process([zh, en, emoji, hinted])
    assert _entities(zh, "language") == ["zh"] and zh.get("language") == "zh"
    assert _entities(en, "language") == ["en"]
    assert _entities(emoji, "language") == [] and emoji.get("language") is None
    assert _entities(hinted, "language") == ["en"]
    assert "language" in zh.as_dict(only_output_properties=True)


def test_identifier_extractor_keeps_offsets_and_normalises(storage, context) -> None:
    component = IdentifierExtractor.create({}, storage, Resource("ids"), context)
    text = "订单ｄｍ２０２６１１０５１２的快递SF123456789012，电话13812345678"
    message = Message(data={TEXT: text})
    component.process([message])
    by_entity = {e["entity"]: e for e in message.get(ENTITIES)}
    assert by_entity["order_number"]["value"] == "DM2026110512"
    order = by_entity["order_number"]
    assert text[order["start"] : order["end"]] == "ｄｍ２０２６１１０５１２"
    assert by_entity["tracking_number"]["value"] == "SF123456789012"
    assert by_entity["phone"]["value"] == "13812345678"


def test_tokenizer_persists_store_dictionary_and_drops_blank_tokens(storage, context) -> None:
    config = {**BilingualTokenizer.get_default_config(), "dictionary_path": str(ROOT / "data" / "jieba")}
    resource = Resource("tok")
    trained = BilingualTokenizer.create(config, storage, resource, context)
    trained.train(TrainingData([Message(data={TEXT: "hi"})]))

    loaded = BilingualTokenizer.load(config, storage, resource, context)
    message = Message(data={TEXT: "我想申请七天无理由退货 where is my ＯＲＤＥＲ"})
    loaded.process([message])
    tokens = [t.text for t in message.get(TOKENS_NAMES[TEXT])]
    assert "无理由退货" in tokens or "七天无理由" in tokens
    assert " " not in tokens and "" not in tokens
    assert tokens[-4:] == ["where", "is", "my", "ORDER"]


def test_catalog_entities_train_persist_load_round_trip(storage, context) -> None:
    from bot.components.catalog_entities import CatalogEntityExtractor

    resource = Resource("catalog")
    config = {"terms_path": str(ROOT / "data" / "spacy" / "catalog_terms.yml")}
    trained = CatalogEntityExtractor.create(config, storage, resource, context)
    trained.train(TrainingData([Message(data={TEXT: "hi"})]))
    loaded = CatalogEntityExtractor.load(config, storage, resource, context)

    texts = ["我的顺丰快递还没到，买的是车厘子", "my SF Express parcel with the sneakers is late",
             "the brand new facebook page", "ＺＴＯ lost my jacket"]
    outputs = []
    for component in (trained, loaded):
        messages = [Message(data={TEXT: t}) for t in texts]
        component.process(messages)
        outputs.append([sorted((e["entity"], e["value"]) for e in m.get(ENTITIES, [])) for m in messages])
    assert outputs[0] == outputs[1]
    assert outputs[1] == [
        [("carrier", "sf"), ("product_category", "fresh_food")],
        [("carrier", "sf"), ("product_category", "shoes")],
        [],
        [("carrier", "zto"), ("product_category", "apparel")],
    ]
