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

from bot.plugins.identifiers import IdentifierExtractor
from bot.plugins.language import LanguageDetector
from bot.plugins.tokenizer import BilingualTokenizer
from bot.shared.paths import REPO_ROOT

ROOT = REPO_ROOT


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
    from bot.plugins.catalog_entities import CatalogEntityExtractor

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


def _user(text: str, intent: str, score: float):
    from rasa.shared.core.events import UserUttered

    parse = {"intent": {"name": intent, "confidence": 0.9}, "entities": [], "text": text,
             "frustration": {"score": score}}
    return UserUttered(text, parse["intent"], [], parse_data=parse)


def test_escalation_policy_round_trip_and_decisions(storage, context) -> None:
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import ActionExecuted, ActiveLoop
    from rasa.shared.core.events import UserUtteranceReverted as Rewind
    from rasa.shared.core.trackers import DialogueStateTracker

    from bot.plugins.escalation_policy import EscalationPolicy

    domain = Domain.from_dict({"intents": ["greet", "complaint", "nlu_fallback"],
                               "slots": {"handoff_active": {"type": "bool", "mappings": [{"type": "custom"}]},
                                         "customer_tier": {"type": "text", "mappings": [{"type": "custom"}]}},
                               "actions": ["action_handoff_to_human", "order_form"],
                               "forms": {"order_form": {"required_slots": []}}})
    config = {**EscalationPolicy.get_default_config(), "escalation_config": str(ROOT / "data" / "escalation.yml")}
    resource = Resource("escalation")
    EscalationPolicy.create(config, storage, resource, context).train([], domain)
    policy = EscalationPolicy.load(config, storage, resource, context)
    handoff = domain.index_for_action("action_handoff_to_human")

    def decide(*events):
        tracker = DialogueStateTracker.from_events("t", [ActionExecuted("action_listen"), *events])
        return policy.predict_action_probabilities(tracker, domain).probabilities

    calm = decide(_user("hello there", "greet", 3))
    assert max(calm) == 0.0
    angry = decide(_user("this is a scam, garbage service!!!", "greet", 96))
    assert angry[handoff] == 1.0
    safety = decide(_user("the charger caught fire and burned my hand", "greet", 10))
    assert safety[handoff] == 1.0
    failures = [_user("??", "nlu_fallback", 5), ActionExecuted("action_listen"), _user("asdf", "nlu_fallback", 5)]
    assert decide(*failures)[handoff] == 1.0
    assert max(decide(ActiveLoop("order_form"), *failures)) == 0.0  # a form validates its own answers
    handed_over = [ActionExecuted("action_listen"), _user("garbage!!!", "greet", 96),
                   ActionExecuted("action_handoff_to_human")]
    after = DialogueStateTracker.from_events("t", handed_over)
    listen = domain.index_for_action("action_listen")
    assert policy.predict_action_probabilities(after, domain).probabilities[listen] == 1.0

    # The same question sent four times: escalated when each time the bot really answered and was asked again, but
    # not when the gateway undid each failed turn (rewind + listen) and the customer only retried.
    question = "how do I return an item?"
    asked = [e for _ in range(3) for e in (_user(question, "greet", 0), ActionExecuted("order_form"),
                                           ActionExecuted("action_listen"))]
    undone = (ActionExecuted("order_form"), ActionExecuted("action_listen"), Rewind(), ActionExecuted("action_listen"))
    retried = [e for _ in range(3) for e in (_user(question, "greet", 0), *undone)]
    assert decide(*asked, _user(question, "greet", 0))[handoff] == 1.0
    assert max(decide(*retried, _user(question, "greet", 0))) == 0.0


def test_escalation_policy_records_its_decision_for_the_handoff_action(storage, context) -> None:
    """One decision: every customer message's prediction carries the escalation record (reason and priority per
    tier) as a SlotSet, also when the policy abstains (a rule may still choose the handoff: explicit request)."""
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import ActionExecuted, SlotSet
    from rasa.shared.core.trackers import DialogueStateTracker

    from bot.plugins.escalation_policy import EscalationPolicy
    from bot.shared.frustration.decision import DECISION_SLOT, for_handoff

    domain = Domain.from_dict({"intents": ["greet", "request_human"],
                               "slots": {DECISION_SLOT: {"type": "any", "influence_conversation": False,
                                                         "mappings": [{"type": "custom"}]}},
                               "actions": ["action_handoff_to_human"]})
    config = {**EscalationPolicy.get_default_config(), "escalation_config": str(ROOT / "data" / "escalation.yml")}
    resource = Resource("escalation-record")
    EscalationPolicy.create(config, storage, resource, context).train([], domain)
    policy = EscalationPolicy.load(config, storage, resource, context)

    def predict(*events):
        tracker = DialogueStateTracker.from_events("t", [ActionExecuted("action_listen"), *events])
        return policy.predict_action_probabilities(tracker, domain)

    fire = predict(_user("the charger caught fire and burned my hand", "greet", 10))
    ((event,),) = [fire.events]
    assert isinstance(event, SlotSet) and event.key == DECISION_SLOT and event.value["escalate"] is True
    assert for_handoff(event.value, "regular", "greet", False)["reason"] == "sensitive_safety"
    assert for_handoff(event.value, "regular", "greet", False)["priority"] == 1
    asked = predict(_user("please", "request_human", 3))
    assert for_handoff(asked.events[0].value, None, "request_human", False)["reason"] == "explicit_request"
    calm = predict(_user("hello", "greet", 3))
    assert max(calm.probabilities) == 0.0 and calm.events[0].value["escalate"] is False
    # A rule may still choose the handoff (a button): the record then says what the customer asked for.
    offered = for_handoff(calm.events[0].value, None, "greet", False)
    assert offered["reason"] == "explicit_request" and offered["priority"] == 4
    # After the handoff action: no new record (the turn's record stays the one the action read).
    after = predict(_user("garbage!!!", "greet", 96), ActionExecuted("action_handoff_to_human"))
    assert after.events == []


def test_escalation_policy_cache_key_follows_the_escalation_file(tmp_path) -> None:
    """Rasa reuses a cached trained component when its fingerprint is unchanged: editing data/escalation.yml must
    change it, or a retrain keeps the old thresholds and lists."""
    from bot.plugins.escalation_policy import EscalationPolicy

    config = tmp_path / "escalation.yml"
    config.write_text("a: 1\n", encoding="utf-8")
    first = EscalationPolicy.fingerprint_addon({"escalation_config": str(config)})
    assert first == EscalationPolicy.fingerprint_addon({"escalation_config": str(config)})
    config.write_text("a: 2\n", encoding="utf-8")
    assert EscalationPolicy.fingerprint_addon({"escalation_config": str(config)}) != first
