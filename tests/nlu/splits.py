"""Split hygiene for the NLU evaluation data: held-out and tuning lines must not be (near) copies of training lines.

Pure Python (stdlib + PyYAML), runs in both environments. Rule (its code: bot/shared/near_duplicates.py, which
the editors' workbench applies too), applied to the intent examples of Rasa NLU YAML files:

1. A line is *normalised*: entity annotations ``[text](entity)`` / ``[text]{...}`` are replaced by their text,
   NFKC folds full-width to half-width, everything is lower-cased, every digit becomes ``0`` (so
   ``DM2026110512`` and ``DM2025010101`` are the same), and everything that is not a letter or digit (punctuation,
   whitespace, emoji and other symbols) is dropped. A line that normalises to nothing (emoji only, "??") keeps its
   stripped raw text as its key, so only a literal repeat of it counts.
2. Two lines are *near duplicates* when their normalised forms are identical, or when
   ``difflib.SequenceMatcher(None, a, b, autojunk=False).ratio() >= 0.9`` (the ratio is 2*M/T: M matched
   characters, T the two lengths added; normalised Chinese is compared character by character, English letter by
   letter). The ratio is computed both ways round and the higher one is used.
   To stay fast (a few seconds for ~2,500 training x ~1,700 evaluation lines) candidates are pruned with exact
   upper bounds of the ratio before it is computed: a length band (2*min(la, lb) / (la + lb) >= 0.9) and the
   character multiset overlap (``quick_ratio``). The pruning never drops a pair whose ratio reaches the threshold.
3. The checks (tests/nlu/test_splits.py): no held-out or tuning line is a near duplicate of a training line
   (data/nlu/*.yml, every intent, including out_of_scope_clinc.yml); no held-out line is a near duplicate of a
   tuning line; no set holds two near-duplicate lines (a repeated template would count twice).

Command line (prints findings with file:line on both sides, and the overlap share per evaluation file; training
text is not printed unless asked, so that people writing evaluation sets can stay blind to it)::

    python tests/nlu/splits.py [--show-training] [FILE ...]
"""
from __future__ import annotations

import bisect
import difflib
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from bot.shared.near_duplicates import (  # noqa: F401 - re-exported: the split tests import them from here
    THRESHOLD,
    normalise,
    similarity,
    strip_annotations,
)
from bot.shared.paths import REPO_ROOT

ROOT = REPO_ROOT
NLU_DIR = ROOT / "tests" / "nlu"
LANGUAGES = ("en", "zh")


def training_files() -> list[Path]:
    """Every file Rasa trains intents on."""
    return sorted((ROOT / "data" / "nlu").glob("*.yml"))


def heldout_files() -> list[Path]:
    return [NLU_DIR / f"heldout_{lang}.yml" for lang in LANGUAGES]


def tuning_files() -> list[Path]:
    return [NLU_DIR / f"tuning_{lang}.yml" for lang in LANGUAGES]


@dataclass(frozen=True)
class Example:
    text: str
    intent: str
    path: Path
    line: int
    key: str

    @property
    def where(self) -> str:
        try:
            shown = self.path.relative_to(ROOT)
        except ValueError:
            shown = self.path
        return f"{shown}:{self.line}"


def load_examples(path: Path) -> list[Example]:
    """Intent examples of a Rasa NLU YAML file, with the line each one is on."""
    raw = path.read_text(encoding="utf-8")
    lines = raw.splitlines()
    data = yaml.safe_load(raw) or {}
    examples: list[Example] = []
    cursor = 0
    for block in data.get("nlu") or []:
        if not isinstance(block, dict) or "intent" not in block:
            continue
        intent = str(block["intent"])
        items = block.get("examples") or ""
        if isinstance(items, str):
            texts = [ln.strip()[2:].strip() for ln in items.splitlines() if ln.strip().startswith("- ")]
        else:  # list form: [{text: ..., metadata: ...}]
            texts = [str(item["text"] if isinstance(item, dict) else item).strip() for item in items]
        for text in texts:
            line_no = _line_of(lines, text, cursor)
            cursor = max(cursor, line_no)
            examples.append(Example(text, intent, path, line_no, normalise(text)))
    return examples


def _line_of(lines: Sequence[str], text: str, start: int) -> int:
    for i in range(start, len(lines)):
        if text in lines[i]:
            return i + 1
    for i in range(0, min(start, len(lines))):
        if text in lines[i]:
            return i + 1
    return 0


@dataclass(frozen=True)
class Finding:
    example: Example
    match: Example
    score: float

    def describe(self, show_match_text: bool = False) -> str:
        kind = "identical after normalising" if self.score >= 1.0 else f"similarity {self.score:.2f}"
        other = f" {self.match.text!r}" if show_match_text else ""
        return (f"{self.example.where} [{self.example.intent}] {self.example.text!r}: {kind} to "
                f"{self.match.where} [{self.match.intent}]{other}")


class NearDuplicateIndex:
    """Finds, for a line, its most similar reference line whose similarity reaches the threshold."""

    def __init__(self, examples: Iterable[Example], threshold: float = THRESHOLD) -> None:
        self.threshold = threshold
        self._exact: dict[str, list[Example]] = {}
        entries: list[tuple[int, str, Example]] = []
        for ex in examples:
            self._exact.setdefault(ex.key, []).append(ex)
            entries.append((len(ex.key), ex.key, ex))
        entries.sort(key=lambda e: e[0])
        self._lengths = [e[0] for e in entries]
        self._entries = entries

    def find(self, key: str, skip: Example | None = None) -> tuple[Example, float] | None:
        """Best match of ``key`` (``skip``, the line itself when a set is checked against itself, excluded)."""
        for exact in self._exact.get(key, ()):
            if exact is not skip:
                return exact, 1.0
        n = len(key)
        if n == 0:
            return None
        t = self.threshold
        # 2*min/(la+lb) >= t  <=>  lb in [n*t/(2-t), n*(2-t)/t]
        lo = bisect.bisect_left(self._lengths, n * t / (2 - t) - 1e-9)
        hi = bisect.bisect_right(self._lengths, n * (2 - t) / t + 1e-9)
        best: tuple[Example, float] | None = None
        matcher = difflib.SequenceMatcher(None, autojunk=False)
        matcher.set_seq2(key)
        for _, other, ex in self._entries[lo:hi]:
            if ex is skip or other == key:
                continue
            matcher.set_seq1(other)
            if matcher.quick_ratio() < t:
                continue
            score = similarity(other, key)
            if score >= t and (best is None or score > best[1]):
                best = (ex, score)
        return best


def near_duplicates(candidates: Iterable[Example], reference: Iterable[Example],
                    threshold: float = THRESHOLD) -> list[Finding]:
    index = NearDuplicateIndex(reference, threshold)
    findings = []
    for ex in candidates:
        hit = index.find(ex.key)
        if hit is not None:
            findings.append(Finding(ex, hit[0], hit[1]))
    return findings


def duplicates_within(examples: Sequence[Example], threshold: float = THRESHOLD) -> list[Finding]:
    """Pairs of lines of one set that are near duplicates of each other (each pair reported once)."""
    index = NearDuplicateIndex(examples, threshold)
    position = {id(ex): i for i, ex in enumerate(examples)}
    findings = []
    for i, ex in enumerate(examples):
        hit = index.find(ex.key, skip=ex)
        if hit is not None and position[id(hit[0])] < i:
            findings.append(Finding(ex, hit[0], hit[1]))
    return findings


def load_all(paths: Iterable[Path]) -> list[Example]:
    out: list[Example] = []
    for p in paths:
        out.extend(load_examples(p))
    return out


def main(argv: Sequence[str]) -> int:
    show = "--show-training" in argv
    files = [Path(a).resolve() for a in argv if not a.startswith("--")]
    evaluation = files or [p for p in heldout_files() + tuning_files() if p.exists()]
    training = load_all(training_files())
    status = 0
    for path in evaluation:
        examples = load_examples(path)
        findings = near_duplicates(examples, training)
        exact = sum(f.score >= 1.0 for f in findings)
        share = len(findings) / len(examples) if examples else 0.0
        print(f"{path.name}: {len(examples)} lines, {len(findings)} near duplicates of training "
              f"({share:.1%}; {exact} identical after normalising)")
        for f in findings:
            print("  " + f.describe(show_match_text=show))
        status |= bool(findings)
        inside = duplicates_within(examples)
        for f in inside:
            print("  within the set: " + f.describe(show_match_text=True))
        status |= bool(inside)
    heldout = [p for p in evaluation if p.name.startswith("heldout_")]
    tuning = [p for p in evaluation if p.name.startswith("tuning_")]
    if heldout and tuning:
        shared = near_duplicates(load_all(heldout), load_all(tuning))
        print(f"held-out vs tuning: {len(shared)} near duplicates")
        for f in shared:
            print("  " + f.describe(show_match_text=True))
        status |= bool(shared)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
