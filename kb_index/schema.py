"""Value types shared by the builder, the retriever and the CLI."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from enum import Enum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Lang = Literal["zh", "en"]
LANGS: tuple[Lang, ...] = ("zh", "en")


class Confidence(str, Enum):
    """How sure the KB is that its best hit answers the question (see ``Retriever.classify``)."""

    CONFIDENT = "confident"
    MIDDLING = "middling"
    NONE = "none"


@dataclass(frozen=True)
class Hit:
    """One search result, title and answer already in the question's language."""

    id: str
    title: str
    score: float
    answer: str

    def to_dict(self) -> dict[str, str | float]:
        """JSON-ready form, as printed by ``python -m kb_index search --json``."""
        return asdict(self)


@dataclass(frozen=True)
class ArticleText:
    """One article's title and answer in one language (for a customer who picked a suggestion)."""

    id: str
    title: str
    answer: str


class Bilingual(BaseModel):
    """A text in both languages; both are required because every answer is served in both."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)

    @field_validator("zh", "en")
    @classmethod
    def _strip(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be blank")
        return value

    def get(self, lang: Lang) -> str:
        """The text in ``lang``."""
        return self.zh if lang == "zh" else self.en


class BilingualQuestions(BaseModel):
    """Example questions per language (may be empty for one language)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    zh: tuple[str, ...] = ()
    en: tuple[str, ...] = ()

    @field_validator("zh", "en", mode="before")
    @classmethod
    def _none_is_empty(cls, value: object) -> object:
        return () if value is None else value

    @field_validator("zh", "en")
    @classmethod
    def _strip_all(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(q.strip() for q in value if q and q.strip())

    def get(self, lang: Lang) -> tuple[str, ...]:
        """The questions in ``lang``."""
        return self.zh if lang == "zh" else self.en


class Article(BaseModel):
    """One knowledge-base article as written in ``data/kb/*.yml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    title: Bilingual
    answer: Bilingual
    questions: BilingualQuestions = BilingualQuestions()
    tags: tuple[str, ...] = ()
    last_reviewed: dt.date | None = None
    category: str = ""
