"""Rasa graph component: extracts order, tracking and phone numbers in Chinese and English messages.

Uses the shared patterns of :mod:`bot.shared.patterns`, so the action server validates with exactly the same rules.
"""
from __future__ import annotations

from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.message import Message

from bot.shared.patterns import ORDER_NUMBER, PHONE, TRACKING_NUMBER, find_identifiers

_OWN_ENTITIES = {ORDER_NUMBER, TRACKING_NUMBER, PHONE}


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=False)
class IdentifierExtractor(GraphComponent, EntityExtractorMixin):
    """Adds ``order_number`` / ``tracking_number`` / ``phone`` entities with normalised values."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {}

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> IdentifierExtractor:
        return cls()

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            text = message.get(TEXT) or ""
            entities = [e for e in message.get(ENTITIES, []) if e.get("entity") not in _OWN_ENTITIES]
            for match in find_identifiers(text):
                entities.append(
                    {
                        "entity": match.entity,
                        "value": match.value,
                        "start": match.start,
                        "end": match.end,
                        "confidence_entity": 1.0,
                        "extractor": self.__class__.__name__,
                    }
                )
            message.set(ENTITIES, entities, add_to_output=True)
        return messages
