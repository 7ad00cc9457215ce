"""A small character n-gram classifier (softmax regression in numpy) for calm / annoyed / angry messages.

Why its own model: the wording lists catch the obvious; the classifier catches angry messages without a listed
word ("三天了一点动静都没有，你们到底有没有人在管"). It is trained in the project on ``data/frustration/train.yml``
(no downloads), takes well under a second to train and about 0.1 ms to apply, and is persisted as JSON + .npy
(never pickle).
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

LABELS: tuple[str, ...] = ("calm", "annoyed", "angry")
# Expected anger of each label, so that the classifier yields one number in [0, 1].
ANGER_VALUES = np.array([0.0, 0.5, 1.0])
LANGUAGES = ("zh", "en")

_DIGITS = re.compile(r"\d+")
_SPACES = re.compile(r"\s+")
_LATIN_WORD = re.compile(r"[a-z][a-z']*")

MODEL_FILE = "classifier.json"
WEIGHTS_FILE = "classifier_weights.npy"
BIAS_FILE = "classifier_bias.npy"


@dataclass(frozen=True)
class LabelledMessage:
    """One training example."""

    text: str
    label: str
    lang: str
    weight: float = 1.0  # background examples (e.g. NLU intent examples) count less than hand-labelled ones


def load_training_data(path: Path, labels: Sequence[str] = LABELS) -> list[LabelledMessage]:
    """Read ``train.yml`` (or ``topics.yml``): blocks of ``label`` + ``lang`` + ``examples: |`` bullet lists."""
    with open(path, encoding="utf-8") as handle:
        raw = yaml.safe_load(handle)
    blocks = raw.get("data") if isinstance(raw, Mapping) else None
    if not isinstance(blocks, list):
        raise ValueError(f"{path}: expected a top-level 'data' list")
    examples: list[LabelledMessage] = []
    for block in blocks:
        label, lang = block.get("label"), block.get("lang")
        if label not in labels:
            raise ValueError(f"{path}: unknown label {label!r}; use one of {tuple(labels)}")
        if lang not in LANGUAGES:
            raise ValueError(f"{path}: unknown lang {lang!r}; use one of {LANGUAGES}")
        for line in str(block.get("examples", "")).splitlines():
            line = line.strip()
            if line.startswith("- "):
                examples.append(LabelledMessage(line[2:].strip(), label, lang))
    return examples


_ANNOTATION = re.compile(r"\[([^\]]+)\]\([^)]*\)|\[([^\]]+)\]\{[^}]*\}")


def load_nlu_background(
    paths: Sequence[Path], intents: Sequence[str], *, label: str = "calm", weight: float = 0.5
) -> list[LabelledMessage]:
    """Examples of the given intents in Rasa NLU YAML files, as extra ``label`` examples (entity markup removed).

    Why: a few hundred hand-labelled messages teach the classifier what anger looks like, but too little of what
    ordinary questions look like; the intent examples of calm intents fill that gap.
    """
    wanted = set(intents)
    examples: list[LabelledMessage] = []
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            raw = yaml.safe_load(handle) or {}
        for block in raw.get("nlu") or []:
            if block.get("intent") not in wanted:
                continue
            for line in str(block.get("examples", "")).splitlines():
                line = line.strip()
                if line.startswith("- "):
                    text = _ANNOTATION.sub(lambda m: m.group(1) or m.group(2), line[2:].strip())
                    lang = "zh" if re.search(r"[\u4e00-\u9fff]", text) else "en"
                    examples.append(LabelledMessage(text, label, lang, weight))
    return examples


def load_kb_questions(
    paths: Sequence[Path], *, label: str, weight: float = 1.0, exclude: Iterable[str] = ()
) -> list[LabelledMessage]:
    """The knowledge base's example questions (``data/kb/*.yml``: articles with ``questions: {lang: [...]}``) as
    ``label`` examples, leaving out the articles named in ``exclude``. One home for reading them: the
    question-vs-request classifier learns them as questions, the topic classifier as calm "none" background."""
    skipped = set(exclude)
    examples: list[LabelledMessage] = []
    for path in paths:
        files = sorted(path.glob("*.yml")) if path.is_dir() else [path]
        for file in files:
            with open(file, encoding="utf-8") as handle:
                raw = yaml.safe_load(handle) or {}
            for article in raw.get("articles") or []:
                if article.get("id") in skipped:
                    continue
                for lang, questions in (article.get("questions") or {}).items():
                    examples += [LabelledMessage(str(q), label, str(lang), weight) for q in questions or []]
    return examples


def ngram_features(text: str) -> list[str]:
    """Binary features of normalised, masked text: character 1-3-grams plus Latin word uni- and bigrams.

    Character n-grams need no Chinese segmenter and survive typos; Latin words add whole-word evidence.
    Digits are folded to "0" so order numbers do not become features.
    """
    text = _SPACES.sub(" ", _DIGITS.sub("0", text)).strip()
    padded = f" {text} "
    feats = set()
    for n in (1, 2, 3):
        for i in range(len(padded) - n + 1):
            gram = padded[i : i + n]
            if gram.strip():
                feats.add(gram)
    words = _LATIN_WORD.findall(text)
    for i, word in enumerate(words):
        feats.add("w:" + word)
        if i:
            feats.add("b:" + words[i - 1] + "_" + word)
    return sorted(feats)


@dataclass
class NgramClassifier:
    """Softmax regression over binary n-gram features (rows L2-normalised)."""

    vocabulary: dict[str, int]
    weights: np.ndarray  # (n_features, n_labels)
    bias: np.ndarray  # (n_labels,)
    labels: tuple[str, ...] = LABELS

    @classmethod
    def train(
        cls,
        examples: Sequence[LabelledMessage],
        *,
        preprocess: Callable[[str], str],
        labels: Sequence[str] = LABELS,
        min_df: int = 1,
        l2: float = 1e-4,
        epochs: int = 120,
        learning_rate: float = 0.1,
    ) -> NgramClassifier:
        """Fit with full-batch Adam; deterministic (zero init), balanced class weights.

        Args:
            examples: labelled messages.
            preprocess: the scorer's text normalisation (masking of protected names), applied before features.
            min_df: a feature must occur in this many examples (drops one-off noise of a small data set).
            l2: weight decay; the data set is small, so keep the model smooth.
            labels: the label set (default: calm / annoyed / angry; the topic classifier passes its own).
        """
        labels = tuple(labels)
        if {e.label for e in examples} != set(labels):
            raise ValueError("training data must contain every label (and no other): " + ", ".join(labels))
        docs = [ngram_features(preprocess(e.text)) for e in examples]
        counts: dict[str, int] = {}
        for feats in docs:
            for f in feats:
                counts[f] = counts.get(f, 0) + 1
        vocab = {f: i for i, f in enumerate(sorted(f for f, c in counts.items() if c >= min_df))}
        # Sparse rows as coordinate arrays: dense BLAS on this tiny problem fights other processes for threads.
        rows: list[int] = []
        cols: list[int] = []
        vals: list[float] = []
        for row, feats in enumerate(docs):
            idx = [vocab[f] for f in feats if f in vocab]
            for col in idx:
                rows.append(row)
                cols.append(col)
                vals.append(1.0 / np.sqrt(len(idx)))
        x = _Coo(
            np.array(rows, dtype=np.int64), np.array(cols, dtype=np.int64), np.array(vals), len(docs), len(vocab)
        )
        y = np.array([labels.index(e.label) for e in examples])
        onehot = np.eye(len(labels))[y]
        weights = np.array([e.weight for e in examples], dtype=np.float64)
        class_mass = (onehot * weights[:, None]).sum(axis=0)
        sample_weight = weights * (weights.sum() / (len(labels) * class_mass))[y]

        w = np.zeros((len(vocab), len(labels)))
        b = np.zeros(len(labels))
        m_w, v_w, m_b, v_b = np.zeros_like(w), np.zeros_like(w), np.zeros_like(b), np.zeros_like(b)
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        norm = sample_weight.sum()
        for step in range(1, epochs + 1):
            probs = _softmax(x.dot(w) + b)
            residual = (probs - onehot) * sample_weight[:, None] / norm
            grad_w = x.tdot(residual) + l2 * w
            grad_b = residual.sum(axis=0)
            m_w = beta1 * m_w + (1 - beta1) * grad_w
            v_w = beta2 * v_w + (1 - beta2) * grad_w**2
            m_b = beta1 * m_b + (1 - beta1) * grad_b
            v_b = beta2 * v_b + (1 - beta2) * grad_b**2
            corr1, corr2 = 1 - beta1**step, 1 - beta2**step
            w -= learning_rate * (m_w / corr1) / (np.sqrt(v_w / corr2) + eps)
            b -= learning_rate * (m_b / corr1) / (np.sqrt(v_b / corr2) + eps)
        return cls(vocabulary=vocab, weights=w.astype(np.float32), bias=b.astype(np.float32), labels=labels)

    def predict_proba(self, preprocessed_text: str) -> np.ndarray:
        """Label probabilities (order of ``labels``) for already normalised/masked text."""
        return self.predict_proba_features(ngram_features(preprocessed_text))

    def predict_proba_features(self, features: Iterable[str]) -> np.ndarray:
        """Label probabilities from precomputed :func:`ngram_features` (two classifiers share one extraction)."""
        idx = [self.vocabulary[f] for f in features if f in self.vocabulary]
        logits = self.bias.astype(np.float64)
        if idx:
            logits = logits + self.weights[idx].sum(axis=0, dtype=np.float64) / np.sqrt(len(idx))
        return _softmax(logits[None, :])[0]

    def expected_anger(self, preprocessed_text: str) -> tuple[float, dict[str, float]]:
        """Expected anger in [0, 1] plus the label probabilities (as plain floats, JSON-ready)."""
        return self.expected_anger_features(ngram_features(preprocessed_text))

    def expected_anger_features(self, features: Iterable[str]) -> tuple[float, dict[str, float]]:
        """:meth:`expected_anger` from precomputed :func:`ngram_features`."""
        probs = self.predict_proba_features(features)
        named = {label: round(float(p), 4) for label, p in zip(self.labels, probs, strict=True)}
        return float(probs @ ANGER_VALUES), named

    def save(self, directory: Path, name: str = "classifier") -> None:
        """Write JSON metadata and two .npy arrays (no pickle); ``name`` prefixes the file names."""
        directory.mkdir(parents=True, exist_ok=True)
        vocab_list = sorted(self.vocabulary, key=self.vocabulary.__getitem__)
        model_file, weights_file, bias_file = _file_names(name)
        with open(directory / model_file, "w", encoding="utf-8") as handle:
            json.dump({"labels": list(self.labels), "vocabulary": vocab_list}, handle, ensure_ascii=False)
        np.save(directory / weights_file, self.weights, allow_pickle=False)
        np.save(directory / bias_file, self.bias, allow_pickle=False)

    @classmethod
    def load(cls, directory: Path, name: str = "classifier") -> NgramClassifier:
        """Read what :meth:`save` wrote; raises ``ValueError`` when the files disagree."""
        model_file, weights_file, bias_file = _file_names(name)
        with open(directory / model_file, encoding="utf-8") as handle:
            meta = json.load(handle)
        weights = np.load(directory / weights_file, allow_pickle=False)
        bias = np.load(directory / bias_file, allow_pickle=False)
        vocabulary = {f: i for i, f in enumerate(meta["vocabulary"])}
        labels = tuple(meta["labels"])
        if weights.shape != (len(vocabulary), len(labels)) or bias.shape != (len(labels),):
            raise ValueError(f"classifier files in {directory} have inconsistent shapes")
        return cls(vocabulary=vocabulary, weights=weights, bias=bias, labels=labels)


def _file_names(name: str) -> tuple[str, str, str]:
    if name == "classifier":
        return MODEL_FILE, WEIGHTS_FILE, BIAS_FILE
    return f"{name}.json", f"{name}_weights.npy", f"{name}_bias.npy"


@dataclass(frozen=True)
class _Coo:
    """A sparse matrix as (row, col, value) arrays with the two products training needs."""

    rows: np.ndarray
    cols: np.ndarray
    vals: np.ndarray
    n_rows: int
    n_cols: int

    def dot(self, dense: np.ndarray) -> np.ndarray:
        """self @ dense."""
        contrib = self.vals[:, None] * dense[self.cols]
        return np.stack(
            [np.bincount(self.rows, weights=contrib[:, k], minlength=self.n_rows) for k in range(dense.shape[1])],
            axis=1,
        )

    def tdot(self, dense: np.ndarray) -> np.ndarray:
        """self.T @ dense."""
        contrib = self.vals[:, None] * dense[self.rows]
        return np.stack(
            [np.bincount(self.cols, weights=contrib[:, k], minlength=self.n_cols) for k in range(dense.shape[1])],
            axis=1,
        )


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def label_counts(examples: Iterable[LabelledMessage]) -> dict[tuple[str, str], int]:
    """(label, lang) -> count, for reports and data checks."""
    counts: dict[tuple[str, str], int] = {}
    for e in examples:
        counts[(e.label, e.lang)] = counts.get((e.label, e.lang), 0) + 1
    return counts
