"""A learned escalation-reason ("topic") classifier: which escalation reason, if any, a message states.

Why: the term lists in ``data/escalation.yml`` are precise but only know the wordings someone listed; fresh
held-out sets showed that sensitive topics, requests for a person and complaints are worded in ways no list
anticipated. This softmax regression over the same character/word n-grams as the anger classifier
(:mod:`bot.shared.frustration.classifier`) is trained in the project on ``data/frustration/topics.yml`` (hand-written,
colloquial, both languages, with many calm look-alikes such as 炸鸡 or "Fire TV"), plus the NLU examples as
background. It outputs one probability per label; the escalation engine fires a reason only when its probability
reaches a calibrated threshold (``learned_topics`` in ``data/escalation.yml``), and the term lists stay as a
high-precision OR.

Run ``python -m bot.shared.frustration.topics`` for a grouped cross-validation on the training data (out-of-fold
precision/recall per reason at the configured thresholds).
"""
from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bot.shared.frustration.classifier import (
    LabelledMessage,
    NgramClassifier,
    load_kb_questions,
    load_nlu_background,
    load_training_data,
)
from bot.shared.reasons import STATED_REASONS

NONE = "none"
TOPIC_LABELS: tuple[str, ...] = (NONE, *STATED_REASONS)
MODEL_NAME = "topics"
# Only probabilities at least this high are written into the message signals (keeps the parse data small).
REPORT_FLOOR = 0.05
TOPICS_KEY = "topics"
# How much more common ``none`` is than one reason, a priori (see train_topic_classifier).
NONE_PRIOR = 3.0


def load_topic_data(path: Path) -> list[LabelledMessage]:
    """Read ``topics.yml`` (same block format as ``train.yml``, labels from :data:`TOPIC_LABELS`)."""
    return load_training_data(path, labels=TOPIC_LABELS)


def topic_background(
    spec: Mapping[str, Any], resolve: Callable[[str], Path]
) -> list[LabelledMessage]:
    """NLU intent examples as extra topic examples, per the ``background`` block of scoring.yml.

    Calm intents become ``none``; ``topic_intents`` maps intents (complaint, request_human) to their reason.
    """
    paths = [resolve(p) for p in spec.get("nlu_files") or []]
    weight = float(spec.get("weight", 0.5))
    examples = load_nlu_background(paths, spec.get("calm_intents") or [], label=NONE, weight=weight)
    for intent, reason in (spec.get("topic_intents") or {}).items():
        examples += load_nlu_background(paths, [intent], label=str(reason), weight=weight)
    return examples + kb_topic_background(spec, resolve)


def kb_topic_background(spec: Mapping[str, Any], resolve: Callable[[str], Path]) -> list[LabelledMessage]:
    """The knowledge base's example questions as ``none`` (``background.kb`` in scoring.yml).

    Why: a calm question about money ("how many days until a refund reaches my bank card?", "can I pay with my
    store balance?") shares n-grams with fraud reports, and the hand-labelled calm look-alikes cannot cover every
    policy topic; the knowledge base's questions are exactly the calm questions customers ask. Articles whose
    questions are about escalating (how to complain, how to reach a person) are left out by ``exclude``."""
    kb = spec.get("kb") or {}
    paths = [resolve(p) for p in kb.get("paths") or []]
    return load_kb_questions(paths, label=NONE, weight=float(kb.get("weight", 0.5)), exclude=kb.get("exclude") or ())


def train_topic_classifier(
    examples: Sequence[LabelledMessage],
    preprocess: Callable[[str], str],
    *,
    none_prior: float = NONE_PRIOR,
    **train_kwargs: Any,
) -> NgramClassifier:
    """Fit the topic classifier (same optimiser as the anger classifier, less weight decay).

    Training balances the labels, which tells the model that each reason is as common as ``none``; in real traffic
    most messages state no reason, so the ``none`` bias is raised by ``log(none_prior)`` (a prior correction).
    """
    kwargs: dict[str, Any] = {"l2": 1e-5, "epochs": 150, "learning_rate": 0.1}
    kwargs.update(train_kwargs)
    model = NgramClassifier.train(examples, preprocess=preprocess, labels=TOPIC_LABELS, **kwargs)
    bias = model.bias.copy()
    bias[TOPIC_LABELS.index(NONE)] += np.float32(np.log(none_prior))
    return NgramClassifier(vocabulary=model.vocabulary, weights=model.weights, bias=bias, labels=model.labels)


def topic_probabilities(classifier: NgramClassifier, features: Sequence[str]) -> dict[str, float]:
    """Probabilities of the escalation reasons (``none`` left out) at or above :data:`REPORT_FLOOR`."""
    probs = classifier.predict_proba_features(features)
    return {
        label: round(float(p), 3)
        for label, p in zip(classifier.labels, probs, strict=True)
        if label != NONE and p >= REPORT_FLOOR
    }


# --- grouped cross-validation -------------------------------------------------------------------------------

_NON_WORD = re.compile(r"[\s\W_]+", re.UNICODE)


def _bigrams(text: str) -> frozenset[str]:
    compact = _NON_WORD.sub("", text.lower())
    return frozenset(compact[i : i + 2] for i in range(len(compact) - 1))


def similarity_groups(examples: Sequence[LabelledMessage], threshold: float = 0.5) -> list[int]:
    """Group ids such that examples with character-bigram Dice similarity >= threshold share a group.

    Cross-validation folds split by group, so a near-paraphrase of a test example is never in training.
    """
    grams = [_bigrams(e.text) for e in examples]
    parent = list(range(len(examples)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(examples)):
        for j in range(i):
            a, b = grams[i], grams[j]
            if a and b and 2 * len(a & b) / (len(a) + len(b)) >= threshold:
                parent[find(i)] = find(j)
    return [find(i) for i in range(len(examples))]


def cross_validate(
    examples: Sequence[LabelledMessage],
    preprocess: Callable[[str], str],
    *,
    background: Sequence[LabelledMessage] = (),
    folds: int = 5,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold probabilities (n, labels) and the true label indices, folds split by similarity group.

    ``background`` examples are in every training fold and never evaluated.
    """
    groups = similarity_groups(examples)
    unique = sorted(set(groups))
    rng = np.random.default_rng(seed)
    fold_of_group = dict(zip(unique, rng.permutation(len(unique)) % folds, strict=True))
    fold = np.array([fold_of_group[g] for g in groups])
    probs = np.zeros((len(examples), len(TOPIC_LABELS)))
    for k in range(folds):
        train = [e for e, f in zip(examples, fold, strict=True) if f != k] + list(background)
        model = train_topic_classifier(train, preprocess)
        for i in (int(j) for j in np.flatnonzero(fold == k)):
            probs[i] = model.predict_proba(preprocess(examples[i].text))
    truth = np.array([TOPIC_LABELS.index(e.label) for e in examples])
    return probs, truth


def threshold_report(probs: np.ndarray, truth: np.ndarray, thresholds: Mapping[str, float]) -> str:
    """Per reason: precision/recall when firing at its threshold; plus the share of ``none`` messages that fire."""
    lines = [f"{'reason':22} {'thr':>5} {'n':>4} {'prec':>5} {'rec':>5}"]
    fired_any = np.zeros(len(truth), dtype=bool)
    for index, label in enumerate(TOPIC_LABELS):
        if label == NONE:
            continue
        threshold = float(thresholds.get(label, 1.01))
        fired = probs[:, index] >= threshold
        fired_any |= fired
        expected = truth == index
        precision = (fired & expected).sum() / fired.sum() if fired.sum() else float("nan")
        recall = (fired & expected).sum() / expected.sum() if expected.sum() else float("nan")
        lines.append(f"{label:22} {threshold:5.2f} {int(expected.sum()):4d} {precision:5.2f} {recall:5.2f}")
    calm = truth == 0
    lines.append(
        f"none messages firing any reason: {int((fired_any & calm).sum())}/{int(calm.sum())} "
        f"({(fired_any & calm).sum() / max(1, calm.sum()):.3f}); reason messages firing any reason: "
        f"{(fired_any & ~calm).sum() / max(1, (~calm).sum()):.3f}"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    from bot.shared.frustration.escalation import EscalationConfig
    from bot.shared.frustration.lexicon import Lexicon, normalize
    from bot.shared.frustration.paths import (
        DEFAULT_ESCALATION_PATH,
        DEFAULT_SCORING_PATH,
        DEFAULT_TOPICS_PATH,
        resolve_data_path,
    )

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topics", type=Path, default=DEFAULT_TOPICS_PATH)
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args(argv)
    lexicon = Lexicon.from_yaml(DEFAULT_SCORING_PATH)

    def preprocess(text: str) -> str:
        return lexicon.mask_protected(normalize(text))[0]

    examples = load_topic_data(args.topics)
    background = topic_background(lexicon.raw.get("background") or {}, resolve_data_path)
    probs, truth = cross_validate(examples, preprocess, background=background, folds=args.folds)
    thresholds = EscalationConfig.from_yaml(DEFAULT_ESCALATION_PATH).learned_topics
    print(f"{len(examples)} hand-labelled topic examples, {args.folds}-fold cross-validation split by similarity "
          f"group ({len(background)} NLU background examples in every training fold)")
    print(threshold_report(probs, truth, thresholds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
