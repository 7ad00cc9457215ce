"""Content checks for the bilingual knowledge base in data/kb/.

Editors change these YAML files by hand, so these tests are the safety net that keeps every article usable by
the retrieval index (both languages present, enough example questions, stable unique ids) and keeps the Chinese
and English answers stating the same facts (same numbers in both).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
import yaml

from bot.shared.paths import REPO_ROOT

KB_DIR = REPO_ROOT / "data" / "kb"
LANGS = ("zh", "en")
EXPECTED_CATEGORIES = (
    "orders",
    "payment",
    "shipping",
    "returns",
    "refunds",
    "exchanges",
    "invoices",
    "membership",
    "promotions",
    "compensation",
    "account_service",
)
MIN_ARTICLES = 85
MIN_QUESTIONS, MAX_QUESTIONS = 3, 12
MAX_SENTENCES = 4
ARTICLE_KEYS_REQUIRED = {"id", "title", "answer", "questions", "last_reviewed"}
ARTICLE_KEYS_OPTIONAL = {"tags"}
KEBAB = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
CJK = re.compile(r"[\u4e00-\u9fff]")
NUMBER = re.compile(r"\d+")
ZH_SENTENCE_END = re.compile(r"[。！？!?]")
EN_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")

Article = dict[str, Any]


def _load_files() -> dict[str, dict[str, Any]]:
    """Parse every KB file once; keyed by file stem."""
    return {path.stem: yaml.safe_load(path.read_text(encoding="utf-8")) for path in sorted(KB_DIR.glob("*.yml"))}


@pytest.fixture(scope="module")
def kb_files() -> dict[str, dict[str, Any]]:
    return _load_files()


@pytest.fixture(scope="module")
def articles(kb_files: dict[str, dict[str, Any]]) -> list[tuple[str, Article]]:
    return [(stem, art) for stem, doc in kb_files.items() for art in doc["articles"]]


def _numbers(text: str) -> set[int]:
    """Numbers a customer would act on; ints so that '09:00' and '9:00' compare equal."""
    return {int(n) for n in NUMBER.findall(text)}


def test_every_expected_category_file_exists_and_no_strays(kb_files: dict[str, dict[str, Any]]) -> None:
    assert set(kb_files) == set(EXPECTED_CATEGORIES)
    # The index loader also reads *.yaml; such a file would bypass every check below.
    assert not list(KB_DIR.glob("*.yaml"))


def test_category_field_matches_file_name(kb_files: dict[str, dict[str, Any]]) -> None:
    for stem, doc in kb_files.items():
        assert set(doc) == {"category", "articles"}, stem
        assert doc["category"] == stem
        assert isinstance(doc["articles"], list) and doc["articles"], stem


def test_total_article_count(articles: list[tuple[str, Article]]) -> None:
    assert len(articles) >= MIN_ARTICLES


def test_article_keys_are_known(articles: list[tuple[str, Article]]) -> None:
    for _, art in articles:
        keys = set(art)
        assert keys >= ARTICLE_KEYS_REQUIRED, (art.get("id"), ARTICLE_KEYS_REQUIRED - keys)
        assert keys <= ARTICLE_KEYS_REQUIRED | ARTICLE_KEYS_OPTIONAL, (art["id"], keys)


def test_ids_are_kebab_prefixed_and_unique(articles: list[tuple[str, Article]]) -> None:
    seen: set[str] = set()
    for stem, art in articles:
        art_id = art["id"]
        assert isinstance(art_id, str) and KEBAB.match(art_id), art_id
        assert art_id.startswith(stem.replace("_", "-") + "-"), art_id
        assert art_id not in seen, f"duplicate id {art_id}"
        seen.add(art_id)


@pytest.mark.parametrize("field", ["title", "answer"])
def test_title_and_answer_have_both_languages(articles: list[tuple[str, Article]], field: str) -> None:
    for _, art in articles:
        value = art[field]
        assert set(value) == set(LANGS), (art["id"], field)
        assert isinstance(value["zh"], str) and CJK.search(value["zh"]), (art["id"], field)
        assert isinstance(value["en"], str) and value["en"].strip(), (art["id"], field)
        assert not CJK.search(value["en"]), (art["id"], field, "Chinese text in the English field")


def test_answers_are_one_to_four_sentences(articles: list[tuple[str, Article]]) -> None:
    for _, art in articles:
        zh_count = len(ZH_SENTENCE_END.findall(art["answer"]["zh"]))
        en_count = len(EN_SENTENCE_END.findall(art["answer"]["en"]))
        assert 1 <= zh_count <= MAX_SENTENCES, (art["id"], "zh", zh_count)
        assert 1 <= en_count <= MAX_SENTENCES, (art["id"], "en", en_count)


def test_zh_and_en_answers_state_the_same_numbers(articles: list[tuple[str, Article]]) -> None:
    for _, art in articles:
        assert _numbers(art["answer"]["zh"]) == _numbers(art["answer"]["en"]), art["id"]


def test_questions_per_language(articles: list[tuple[str, Article]]) -> None:
    for _, art in articles:
        questions = art["questions"]
        assert set(questions) == set(LANGS), art["id"]
        for lang in LANGS:
            items = questions[lang]
            assert isinstance(items, list), (art["id"], lang)
            assert MIN_QUESTIONS <= len(items) <= MAX_QUESTIONS, (art["id"], lang, len(items))
            assert all(isinstance(q, str) and q.strip() for q in items), (art["id"], lang)
        assert all(CJK.search(q) for q in questions["zh"]), art["id"]
        assert not any(CJK.search(q) for q in questions["en"]), art["id"]


def test_no_question_or_answer_is_shared_between_articles(articles: list[tuple[str, Article]]) -> None:
    """Identical questions or answers in two articles make retrieval ambiguous."""
    owners: dict[str, str] = {}
    for _, art in articles:
        texts = [q for lang in LANGS for q in art["questions"][lang]] + [art["answer"][lang] for lang in LANGS]
        for text in {t.strip().lower().rstrip("?？") for t in texts}:
            assert text not in owners, (text, owners.get(text), art["id"])
            owners[text] = art["id"]


def test_last_reviewed_is_a_real_date(articles: list[tuple[str, Article]]) -> None:
    for _, art in articles:
        value = art["last_reviewed"]
        assert isinstance(value, dt.date) and not isinstance(value, dt.datetime), (art["id"], value)


def test_tags_are_lowercase_kebab_strings(articles: list[tuple[str, Article]]) -> None:
    for _, art in articles:
        tags = art.get("tags", [])
        assert isinstance(tags, list), art["id"]
        assert all(isinstance(t, str) and KEBAB.match(t) for t in tags), (art["id"], tags)
        assert len(tags) == len(set(tags)), art["id"]
