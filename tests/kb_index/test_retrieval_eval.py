"""Structure checks for the retrieval dev set in tests/kb_index/devset.yml.

The dev set is the held-out yardstick for kb_index/: its accuracy numbers only mean something if the questions
point at real articles, cover most of the knowledge base in both languages, and are NOT copies of the articles'
own example questions or titles (which the index is built from). These tests keep it that way as articles and
dev questions are edited. The accuracy test itself lives with the retrieval engine (tools/evaluate_kb.py reads this
file with a strict schema: only the keys checked below are allowed).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from typing import Any

import pytest
import yaml

from bot.shared.paths import REPO_ROOT

ROOT = REPO_ROOT
KB_DIR = ROOT / "data" / "kb"
DEVSET_PATH = ROOT / "tests" / "kb_index" / "devset.yml"
LANGS = ("zh", "en")

MIN_IN_SCOPE_PER_LANG = 170
MIN_OUT_OF_SCOPE = 110
MIN_OUT_OF_SCOPE_PER_LANG = 50
MIN_ARTICLE_COVERAGE = 0.85
MIN_MIXED_LANGUAGE = 30
QUESTION_KEYS = {"text", "lang", "expected_id"}
OUT_OF_SCOPE_KEYS = {"text", "lang"}

CJK = re.compile(r"[\u4e00-\u9fff]")
LATIN_WORD = re.compile(r"[A-Za-z]{2,}")


def normalise(text: str) -> str:
    """Lower-case and drop punctuation/whitespace (ASCII and full-width), so '退货运费谁出？' == '退货运费谁出'."""
    folded = unicodedata.normalize("NFKC", text).lower()
    return "".join(ch for ch in folded if unicodedata.category(ch)[0] in {"L", "N"})


def _load_articles() -> dict[str, dict[str, Any]]:
    articles: dict[str, dict[str, Any]] = {}
    for path in sorted(KB_DIR.glob("*.yml")):
        for article in yaml.safe_load(path.read_text(encoding="utf-8"))["articles"]:
            articles[str(article["id"])] = article
    return articles


@pytest.fixture(scope="module")
def articles() -> dict[str, dict[str, Any]]:
    return _load_articles()


@pytest.fixture(scope="module")
def devset() -> dict[str, Any]:
    data = yaml.safe_load(DEVSET_PATH.read_text(encoding="utf-8"))
    assert isinstance(data, dict), "devset.yml must be a mapping"
    return data


@pytest.fixture(scope="module")
def questions(devset: dict[str, Any]) -> list[dict[str, Any]]:
    return list(devset["questions"])


@pytest.fixture(scope="module")
def out_of_scope(devset: dict[str, Any]) -> list[dict[str, Any]]:
    return list(devset["out_of_scope"])


def test_top_level_keys_are_exactly_questions_and_out_of_scope(devset: dict[str, Any]) -> None:
    assert set(devset) == {"questions", "out_of_scope"}


def test_every_entry_has_exactly_the_allowed_keys_and_a_known_language(
    questions: list[dict[str, Any]], out_of_scope: list[dict[str, Any]]
) -> None:
    for item in questions:
        assert set(item) == QUESTION_KEYS, item
        assert item["lang"] in LANGS, item
        assert isinstance(item["text"], str) and item["text"].strip(), item
    for item in out_of_scope:
        assert set(item) == OUT_OF_SCOPE_KEYS, item
        assert item["lang"] in LANGS, item
        assert isinstance(item["text"], str) and item["text"].strip(), item


def test_every_expected_id_is_an_existing_article(
    questions: list[dict[str, Any]], articles: dict[str, dict[str, Any]]
) -> None:
    unknown = sorted({q["expected_id"] for q in questions} - set(articles))
    assert unknown == []


def test_enough_in_scope_questions_per_language(questions: list[dict[str, Any]]) -> None:
    counts = Counter(q["lang"] for q in questions)
    for lang in LANGS:
        assert counts[lang] >= MIN_IN_SCOPE_PER_LANG, (lang, counts[lang])


def test_enough_out_of_scope_questions_in_both_languages(out_of_scope: list[dict[str, Any]]) -> None:
    counts = Counter(q["lang"] for q in out_of_scope)
    assert len(out_of_scope) >= MIN_OUT_OF_SCOPE
    for lang in LANGS:
        assert counts[lang] >= MIN_OUT_OF_SCOPE_PER_LANG, (lang, counts[lang])


def test_dev_set_covers_most_articles(questions: list[dict[str, Any]], articles: dict[str, dict[str, Any]]) -> None:
    covered = {q["expected_id"] for q in questions} & set(articles)
    assert len(covered) / len(articles) >= MIN_ARTICLE_COVERAGE, sorted(set(articles) - covered)


def test_no_dev_question_copies_an_article_question_or_title(
    questions: list[dict[str, Any]], out_of_scope: list[dict[str, Any]], articles: dict[str, dict[str, Any]]
) -> None:
    # A copied example question would be found by exact match and inflate the measured accuracy.
    article_texts = {
        normalise(text)
        for article in articles.values()
        for lang in LANGS
        for text in [article["title"][lang], *article["questions"][lang]]
    }
    copies = [item["text"] for item in [*questions, *out_of_scope] if normalise(item["text"]) in article_texts]
    assert copies == []


def test_no_duplicate_dev_questions(questions: list[dict[str, Any]], out_of_scope: list[dict[str, Any]]) -> None:
    counts = Counter(normalise(item["text"]) for item in [*questions, *out_of_scope])
    assert [text for text, n in counts.items() if n > 1] == []


def test_language_tags_match_the_text(questions: list[dict[str, Any]], out_of_scope: list[dict[str, Any]]) -> None:
    # zh items must contain Chinese; en items must contain English words (they may quote a Chinese term).
    for item in [*questions, *out_of_scope]:
        if item["lang"] == "zh":
            assert CJK.search(item["text"]), item
        else:
            assert LATIN_WORD.search(item["text"]), item


def test_mixed_language_questions_are_represented(questions: list[dict[str, Any]]) -> None:
    # Customers mix scripts ("退款refund多久到账", "do you ship with 顺丰?"); retrieval must be measured on that too.
    mixed = [q for q in questions if CJK.search(q["text"]) and LATIN_WORD.search(q["text"])]
    assert len(mixed) >= MIN_MIXED_LANGUAGE
    assert {q["lang"] for q in mixed} == set(LANGS)
