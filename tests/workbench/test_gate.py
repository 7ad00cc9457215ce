"""The retrain gate's verdict (workbench/gate.py) and the live link the Rasa workers start with
(workbench/releases.py ensure_live_link). The real retrain, gate, deploy and rollback on a running stack:
tests/e2e/test_releases.py."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from workbench import gate, releases


def _nlu(macro: float, lines: list[tuple[str, str, str]], recall: float = 1.0) -> dict:
    return {"macro_f1": macro, "entity_recall": recall, "n": len(lines),
            "per_intent": {"order_status": {"f1": macro}, "greet": {"f1": 1.0}},
            "lines": [{"text": text, "gold": gold, "predicted": got, "confidence": 0.9} for text, gold, got in lines]}


LINES_LIVE = [("where is my parcel", "order_status", "order_status"), ("hi there", "greet", "greet"),
              ("cancle it", "cancel_order", "nlu_fallback")]


def test_a_candidate_that_loses_more_than_the_tolerance_is_refused_and_its_new_errors_listed() -> None:
    current = {"heldout_en.yml": _nlu(0.90, LINES_LIVE)}
    worse = {"heldout_en.yml": _nlu(0.85, [("where is my parcel", "order_status", "greet"),
                                           ("hi there", "greet", "greet"),
                                           ("cancle it", "cancel_order", "cancel_order")])}
    report = gate.compare_nlu(current, worse, tolerance=0.01)
    assert report["passed"] is False
    macro = next(r for r in report["rows"] if r["check"] == "nlu_macro_f1")
    assert (macro["language"], macro["current"], macro["candidate"], macro["delta"], macro["passed"]) == \
        ("en", 0.90, 0.85, -0.05, False)
    changes = report["changes"]["en"]
    assert [line["text"] for line in changes["newly_failing"]] == ["where is my parcel"]
    assert changes["newly_failing"][0]["got"] == "greet"
    assert [line["text"] for line in changes["fixed"]] == ["cancle it"]
    assert report["per_intent"]["en"]["order_status"] == {"current": 0.90, "candidate": 0.85}


def test_a_loss_within_the_tolerance_passes_and_a_gain_passes() -> None:
    current = {"heldout_zh.yml": _nlu(0.900, LINES_LIVE)}
    assert gate.compare_nlu(current, {"heldout_zh.yml": _nlu(0.895, LINES_LIVE)}, 0.01)["passed"] is True
    assert gate.compare_nlu(current, {"heldout_zh.yml": _nlu(0.95, LINES_LIVE)}, 0.0)["passed"] is True
    assert gate.compare_nlu(current, {"heldout_zh.yml": _nlu(0.895, LINES_LIVE)}, 0.0)["passed"] is False
    # Entity recall is gated too (order numbers the model stops finding).
    assert gate.compare_nlu(current, {"heldout_zh.yml": _nlu(0.95, LINES_LIVE, recall=0.9)}, 0.01)["passed"] is False


def test_a_candidate_that_could_not_be_measured_never_passes() -> None:
    current = {"heldout_en.yml": _nlu(0.9, LINES_LIVE)}
    assert gate.compare_nlu(current, None, 0.01)["passed"] is False
    broken = gate.compare_nlu(current, {"error": "ValueError: not a model"}, 0.01)
    assert broken["passed"] is False and "not a model" in broken["error"]
    assert gate.compare_kb({"rows": []}, {"error": "no index"}, 0.01)["passed"] is False


def _kb(rows: list[tuple[str, str, str | None, str | None, str]]) -> dict:
    return {"rows": [{"text": text, "lang": lang, "expected": expected, "top1": top1, "level": level, "score": 0.9}
                     for text, lang, expected, top1, level in rows]}


def test_kb_right_means_the_expected_article_answered_and_unrelated_questions_not_answered() -> None:
    current = _kb([("退货运费谁出", "zh", "returns-shipping-fee", "returns-shipping-fee", "confident"),
                   ("发票怎么开", "zh", "invoices", "invoices", "confident"),
                   ("明天天气", "zh", None, "invoices", "none")])
    # The candidate still finds the invoice article but would only suggest it, and answers the weather question.
    candidate = _kb([("退货运费谁出", "zh", "returns-shipping-fee", "returns-shipping-fee", "confident"),
                     ("发票怎么开", "zh", "invoices", "invoices", "middling"),
                     ("明天天气", "zh", None, "invoices", "confident")])
    report = gate.compare_kb(current, candidate, 0.01)
    rows = {r["check"]: r for r in report["rows"]}
    assert rows["kb_right"]["current"] == 1.0 and rows["kb_right"]["candidate"] == 0.5
    assert rows["kb_out_of_scope_answered"]["current"] == 0.0
    assert rows["kb_out_of_scope_answered"]["candidate"] == 1.0
    assert not rows["kb_right"]["passed"] and not rows["kb_out_of_scope_answered"]["passed"]
    assert [line["text"] for line in report["changes"]["zh"]["newly_failing"]] == ["发票怎么开", "明天天气"]
    assert gate.verdict({"passed": True}, report, 0.01)["passed"] is False
    assert gate.compare_kb(current, current, 0.0)["passed"] is True


def test_a_conversation_test_the_live_model_passes_may_not_fail() -> None:
    live = {"stories": {"greet (en)": True, "order status (zh)": True, "cancel (en)": False}}
    assert gate.compare_stories(live, live)["passed"] is True
    worse = gate.compare_stories(live, {"stories": {"greet (en)": True, "order status (zh)": False,
                                                    "cancel (en)": True}})
    assert worse["passed"] is False
    assert [x["text"] for x in worse["changes"]["all"]["newly_failing"]] == ["order status (zh)"]
    assert [x["text"] for x in worse["changes"]["all"]["fixed"]] == ["cancel (en)"]
    assert worse["rows"][0]["current"] == round(2 / 3, 4) and worse["rows"][0]["candidate"] == round(2 / 3, 4)
    assert gate.compare_stories(live, None)["passed"] is False
    assert gate.verdict({"passed": True}, {"passed": True}, 0.01, stories=worse)["passed"] is False


def test_rasas_failed_stories_file_is_read_by_story_name(tmp_path: Path) -> None:
    tests = tmp_path / "test_stories_en.yml"
    tests.write_text("stories:\n- story: greet (en)\n  steps: []\n- story: greet (en) twice\n  steps: []\n")
    failed = tmp_path / "failed_test_stories.yml"
    failed.write_text(f"version: '3.1'\nstories:\n- story: greet (en) ({tests})\n  steps: []\n")
    assert releases.story_results([tests], failed) == {"stories": {"greet (en)": False, "greet (en) twice": True}}
    assert releases.story_results([tests], tmp_path / "none.yml")["stories"] == {"greet (en)": True,
                                                                                "greet (en) twice": True}


def test_the_first_release_has_nothing_to_lose_against() -> None:
    assert gate.compare_nlu(None, {"heldout_en.yml": _nlu(0.5, LINES_LIVE)}, 0.01)["passed"] is True


@pytest.fixture
def setup_model() -> Path:
    model = releases.setup_model()
    if model is None:
        pytest.fail("no trained model: run scripts/setup.sh first")
    return model


def test_the_live_link_leads_to_the_setup_model_until_a_deploy_and_back_when_setup_trains_again(
        tmp_path: Path, setup_model: Path) -> None:
    link = releases.ensure_live_link(tmp_path)
    assert link == tmp_path / "live"
    assert releases.served_model(tmp_path) == setup_model.resolve()
    # A deploy points the link at a release folder (one model file in it): restarts keep serving that.
    folder = tmp_path / "7"
    folder.mkdir()
    (folder / "release-7.tar.gz").write_bytes(b"model")
    releases.point_link(link, folder)
    assert releases.ensure_live_link(tmp_path) == link
    assert releases.served_model(tmp_path) == (folder / "release-7.tar.gz").resolve()
    # `make setup` trained after the deploy (models/CURRENT newer than the link): the setup model wins.
    marker = setup_model.parent / "CURRENT"
    later = time.time() + 5
    original = marker.stat()
    try:
        os.utime(marker, (later, later))
        releases.ensure_live_link(tmp_path)
        assert releases.served_model(tmp_path) == setup_model.resolve()
    finally:
        os.utime(marker, (original.st_atime, original.st_mtime))
