"""The customer-path evaluation sets stay held out (same rule as tests/nlu/test_splits.py, tests/nlu/splits.py).

tests/answers/blind_*.yml is the development set of the answers evaluation (routing thresholds were chosen on it);
tests/answers/final*_*.yml are final sets, scored, never tuned on. None of their customer lines may be an exact or near
duplicate (ratio >= 0.9 after normalising) of a line anything learns from or was tuned on: the NLU training data, the
knowledge base's example questions (the retriever and the question-vs-request classifier learn them), the KB
retrieval dev set (it chose the KB thresholds); and a final set may not repeat a development line.
Failures name the training line by file:line only, so whoever replaces the evaluation line stays blind to it.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.nlu.splits import ROOT, Example, load_all, near_duplicates, normalise, training_files

ANSWERS = ROOT / "tests" / "answers"


def _lines_of(path: Path, texts: list[tuple[str, str]]) -> list[Example]:
    lines = path.read_text(encoding="utf-8").splitlines()
    out = []
    for text, label in texts:
        line = next((i + 1 for i, row in enumerate(lines) if text in row), 0)
        out.append(Example(text, label, path, line, normalise(text)))
    return out


def answer_set(path: Path) -> list[Example]:
    texts = []
    for conversation in yaml.safe_load(path.read_text(encoding="utf-8"))["conversations"]:
        for turn in conversation["turns"]:
            texts.append((str(turn["user"]), conversation["id"]))
    return _lines_of(path, texts)


def kb_questions() -> list[Example]:
    out = []
    for path in sorted((ROOT / "data" / "kb").glob("*.yml")):
        texts = []
        for article in yaml.safe_load(path.read_text(encoding="utf-8"))["articles"]:
            for questions in (article.get("questions") or {}).values():
                texts += [(str(q), article["id"]) for q in questions or []]
        out += _lines_of(path, texts)
    return out


def kb_devset() -> list[Example]:
    path = ROOT / "tests" / "kb_index" / "devset.yml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    texts = [(str(q["text"]), str(q.get("expected_id", "out_of_scope"))) for q in data.get("questions") or []]
    texts += [(str(q["text"]), "out_of_scope") for q in data.get("out_of_scope") or []]
    return _lines_of(path, texts)


def _sets(prefix: str) -> list[Path]:
    return sorted(ANSWERS.glob(f"{prefix}*.yml"))


@pytest.fixture(scope="module")
def learned_from() -> list[Example]:
    return load_all(training_files()) + kb_questions() + kb_devset()


def _report(findings) -> str:
    shown = "\n".join(f.describe() for f in findings[:30])
    return f"{len(findings)} evaluation line(s) to replace with freshly written ones:\n{shown}"


def test_there_are_development_and_final_sets() -> None:
    assert _sets("blind_") and _sets("final")
    for path in _sets("blind_") + _sets("final"):
        assert len(answer_set(path)) >= 100, path


@pytest.mark.parametrize("path", _sets("blind_") + _sets("final"), ids=lambda p: p.name)
def test_no_evaluation_line_is_a_copy_of_what_the_bot_learns_from(path: Path, learned_from: list[Example]) -> None:
    findings = near_duplicates(answer_set(path), learned_from)
    assert not findings, _report(findings)


@pytest.mark.parametrize("path", _sets("final"), ids=lambda p: p.name)
def test_no_final_line_is_a_copy_of_a_development_line(path: Path) -> None:
    development = [ex for dev in _sets("blind_") for ex in answer_set(dev)]
    findings = near_duplicates(answer_set(path), development)
    assert not findings, _report(findings)
