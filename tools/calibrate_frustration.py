"""Cross-validated message scores on the training data: the tool to tune ``combine`` in scoring.yml.

Run: ``python -m tools.calibrate_frustration [--folds 5]``. Each fold's messages are scored by a classifier trained
on the other folds, so the printed distributions show how unseen calm / annoyed / angry messages land on the
0-100 scale (target: calm well below 30, annoyed around 40-60, angry at 70+). Tune on this, never on the
held-out evaluation conversations.
"""
from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bot.shared.frustration.classifier import LABELS, load_training_data
from bot.shared.frustration.lexicon import Lexicon
from bot.shared.frustration.paths import DEFAULT_SCORING_PATH, DEFAULT_TRAIN_PATH
from bot.shared.frustration.scorer import (
    Evidence,
    ScoringContext,
    background_examples,
    combine_evidence,
    score_message,
    train_classifier,
)


@dataclass(frozen=True)
class Row:
    """One training message scored out of fold."""

    text: str
    label: str
    lang: str
    score: int
    predicted: str
    evidence: Evidence


def cross_validated_scores(
    scoring_path: Path,
    train_path: Path,
    folds: int = 5,
    seed: int = 0,
    *,
    use_background: bool = True,
    **train_kwargs: float,
) -> list[Row]:
    """Every hand-labelled message scored by a classifier that did not see it (background always trained on)."""
    lexicon = Lexicon.from_yaml(scoring_path)
    examples = load_training_data(train_path)
    background = background_examples(lexicon) if use_background else []
    order = np.random.RandomState(seed).permutation(len(examples))
    rows = []
    for fold in np.array_split(order, folds):
        held_out = set(int(i) for i in fold)
        train = [e for i, e in enumerate(examples) if i not in held_out] + background
        classifier = train_classifier(train, lexicon, **train_kwargs)
        context = ScoringContext(lexicon, classifier)
        for i in sorted(held_out):
            example = examples[i]
            result = score_message(example.text, context=context)
            sig = result.signals
            evidence = Evidence(
                sig["wording"] / 100.0, sig["classifier"], sig["intensity"], sig["positive"],
                bool(sig["hits"]) or sig["sarcasm"], bool(sig.get("mild_only")),
                float(sig["classifier_probs"].get("angry", 0.0)), bool(sig.get("sarcasm_marked")),
            )
            probs = sig["classifier_probs"]
            predicted = max(probs, key=probs.get)
            rows.append(Row(example.text, example.label, example.lang, result.score, predicted, evidence))
    return rows


def rescore(rows: Sequence[Row], combine: Mapping[str, float]) -> list[Row]:
    """The same rows scored with other ``combine`` weights (no retraining)."""
    return [
        Row(r.text, r.label, r.lang, round(combine_evidence(r.evidence, combine)[0] * 100), r.predicted, r.evidence)
        for r in rows
    ]


def grid(rows: Sequence[Row], base: Mapping[str, float], axes: Mapping[str, Sequence[float]]) -> str:
    """Key numbers for every combination of the given ``combine`` values."""
    lines = ["  ".join(axes) + "  | calm>=50 calm>=70 annoyed_p50 angry>=70 angry_p50"]
    for values in itertools.product(*axes.values()):
        combine = {**base, **dict(zip(axes, values, strict=True))}
        scored = rescore(rows, combine)
        calm = [r.score for r in scored if r.label == "calm"]
        annoyed = [r.score for r in scored if r.label == "annoyed"]
        angry = [r.score for r in scored if r.label == "angry"]
        lines.append(
            "  ".join(f"{v:g}" for v in values)
            + f"  | {np.mean(np.array(calm) >= 50):.3f} {np.mean(np.array(calm) >= 70):.3f}"
            f" {np.median(annoyed):5.0f} {np.mean(np.array(angry) >= 70):.3f} {np.median(angry):5.0f}"
        )
    return "\n".join(lines)


def summarize(rows: Sequence[Row]) -> str:
    """Percentiles per label and language, classifier accuracy and the share of calm messages scoring >= 50."""
    lines = [f"{'label':8} {'lang':4} {'n':>4} {'p10':>4} {'p50':>4} {'p90':>4}  share>=50  share>=70"]
    for label in LABELS:
        for lang in ("zh", "en", "all"):
            scores = [r.score for r in rows if r.label == label and (lang == "all" or r.lang == lang)]
            if not scores:
                continue
            p10, p50, p90 = (int(np.percentile(scores, q)) for q in (10, 50, 90))
            high = sum(s >= 50 for s in scores) / len(scores)
            very = sum(s >= 70 for s in scores) / len(scores)
            lines.append(f"{label:8} {lang:4} {len(scores):4d} {p10:4d} {p50:4d} {p90:4d}  {high:9.2f}  {very:9.2f}")
    accuracy = sum(r.label == r.predicted for r in rows) / len(rows)
    lines.append(f"classifier accuracy (3 labels, out of fold): {accuracy:.3f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scoring", type=Path, default=DEFAULT_SCORING_PATH)
    parser.add_argument("--train", type=Path, default=DEFAULT_TRAIN_PATH)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--show", choices=("none", "calm-high", "angry-low"), default="none")
    parser.add_argument("--grid", action="store_true", help="try combinations of the main combine weights")
    parser.add_argument("--no-background", action="store_true", help="train without the NLU background examples")
    parser.add_argument("--l2", type=float, default=None, help="override the classifier's weight decay")
    args = parser.parse_args(argv)
    train_kwargs = {} if args.l2 is None else {"l2": args.l2}
    rows = cross_validated_scores(
        args.scoring, args.train, args.folds, use_background=not args.no_background, **train_kwargs
    )
    print(summarize(rows))
    if args.show != "none":
        label, sign = ("calm", -1) if args.show == "calm-high" else ("angry", 1)
        for row in sorted((r for r in rows if r.label == label), key=lambda r: sign * r.score)[:20]:
            print(row.score, row.text)
    if args.grid:
        base = Lexicon.from_yaml(args.scoring).combine
        axes = {
            "classifier_floor": (0.12, 0.25, 0.35),
            "classifier_weight": (0.75, 0.9),
            "classifier_alone_cap": (0.45, 0.55, 1.0),
        }
        print(grid(rows, base, axes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
