"""Scores one customer message for frustration, 0 (calm) to 100 (furious).

Evidence from the wording lists (insults, anger, threats, "useless bot", impatience), sarcasm and the trained
n-gram classifier is combined by noisy-OR; shouting (!!!, ???, CAPS, "whyyyy") only amplifies evidence that is
already there, and praise without any negative wording damps the score. That keeps "THANK YOU SO MUCH!!!" calm
while "WHERE IS MY ORDER???" is not.
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bot.shared.frustration.classifier import (
    LabelledMessage,
    NgramClassifier,
    load_nlu_background,
    load_training_data,
    ngram_features,
)
from bot.shared.frustration.lexicon import Lexicon, normalize
from bot.shared.frustration.paths import (
    DEFAULT_SCORING_PATH,
    DEFAULT_TOPICS_PATH,
    DEFAULT_TRAIN_PATH,
    resolve_data_path,
)
from bot.shared.frustration.topics import (
    MODEL_NAME as TOPICS_MODEL_NAME,
)
from bot.shared.frustration.topics import (
    TOPICS_KEY,
    load_topic_data,
    topic_background,
    topic_probabilities,
    train_topic_classifier,
)
from bot.shared.text import detect_language, to_halfwidth

SCORING_FILE = "scoring.json"
# Per category, only the first hits count (a second hit at half weight): ten mild words are not an insult.
_MAX_HITS_PER_CATEGORY = 2
_CAPS_WORD = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{3,}(?![A-Za-z0-9])")
_CJK_CHAR = "\u4e00-\u9fff"


@dataclass(frozen=True)
class MessageScore:
    """Frustration of one message: ``score`` 0-100 and the evidence behind it (JSON-serialisable)."""

    score: int
    signals: dict[str, Any]


@dataclass(frozen=True)
class ScoringContext:
    """Everything scoring needs, built once at start-up: compiled wording and the trained classifiers."""

    lexicon: Lexicon
    classifier: NgramClassifier | None = None
    topics: NgramClassifier | None = None  # escalation-reason classifier (bot/shared/frustration/topics.py)

    def preprocess(self, text: str) -> tuple[str, list[str]]:
        """Normalised text with protected names blanked (the classifier sees the same text as the rules)."""
        return self.lexicon.mask_protected(normalize(text))


def _blank(text: str, spans: list[tuple[int, int]]) -> str:
    """Replace the given spans by spaces (same length)."""
    for start, end in spans:
        text = text[:start] + " " * (end - start) + text[end:]
    return text


def _longest_run(text: str, char: str) -> int:
    runs = re.findall(re.escape(char) + "+", text)
    return max((len(r) for r in runs), default=0)


def _step(table: Mapping[Any, float], value: int) -> float:
    """Value of the largest threshold not above ``value`` in a {threshold: part} table (keys may be strings)."""
    best = 0.0
    for key, part in table.items():
        if value >= int(key):
            best = max(best, float(part))
    return best


def intensity_of(text: str, lexicon: Lexicon) -> tuple[float, dict[str, float]]:
    """Shouting intensity 0-1 from punctuation runs, ALL-CAPS words and stretched letters/characters."""
    cfg = lexicon.intensity
    half = to_halfwidth(text)
    parts: dict[str, float] = {}
    exclamation = _step(cfg.get("exclamation_run", {}), _longest_run(half, "!"))
    if exclamation:
        parts["exclamation"] = exclamation
    question = _step(cfg.get("question_run", {}), _longest_run(half, "?"))
    if question:
        parts["question"] = question
    if "?!" in half or "!?" in half:
        parts["interrobang"] = float(cfg.get("interrobang", 0.0))
    words = _CAPS_WORD.findall(half)
    caps = [w for w in words if w.isupper() and w.upper() not in lexicon.caps_ignore]
    if words and len(caps) >= int(cfg.get("caps_min_words", 2)) and len(caps) / len(words) >= float(
        cfg.get("caps_ratio", 0.5)
    ):
        parts["caps"] = float(cfg.get("caps", 0.0))
    repeat = int(cfg.get("elongation_min_repeat", 4))
    if re.search(r"([a-z])\1{" + str(repeat - 1) + ",}", half.lower()):
        parts["elongation"] = float(cfg.get("elongation", 0.0))
    cjk_min = int(cfg.get("cjk_repeat_min", 3))
    ignore = set(str(cfg.get("cjk_repeat_ignore", "")))
    for match in re.finditer("([" + _CJK_CHAR + r"])\1{" + str(cjk_min - 1) + ",}", half):
        if match.group(1) not in ignore:
            parts["cjk_repeat"] = float(cfg.get("cjk_repeat", 0.0))
            break
    remaining = 1.0
    for part in parts.values():
        remaining *= 1.0 - min(max(part, 0.0), 1.0)
    return 1.0 - remaining, parts


@dataclass(frozen=True)
class Evidence:
    """The parts of a message score before they are combined (kept separate so calibration can re-combine)."""

    wording: float  # 0-1, noisy-OR of wording hits and sarcasm
    anger: float | None  # classifier's expected anger 0-1, None without classifier
    intensity: float  # 0-1 shouting
    positive: bool  # praise or reassurance present
    negative_wording: bool  # any wording hit or sarcasm
    # Every wording hit is in a category marked ``mild`` in scoring.yml ("seriously", "到底"), and no sarcasm.
    mild_only: bool = False
    angry_probability: float = 0.0  # the classifier's probability of "angry" (0 without classifier)
    sarcasm_marked: bool = False  # sarcasm shown by a marker ("呵呵", "🙄", "thanks for nothing")


def expected_anger(probs: Mapping[str, float], combine: Mapping[str, float]) -> float:
    """The classifier's label probabilities as one anger value 0-1: angry counts 1, annoyed ``annoyed_value``.

    0.6 rather than the classifier's own 0.5: a message the classifier is sure is annoyed should land in the
    annoyed band (about 45), where two or three such turns build up to the threshold in the conversation score.
    """
    value = combine.get("annoyed_value", 0.5)
    return float(probs.get("annoyed", 0.0)) * value + float(probs.get("angry", 0.0))


def combine_evidence(evidence: Evidence, combine: Mapping[str, float]) -> tuple[float, float, bool]:
    """Combine evidence into a 0-1 score; returns (score, shouting evidence, damped by praise).

    Praise with only mild wording ("BEST. HOODIE. EVER. seriously so soft!!!") is excitement: the shouting is
    joy, so intensity adds nothing, the classifier is capped as if no wording had fired, and the score is damped
    by ``excited_damping``. Praise with no negative wording at all is damped by ``positive_damping``.
    """
    excited = evidence.positive and evidence.negative_wording and evidence.mild_only
    classifier_evidence = 0.0
    if evidence.anger is not None:
        floor = combine.get("classifier_floor", 0.12)
        anger = evidence.anger
        if evidence.sarcasm_marked:
            # Sarcastic praise ("wow, amazing job 🙄") reads as praise to the n-gram classifier; sarcasm is
            # labelled annoyed at least (train.yml), so the classifier counts at least that much. Only when a
            # marker shows it: praise next to a failure word is sometimes sincere ("great, it's cancelled now").
            anger = max(anger, combine.get("sarcasm_anger", 0.0))
        classifier_evidence = combine.get("classifier_weight", 0.75) * max(0.0, (anger - floor) / (1.0 - floor))
        if not evidence.negative_wording or excited:
            # Without a single angry word the small classifier is often wrong with confidence (unusual praise,
            # new topics), so on its own it may raise a message but not to the escalation level ...
            cap = combine.get("classifier_alone_cap", 1.0)
            # ... unless it is confident the message is angry and there is no praise: anger in words no list
            # holds ("is this some kind of joke to you people", "你们拿顾客当猴耍是吧"). Out of fold, 1% of calm
            # training messages pass this test, a third of angry ones (python -m tools.calibrate_frustration).
            confident = combine.get("classifier_confident_angry")
            if confident is not None and not evidence.positive and evidence.angry_probability >= confident:
                cap = max(cap, combine.get("classifier_confident_cap", cap))
            classifier_evidence = min(classifier_evidence, cap)
    negative = 1.0 - (1.0 - evidence.wording) * (1.0 - classifier_evidence)
    # Shouting without praise ("WHERE IS MY ORDER???") is evidence by itself; with other evidence it amplifies.
    shouting = 0.0 if evidence.positive else evidence.intensity * combine.get("shouting_weight", 0.0)
    gate = min(1.0, negative / max(combine.get("intensity_gate", 0.25), 1e-6))
    negative = 1.0 - (1.0 - negative) * (1.0 - shouting)
    intensity = 0.0 if excited else evidence.intensity
    value = negative + (1.0 - negative) * intensity * combine.get("intensity_weight", 0.6) * gate
    damped = evidence.positive and not evidence.negative_wording
    if damped:
        value *= combine.get("positive_damping", 0.35)
    elif excited:
        value *= combine.get("excited_damping", 1.0)
        damped = True
    return min(max(value, 0.0), 1.0), shouting, damped


def score_message(text: str, *, context: ScoringContext) -> MessageScore:
    """Score one message 0-100 for frustration.

    Args:
        text: the customer's message as typed.
        context: compiled wording and the trained classifier (see :func:`build_scoring_context`).

    Returns:
        ``MessageScore`` whose ``signals`` say which words, sarcasm, shouting and classifier output produced it.
    """
    lexicon = context.lexicon
    combine = lexicon.combine
    masked, protected = context.preprocess(text)

    hits, negated_spans = lexicon.scan(masked)
    hits_by_category: dict[str, list[str]] = {}
    for hit in hits:
        hits_by_category.setdefault(hit.category, []).append(hit.term)
    remaining = 1.0
    for category, terms in hits_by_category.items():
        weight = lexicon.category_weights[category] / 100.0
        for rank, _term in enumerate(terms[:_MAX_HITS_PER_CATEGORY]):
            remaining *= 1.0 - (weight if rank == 0 else weight / 2)

    markers = lexicon.any_match(lexicon.sarcasm_markers, masked, negatable=False)
    praise = lexicon.any_match(lexicon.sarcasm_praise, masked)
    sarcasm = bool(markers)
    if praise and not sarcasm:
        failures = lexicon.any_match(lexicon.sarcasm_failures, masked, negatable=False)
        sarcasm = bool(failures) and not lexicon.any_match(lexicon.sarcasm_resolved, masked, negatable=False)
    if sarcasm:
        remaining *= 1.0 - combine.get("sarcasm_points", 45.0) / 100.0
    wording = 1.0 - remaining

    anger: float | None = None
    probs: dict[str, float] = {}
    topics: dict[str, float] | None = None
    if context.classifier is not None or context.topics is not None:
        # The classifiers cannot read negation, so words the rules found negated ("不是骗子") are hidden from them.
        features = ngram_features(_blank(masked, negated_spans))
        if context.classifier is not None:
            anger, probs = context.classifier.expected_anger_features(features)
            anger = expected_anger(probs, combine)
        if context.topics is not None:
            topics = topic_probabilities(context.topics, features)
    positive = lexicon.any_match(lexicon.positive, masked)
    intensity, intensity_parts = intensity_of(text, lexicon)
    mild_only = bool(hits_by_category) and not sarcasm and set(hits_by_category) <= lexicon.mild_categories
    evidence = Evidence(
        wording, anger, intensity, bool(positive), bool(hits_by_category) or sarcasm, mild_only,
        float(probs.get("angry", 0.0)), bool(markers),
    )
    value, shouting, damped = combine_evidence(evidence, combine)

    signals: dict[str, Any] = {
        "lang": detect_language(text),
        "hits": hits_by_category,
        "wording": round(wording * 100, 1),
        "sarcasm": sarcasm,
        "sarcasm_marked": bool(markers),
        "positive": bool(positive),
        "damped": damped,
        "mild_only": mild_only,
        "intensity": round(intensity, 3),
        "shouting": round(shouting, 3),
        "intensity_parts": intensity_parts,
        "classifier": None if anger is None else round(anger, 3),
        "classifier_probs": probs,
        "protected": protected,
    }
    if topics is not None:
        signals[TOPICS_KEY] = topics  # escalation reasons the topic classifier sees (probability >= 0.05)
    return MessageScore(score=int(round(value * 100)), signals=signals)


def train_classifier(
    examples: list[LabelledMessage], lexicon: Lexicon, **train_kwargs: Any
) -> NgramClassifier:
    """Train the classifier on examples preprocessed exactly like scoring input."""

    def preprocess(text: str) -> str:
        return lexicon.mask_protected(normalize(text))[0]

    return NgramClassifier.train(examples, preprocess=preprocess, **train_kwargs)


def background_examples(lexicon: Lexicon) -> list[LabelledMessage]:
    """Calm background examples from the NLU files named in scoring.yml (``background``); none if not configured."""
    spec = lexicon.raw.get("background") or {}
    paths = [resolve_data_path(p) for p in spec.get("nlu_files") or []]
    return load_nlu_background(paths, spec.get("calm_intents") or [], weight=float(spec.get("weight", 0.5)))


def topic_examples(
    topics_path: Path, lexicon: Lexicon, *, use_background: bool = True
) -> list[LabelledMessage]:
    """Hand-labelled topic examples plus (optionally) the NLU background named in scoring.yml."""
    examples = load_topic_data(topics_path)
    if use_background:
        examples = examples + topic_background(lexicon.raw.get("background") or {}, resolve_data_path)
    return examples


def train_topics(examples: list[LabelledMessage], lexicon: Lexicon, **train_kwargs: Any) -> NgramClassifier:
    """Train the topic classifier on examples preprocessed exactly like scoring input."""

    def preprocess(text: str) -> str:
        return lexicon.mask_protected(normalize(text))[0]

    return train_topic_classifier(examples, preprocess, **train_kwargs)


def build_scoring_context(
    scoring_path: Path = DEFAULT_SCORING_PATH,
    train_path: Path | None = DEFAULT_TRAIN_PATH,
    *,
    topics_path: Path | None = DEFAULT_TOPICS_PATH,
    use_background: bool = True,
    **train_kwargs: Any,
) -> ScoringContext:
    """Compile the wording and train the classifiers (a few seconds); a ``None`` path leaves that model out."""
    lexicon = Lexicon.from_yaml(scoring_path)
    classifier = None
    if train_path is not None:
        examples = load_training_data(train_path)
        if use_background:
            examples = examples + background_examples(lexicon)
        classifier = train_classifier(examples, lexicon, **train_kwargs)
    topics = None
    if topics_path is not None:
        topics = train_topics(topic_examples(topics_path, lexicon, use_background=use_background), lexicon)
    return ScoringContext(lexicon=lexicon, classifier=classifier, topics=topics)


def save_scoring_context(context: ScoringContext, directory: Path) -> None:
    """Persist wording (as JSON) and classifier into ``directory`` so a model never depends on later edits."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / SCORING_FILE, "w", encoding="utf-8") as handle:
        json.dump(_jsonable(context.lexicon.raw), handle, ensure_ascii=False)
    if context.classifier is not None:
        context.classifier.save(directory)
    if context.topics is not None:
        context.topics.save(directory, TOPICS_MODEL_NAME)


def load_scoring_context(directory: Path) -> ScoringContext:
    """Load what :func:`save_scoring_context` wrote."""
    with open(directory / SCORING_FILE, encoding="utf-8") as handle:
        lexicon = Lexicon.from_dict(json.load(handle))
    classifier = NgramClassifier.load(directory) if (directory / "classifier.json").exists() else None
    has_topics = (directory / f"{TOPICS_MODEL_NAME}.json").exists()
    topics = NgramClassifier.load(directory, TOPICS_MODEL_NAME) if has_topics else None
    return ScoringContext(lexicon=lexicon, classifier=classifier, topics=topics)


def load_scoring_yaml(path: Path) -> dict[str, Any]:
    """Parse scoring.yml (used to fingerprint and copy it)."""
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _jsonable(value: Any) -> Any:
    """YAML allows int keys ({2: 0.25}); JSON needs strings."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
