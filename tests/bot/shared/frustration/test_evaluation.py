"""The held-out evaluation: recall on must-escalate conversations and false escalations on calm ones."""
from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from bot.shared.frustration.classifier import load_training_data
from bot.shared.frustration.conversation import similarity
from bot.shared.frustration.escalation import EscalationEngine
from bot.shared.frustration.paths import DEFAULT_EVAL_PATH, DEFAULT_TOPICS_PATH, DEFAULT_TRAIN_PATH, REPO_ROOT
from bot.shared.frustration.scorer import ScoringContext
from bot.shared.frustration.topics import load_topic_data
from tools.evaluate_frustration import EvalReport, evaluate, format_report, load_conversations

MIN_RECALL = 0.95
MAX_FALSE_ESCALATION_RATE = 0.05


@pytest.fixture(scope="module")
def report(scoring_context: ScoringContext, engine: EscalationEngine) -> EvalReport:
    return evaluate(load_conversations(DEFAULT_EVAL_PATH), scoring_context, engine)


def test_evaluation_set_is_large_bilingual_and_labelled() -> None:
    conversations = load_conversations(DEFAULT_EVAL_PATH)
    assert len(conversations) >= 220
    langs = Counter(c.lang for c in conversations)
    assert set(langs) == {"zh", "en"} and abs(langs["zh"] - langs["en"]) <= 0.1 * len(conversations)
    assert len({c.id for c in conversations}) == len(conversations)
    calm = [c for c in conversations if not c.expect_escalate]
    assert sum("!!!" in t.text or "！！！" in t.text for c in calm for t in c.turns) >= 8, "excited calm customers"
    assert {c.expect_reason for c in conversations if c.expect_escalate} == {
        "explicit_request", "high_frustration", "repeated_failure", "sensitive_legal", "sensitive_regulator",
        "sensitive_media", "sensitive_safety", "sensitive_fraud", "complaint",
    }


# Every labelled conversation file: the evaluation sets and any blind set still waiting to become one.
_CONVERSATION_FILES = sorted(
    [*DEFAULT_EVAL_PATH.parent.glob("eval_*.yml"), *DEFAULT_EVAL_PATH.parent.glob("blind_*.yml")]
)


@pytest.mark.parametrize("path", _CONVERSATION_FILES, ids=lambda p: p.name)
def test_evaluation_messages_are_not_training_messages(path: Path) -> None:
    training = [e.text for e in load_training_data(DEFAULT_TRAIN_PATH)]
    training += [e.text for e in load_topic_data(DEFAULT_TOPICS_PATH)]
    training_set = set(training)
    for conversation in load_conversations(path):
        for turn in conversation.turns:
            assert turn.text not in training_set, f"{conversation.id} copies a training message"
            if len(turn.text) >= 12:
                closest = max(similarity(turn.text, t) for t in training)
                assert closest < 0.8, f"{conversation.id}: {turn.text!r} is a near copy of a training message"


def test_recall_on_must_escalate_conversations(report: EvalReport) -> None:
    assert report.overall.recall >= MIN_RECALL, format_report(report, show_errors=True)
    for lang, counts in report.by_language.items():
        assert counts.recall >= 0.9, (lang, format_report(report, show_errors=True))


def test_calm_customers_are_rarely_escalated(report: EvalReport) -> None:
    assert report.overall.false_rate <= MAX_FALSE_ESCALATION_RATE, format_report(report, show_errors=True)
    happy = [p for p in report.predictions if "happy" in p.conversation.id]
    assert happy and not any(p.escalate for p in happy), "excited happy customers must never be escalated"


def test_sensitive_topics_are_never_missed(report: EvalReport) -> None:
    for reason, row in report.by_reason.items():
        if reason.startswith("sensitive_"):
            assert row["escalated"] == row["expected"], reason


def test_evaluate_cli_prints_the_report() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tools.evaluate_frustration"], cwd=REPO_ROOT, capture_output=True, text=True,
        timeout=600, check=True,
    ).stdout
    assert "escalation recall" in out and "false escalation rate" in out
    for reason in ("explicit_request", "sensitive_fraud", "complaint"):
        assert reason in out
    assert "zh:" in out and "en:" in out


def test_bench_cli_reports_p95_within_budget() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tools.bench_frustration", "--rounds", "3"], cwd=REPO_ROOT, capture_output=True,
        text=True, timeout=600, check=True,
    ).stdout
    line = next(line for line in out.splitlines() if line.startswith("score_message CPU time"))
    p95 = float(line.split("p95 ")[1].split(" ms")[0])
    # Target 5 ms. CPU time of the scoring thread, so other jobs on the shared machine do not make this flaky
    # (the wall-clock percentiles are printed too).
    assert p95 <= 5.0, out


def test_former_holdout_sets_stay_fixed(scoring_context: ScoringContext, engine: EscalationEngine) -> None:
    """eval_holdout*.yml were written and run once each to estimate generalisation, then fixed: now regressions."""
    paths = sorted(DEFAULT_EVAL_PATH.parent.glob("eval_holdout*.yml"))
    conversations = [c for path in paths for c in load_conversations(path)]
    assert len(conversations) >= 160
    result = evaluate(conversations, scoring_context, engine)
    assert result.overall.recall >= MIN_RECALL, format_report(result, show_errors=True)
    assert result.overall.false_rate <= MAX_FALSE_ESCALATION_RATE, format_report(result, show_errors=True)
