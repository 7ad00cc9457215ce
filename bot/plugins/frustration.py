"""Rasa graph component: scores every customer message for frustration (0-100).

The score and its evidence go into the parse data as ``frustration`` (``{"score": 73, "signals": {...}}``), so the
action server reads every past message's score from the tracker events, and into a ``frustration`` entity whose
value is the score as a string, so a ``from_entity`` slot mapping keeps a slot with the latest score. The scoring
itself is the pure-Python :mod:`bot.shared.frustration.scorer`; this class only trains, persists and loads it.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import yaml
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.nlu.constants import ENTITIES, INTENT, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from rasa.shared.utils.io import raise_warning

from bot.shared.frustration.classifier import LabelledMessage, load_training_data
from bot.shared.frustration.lexicon import Lexicon
from bot.shared.frustration.paths import resolve_data_path
from bot.shared.frustration.scorer import (
    ScoringContext,
    load_scoring_context,
    save_scoring_context,
    score_message,
    train_classifier,
    train_topics,
)
from bot.shared.frustration.topics import NONE, kb_topic_background, load_topic_data
from bot.shared.text import detect_language

logger = logging.getLogger(__name__)

FRUSTRATION = "frustration"
TRAINING_DATA_PATH = "training_data_path"
TOPICS_DATA_PATH = "topics_data_path"
SCORING_CONFIG_PATH = "scoring_config_path"
USE_NLU_BACKGROUND = "use_nlu_background"
ENTITY_NAME = "entity_name"


def nlu_background(training_data: TrainingData, lexicon: Lexicon) -> list[LabelledMessage]:
    """Calm background examples from the NLU training data: examples of the intents listed in scoring.yml."""
    spec = lexicon.raw.get("background") or {}
    calm_intents = set(spec.get("calm_intents") or [])
    weight = float(spec.get("weight", 0.5))
    examples = []
    for message in training_data.intent_examples:
        text = message.get(TEXT)
        if text and message.get(INTENT) in calm_intents:
            examples.append(LabelledMessage(text, "calm", detect_language(text) or "en", weight))
    return examples


def nlu_topic_background(training_data: TrainingData, lexicon: Lexicon) -> list[LabelledMessage]:
    """Topic-classifier background from the NLU data: calm intents as ``none``, ``topic_intents`` as their reason."""
    spec = lexicon.raw.get("background") or {}
    labels = {intent: NONE for intent in spec.get("calm_intents") or []}
    labels.update({str(k): str(v) for k, v in (spec.get("topic_intents") or {}).items()})
    weight = float(spec.get("weight", 0.5))
    examples = []
    for message in training_data.intent_examples:
        text = message.get(TEXT)
        label = labels.get(message.get(INTENT))
        if text and label:
            examples.append(LabelledMessage(text, label, detect_language(text) or "en", weight))
    return examples + kb_topic_background(spec, resolve_data_path)


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR], is_trainable=True)
class FrustrationScorer(GraphComponent, EntityExtractorMixin):
    """Adds ``frustration`` (score + signals) to the parse data and a ``frustration`` entity with the score."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        """Paths are relative to the project root (where ``rasa train`` runs)."""
        return {
            TRAINING_DATA_PATH: "data/frustration/train.yml",
            # Escalation reasons (sensitive topics, requests for a person, complaints); empty = no topic model.
            TOPICS_DATA_PATH: "data/frustration/topics.yml",
            SCORING_CONFIG_PATH: "data/frustration/scoring.yml",
            # Learn what ordinary messages look like from the NLU examples of calm intents (see scoring.yml).
            USE_NLU_BACKGROUND: True,
            ENTITY_NAME: FRUSTRATION,
        }

    def __init__(
        self,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        scoring: ScoringContext | None = None,
    ) -> None:
        self.component_config = config
        self._model_storage = model_storage
        self._resource = resource
        self._scoring = scoring

    @classmethod
    def fingerprint_addon(cls, config: dict[str, Any]) -> str | None:
        """Retrain when the labelled messages or the wording file change (they are not Rasa training data)."""
        merged = {**cls.get_default_config(), **config}
        digest = hashlib.sha256()
        for key in (TRAINING_DATA_PATH, SCORING_CONFIG_PATH, TOPICS_DATA_PATH):
            if not merged.get(key):
                continue
            path = resolve_data_path(merged[key])
            digest.update(path.read_bytes() if path.exists() else f"missing:{path}".encode())
        # The knowledge base's example questions are topic background (scoring.yml: background.kb.paths).
        if merged.get(TOPICS_DATA_PATH) and merged.get(SCORING_CONFIG_PATH):
            scoring = resolve_data_path(merged[SCORING_CONFIG_PATH])
            spec = yaml.safe_load(scoring.read_text(encoding="utf-8")) if scoring.exists() else {}
            background = (spec.get("background") if isinstance(spec, dict) else None) or {}
            for entry in (background.get("kb") or {}).get("paths") or []:
                root = resolve_data_path(entry)
                for path in sorted(root.glob("*.yml")) if root.is_dir() else [root]:
                    digest.update(path.read_bytes() if path.exists() else f"missing:{path}".encode())
        return digest.hexdigest()

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> FrustrationScorer:
        return cls({**cls.get_default_config(), **config}, model_storage, resource)

    def train(self, training_data: TrainingData) -> Resource:
        """Compile the wording and train both classifiers on their labelled files (+ NLU background), then persist."""
        lexicon = Lexicon.from_yaml(resolve_data_path(self.component_config[SCORING_CONFIG_PATH]))
        examples = load_training_data(resolve_data_path(self.component_config[TRAINING_DATA_PATH]))
        use_background = self.component_config[USE_NLU_BACKGROUND]
        if use_background:
            background = nlu_background(training_data, lexicon)
            logger.debug("frustration classifier: %d labelled + %d background examples", len(examples), len(background))
            examples = examples + background
        topics = None
        if self.component_config.get(TOPICS_DATA_PATH):
            topic_examples = load_topic_data(resolve_data_path(self.component_config[TOPICS_DATA_PATH]))
            if use_background:
                topic_examples = topic_examples + nlu_topic_background(training_data, lexicon)
            topics = train_topics(topic_examples, lexicon)
        self._scoring = ScoringContext(lexicon, train_classifier(examples, lexicon), topics)
        self.persist()
        return self._resource

    def persist(self) -> None:
        if self._scoring is None:
            return
        with self._model_storage.write_to(self._resource) as directory:
            save_scoring_context(self._scoring, Path(directory))

    @classmethod
    def load(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> FrustrationScorer:
        """Load the persisted wording + classifier; an untrained component scores nothing (with a warning)."""
        merged = {**cls.get_default_config(), **config}
        try:
            with model_storage.read_from(resource) as directory:
                try:
                    scoring = load_scoring_context(Path(directory))
                except (ValueError, KeyError, OSError) as error:  # present but unreadable: never score silently
                    raise RuntimeError(f"{cls.__name__}: corrupt model files in {directory}: {error}") from error
        except ValueError:  # the resource does not exist (component never trained)
            raise_warning(
                f"{cls.__name__} has no trained model in this resource; messages get no frustration score. "
                "Retrain the model."
            )
            return cls(merged, model_storage, resource)
        return cls(merged, model_storage, resource, scoring)

    def process(self, messages: list[Message]) -> list[Message]:
        """Score each message; write the parse-data entry and replace any earlier ``frustration`` entity."""
        if self._scoring is None:
            return messages
        entity_name = self.component_config[ENTITY_NAME]
        for message in messages:
            result = score_message(message.get(TEXT) or "", context=self._scoring)
            message.set(FRUSTRATION, {"score": result.score, "signals": result.signals}, add_to_output=True)
            entities = [e for e in message.get(ENTITIES, []) if e.get("entity") != entity_name]
            entities.append(
                {
                    "entity": entity_name,
                    "value": str(result.score),
                    "start": 0,
                    "end": 0,
                    "confidence_entity": 1.0,
                    "extractor": self.__class__.__name__,
                }
            )
            message.set(ENTITIES, entities, add_to_output=True)
        return messages
