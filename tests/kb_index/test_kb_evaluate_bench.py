"""Evaluation harness and benchmark on the fixture KB (small, so their arithmetic can be checked)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kb_index.content import load_articles
from kb_index.errors import KBContentError
from kb_index.retriever import Retriever
from tools.bench_kb import run_bench
from tools.evaluate_kb import (
    evaluate_devset,
    example_question_accuracy,
    load_devset,
    self_check,
    threshold_sweep,
)


def write_devset(path: Path) -> Path:
    data = {
        "questions": [
            {"text": "退回去的快递费要我自己付吗", "lang": "zh", "expected_id": "returns-shipping-fee"},
            {"text": "钱退到银行卡要几天", "lang": "zh", "expected_id": "refund-bank-card"},
            {"text": "what time do your agents start work", "lang": "en", "expected_id": "service-hours"},
            # deliberately wrong expectation: must count as a top-1 miss
            {"text": "I need a VAT receipt, how do I get one?", "lang": "en", "expected_id": "returns-window"},
        ],
        "out_of_scope": [
            {"text": "明天北京会下雨吗", "lang": "zh"},
            {"text": "tell me a joke about cats", "lang": "en"},
        ],
    }
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_devset_report_counts_top1_top3_per_language_and_out_of_scope(retriever: Retriever, tmp_path: Path) -> None:
    report = evaluate_devset(retriever, load_devset(write_devset(tmp_path / "dev.yml")))
    assert report["in_scope"]["zh"] == {"n": 2, "top1": 1.0, "top3": 1.0}
    assert report["in_scope"]["en"]["n"] == 2
    assert report["in_scope"]["en"]["top1"] == 0.5  # the deliberate miss
    assert report["in_scope_all"]["n"] == 4
    assert report["out_of_scope"]["n"] == 2
    assert report["out_of_scope"]["answered_confidently"] == 0.0
    assert report["unknown_expected_ids"] == []
    assert len(report["threshold_sweep"]) > 10


def test_devset_with_unknown_keys_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "dev.yml"
    path.write_text("questions:\n  - {text: hi, lang: en, expected_id: x, note: extra}\n", encoding="utf-8")
    with pytest.raises(KBContentError, match="cannot read dev set"):
        load_devset(path)


def test_threshold_sweep_counts_answers_at_or_above_each_threshold() -> None:
    rows = {row["threshold"]: row for row in threshold_sweep([(0.9, True), (0.8, False), (0.75, True)], [0.78])}
    assert rows[0.75] == {
        "threshold": 0.75,
        "in_scope_answered_right": round(2 / 3, 4),
        "in_scope_answered_wrong": round(1 / 3, 4),
        "out_of_scope_answered": 1.0,
    }
    assert rows[0.85]["in_scope_answered_right"] == round(1 / 3, 4)
    assert rows[0.85]["out_of_scope_answered"] == 0.0


def test_example_questions_find_their_own_article(retriever: Retriever, settings: Any) -> None:
    report = example_question_accuracy(retriever, load_articles(settings.data_path))
    assert report["zh"] == {"n": 10, "top1": 1.0}
    assert report["en"] == {"n": 10, "top1": 1.0}
    assert report["misses"] == []


def test_self_check_reports_each_passage_and_bm25_weight(settings: Any, encoder: Any, tmp_path: Path) -> None:
    devset = load_devset(write_devset(tmp_path / "dev.yml"))
    report = self_check(
        load_articles(settings.data_path), encoder, passage_weights=(0.0, 0.5), bm25_weights=(0.0, 0.1), devset=devset
    )
    assert report["loo_probes"] == 20 and report["dev_probes"] == 6
    assert [(r["passage_weight"], r["bm25_weight"]) for r in report["runs"]] == [
        (0.0, 0.0),
        (0.0, 0.1),
        (0.5, 0.0),
        (0.5, 0.1),
    ]
    for run in report["runs"]:
        assert run["leave_one_out"]["zh"]["n"] == 10
        assert 0.0 <= run["leave_one_out"]["zh"]["top1"] <= run["leave_one_out"]["zh"]["top3"] <= 1.0
        assert run["devset"]["zh"] == {"n": 2, "top1": 1.0, "top3": 1.0}


def test_bench_reports_latency_build_time_and_memory_per_size(settings: Any, encoder: Any) -> None:
    report = run_bench(settings, sizes=(5, 50), n_queries=5, encoder=encoder)
    assert report["real_kb"]["articles"] == 5 and report["real_kb"]["vectors"] == 40
    assert [row["articles"] for row in report["sizes"]] == [5, 50]
    assert [row["vectors"] for row in report["sizes"]] == [40, 400]
    for row in report["sizes"]:
        for mode in ("dense", "bm25"):
            assert 0 < row[mode]["p50_ms"] <= row[mode]["p95_ms"]
            assert 0 < row[mode]["cpu_p50_ms"] <= row[mode]["cpu_p95_ms"]
        assert row["rss_mb"] > 100
