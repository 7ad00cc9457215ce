"""Rasa graph component: detects the language of every customer message (zh / en).

The result is written as ``language`` in the parse data and as a ``language`` entity, which fills the ``language``
slot through a ``from_entity`` mapping; responses pick their Chinese or English variant by that slot. A message
without language (emoji, digits only) leaves the slot alone unless the channel sends a UI-language hint.
"""
from __future__ import annotations

from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.nlu.constants import ENTITIES, METADATA, TEXT
from rasa.shared.nlu.training_data.message import Message

from bot.shared.text import SUPPORTED_LANGUAGES, detect_language

LANGUAGE = "language"


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=False)
class LanguageDetector(GraphComponent, EntityExtractorMixin):
    """Sets the message language from its script; falls back to the channel's ``ui_lang`` metadata hint."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {"metadata_hint_key": "ui_lang"}

    def __init__(self, config: dict[str, Any]) -> None:
        self._hint_key = config["metadata_hint_key"]

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> LanguageDetector:
        return cls({**cls.get_default_config(), **config})

    def _language_of(self, message: Message) -> str | None:
        language = detect_language(message.get(TEXT) or "")
        if language:
            return language
        metadata = message.get(METADATA) or {}
        hint = metadata.get(self._hint_key) if isinstance(metadata, dict) else None
        return hint if hint in SUPPORTED_LANGUAGES else None

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            language = self._language_of(message)
            if language is None:
                continue
            message.set(LANGUAGE, language, add_to_output=True)
            entities = [e for e in message.get(ENTITIES, []) if e.get("entity") != LANGUAGE]
            entities.append(
                {
                    "entity": LANGUAGE,
                    "value": language,
                    "start": 0,
                    "end": 0,
                    "confidence_entity": 1.0,
                    "extractor": self.__class__.__name__,
                }
            )
            message.set(ENTITIES, entities, add_to_output=True)
        return messages
