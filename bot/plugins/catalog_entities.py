"""Rasa graph component: spaCy rule-based entity recognition of carriers and product categories (zh + en).

At training time it builds a blank spaCy pipeline (Chinese character tokenizer, which also splits Latin text) with
an ``entity_ruler`` from the editors' term list (``data/spacy/catalog_terms.yml``) and persists it inside the Rasa
model; at run time it loads it from there. Values are normalised ids shared with the order backend, so
"my 顺丰 parcel" and "SF Express" both give ``carrier=sf``. These entities feed order flows and the detection of
group incidents (many customers, same carrier or product, within an hour).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.shared.text import to_halfwidth

_LATIN = re.compile(r"[A-Za-z0-9]")


def build_pipeline(terms: dict[str, dict[str, list[str]]]) -> Any:
    """A blank zh spaCy pipeline whose entity ruler knows every term; the label is "<entity>|<id>"."""
    import spacy

    nlp = spacy.blank("zh")
    ruler = nlp.add_pipe("entity_ruler", config={"phrase_matcher_attr": "LOWER"})
    patterns = [
        {"label": f"{entity}|{value_id}", "pattern": to_halfwidth(term)}
        for entity, values in terms.items()
        for value_id, words in values.items()
        for term in words
    ]
    ruler.add_patterns(patterns)
    return nlp


def _on_word_boundary(text: str, start: int, end: int) -> bool:
    """Latin terms must not be part of a longer word ("bra" in "brand", "book" in "facebook")."""
    if _LATIN.match(text[start]) and start > 0 and _LATIN.match(text[start - 1]):
        return False
    return not (_LATIN.match(text[end - 1]) and end < len(text) and _LATIN.match(text[end]))


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=True)
class CatalogEntityExtractor(GraphComponent, EntityExtractorMixin):
    """Adds ``carrier`` and ``product_category`` entities found by a spaCy entity ruler."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {"terms_path": "data/spacy/catalog_terms.yml"}

    def __init__(
        self, config: dict[str, Any], model_storage: ModelStorage, resource: Resource, nlp: Any | None = None
    ) -> None:
        self._config = config
        self._storage = model_storage
        self._resource = resource
        self._nlp = nlp

    @classmethod
    def create(
        cls, config: dict[str, Any], model_storage: ModelStorage, resource: Resource,
        execution_context: ExecutionContext,
    ) -> CatalogEntityExtractor:
        return cls({**cls.get_default_config(), **config}, model_storage, resource)

    def train(self, training_data: TrainingData) -> Resource:
        terms = yaml.safe_load(Path(self._config["terms_path"]).read_text(encoding="utf-8"))
        self._nlp = build_pipeline(terms)
        with self._storage.write_to(self._resource) as directory:
            self._nlp.to_disk(directory / "spacy_pipeline")
        return self._resource

    @classmethod
    def load(
        cls, config: dict[str, Any], model_storage: ModelStorage, resource: Resource,
        execution_context: ExecutionContext, **kwargs: Any,
    ) -> CatalogEntityExtractor:
        import spacy

        with model_storage.read_from(resource) as directory:
            nlp = spacy.load(directory / "spacy_pipeline")
        return cls({**cls.get_default_config(), **config}, model_storage, resource, nlp)

    def process(self, messages: list[Message]) -> list[Message]:
        if self._nlp is None:
            return messages
        for message in messages:
            text = message.get(TEXT) or ""
            if not text:
                continue
            half = to_halfwidth(text)
            entities = [e for e in message.get(ENTITIES, []) if e.get("entity") not in ("carrier", "product_category")]
            seen = set()
            for ent in self._nlp(half).ents:
                entity, value = ent.label_.split("|", 1)
                if not _on_word_boundary(half, ent.start_char, ent.end_char) or (entity, value) in seen:
                    continue
                seen.add((entity, value))
                entities.append({"entity": entity, "value": value, "start": ent.start_char, "end": ent.end_char,
                                 "confidence_entity": 1.0, "extractor": self.__class__.__name__})
            message.set(ENTITIES, entities, add_to_output=True)
        return messages
