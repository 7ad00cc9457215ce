"""Evaluation harness: dev-set accuracy, out-of-scope behaviour and a leave-one-out self-check.

Dev set format (``tests/kb_index/devset.yml``)::

    questions:
      - {text: "退货运费谁出？", lang: zh, expected_id: returns-shipping-fee}
    out_of_scope:
      - {text: "What's the weather tomorrow?", lang: en}

``evaluate_devset`` reports top-1 / top-3 per language, how often out-of-scope questions would be
answered confidently, and a threshold sweep to choose ``KB_CONFIDENT_THRESHOLD`` /
``KB_MIDDLING_THRESHOLD``. ``self_check`` needs no dev set: each example question of the KB is
searched with its own vector (and, for BM25, its own words) left out, which is how the document
representation and the BM25 fusion were chosen.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kb_index.builder import article_units, encode_units
from kb_index.encoder import Encoder
from kb_index.errors import KBContentError
from kb_index.lexical import LexicalIndex, article_text
from kb_index.retriever import Retriever
from kb_index.schema import LANGS, Article, Confidence, Lang
from kb_index.text import lexical_tokens

DEFAULT_DEVSET = Path("tests/kb_index/devset.yml")
SWEEP_THRESHOLDS: tuple[float, ...] = tuple(round(0.70 + 0.01 * i, 2) for i in range(26))


class DevQuestion(BaseModel):
    """An in-scope question and the article that answers it."""

    model_config = ConfigDict(extra="forbid")

    text: str
    lang: Lang
    expected_id: str = Field(min_length=1)


class OutOfScopeQuestion(BaseModel):
    """A question the KB must not answer confidently."""

    model_config = ConfigDict(extra="forbid")

    text: str
    lang: Lang


class DevSet(BaseModel):
    """The whole dev set file."""

    model_config = ConfigDict(extra="forbid")

    questions: list[DevQuestion] = []
    out_of_scope: list[OutOfScopeQuestion] = []


def load_devset(path: Path) -> DevSet:
    """Read and validate a dev set file.

    Raises:
        KBContentError: the file is missing or malformed.
    """
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return DevSet.model_validate(raw)
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise KBContentError(f"cannot read dev set {path}: {exc}") from exc


def _rate(hits: int, total: int) -> float | None:
    return round(hits / total, 4) if total else None


def threshold_sweep(
    in_scope: Sequence[tuple[float, bool]], out_of_scope: Sequence[float]
) -> list[dict[str, float | None]]:
    """For each threshold: share of in-scope questions answered right / wrong, and of
    out-of-scope questions answered, if every top-1 at or above it were answered."""
    rows: list[dict[str, float | None]] = []
    for threshold in SWEEP_THRESHOLDS:
        right = sum(1 for score, ok in in_scope if ok and score >= threshold)
        wrong = sum(1 for score, ok in in_scope if not ok and score >= threshold)
        oos = sum(1 for score in out_of_scope if score >= threshold)
        rows.append(
            {
                "threshold": threshold,
                "in_scope_answered_right": _rate(right, len(in_scope)),
                "in_scope_answered_wrong": _rate(wrong, len(in_scope)),
                "out_of_scope_answered": _rate(oos, len(out_of_scope)),
            }
        )
    return rows


def evaluate_devset(retriever: Retriever, devset: DevSet) -> dict[str, Any]:
    """Top-1 / top-3 per language, confidence mix and a threshold sweep on ``devset``."""
    known_ids = set(retriever.article_ids)
    per_lang: dict[str, dict[str, int]] = defaultdict(lambda: {"n": 0, "top1": 0, "top3": 0})
    unknown_expected: list[str] = []
    in_scope: list[tuple[float, bool]] = []
    confident_wrong = 0
    confident_right = 0
    for item in devset.questions:
        if item.expected_id not in known_ids:
            unknown_expected.append(item.expected_id)
        hits = retriever.search(item.text, k=3)
        ids = [h.id for h in hits]
        stats = per_lang[item.lang]
        stats["n"] += 1
        stats["top1"] += int(bool(ids) and ids[0] == item.expected_id)
        stats["top3"] += int(item.expected_id in ids)
        top_score = hits[0].score if hits else -1.0
        correct = bool(ids) and ids[0] == item.expected_id
        in_scope.append((top_score, correct))
        if retriever.classify(top_score) is Confidence.CONFIDENT:
            confident_right += int(correct)
            confident_wrong += int(not correct)
    oos_scores: list[float] = []
    oos_by_level: dict[str, int] = defaultdict(int)
    oos_confident_examples: list[dict[str, Any]] = []
    for oos in devset.out_of_scope:
        hits = retriever.search(oos.text, k=1)
        score = hits[0].score if hits else -1.0
        oos_scores.append(score)
        level = retriever.classify(score)
        oos_by_level[level.value] += 1
        if level is Confidence.CONFIDENT:
            oos_confident_examples.append({"text": oos.text, "id": hits[0].id, "score": score})
    n_questions = len(devset.questions)
    report: dict[str, Any] = {
        "settings": {
            "model": retriever.settings.model_location,
            "query_encoder": retriever.query_encoder.backend,
            "use_bm25": retriever.settings.use_bm25,
            "bm25_weight": retriever.settings.bm25_weight,
            "confident_threshold": retriever.settings.confident_threshold,
            "middling_threshold": retriever.settings.middling_threshold,
        },
        "in_scope": {
            lang: {
                "n": s["n"],
                "top1": _rate(s["top1"], s["n"]),
                "top3": _rate(s["top3"], s["n"]),
            }
            for lang, s in sorted(per_lang.items())
        },
        "in_scope_all": {
            "n": n_questions,
            "top1": _rate(sum(s["top1"] for s in per_lang.values()), n_questions),
            "top3": _rate(sum(s["top3"] for s in per_lang.values()), n_questions),
            "confident_right": _rate(confident_right, n_questions),
            "confident_wrong": _rate(confident_wrong, n_questions),
        },
        "out_of_scope": {
            "n": len(devset.out_of_scope),
            "answered_confidently": _rate(oos_by_level["confident"], len(devset.out_of_scope)),
            "middling": _rate(oos_by_level["middling"], len(devset.out_of_scope)),
            "confident_examples": oos_confident_examples[:10],
        },
        "unknown_expected_ids": sorted(set(unknown_expected)),
        "threshold_sweep": threshold_sweep(in_scope, oos_scores),
    }
    return report


# --------------------------------------------------------------------------- self-check


def _max_pool(scores: np.ndarray, unit_article: np.ndarray, n_articles: int) -> np.ndarray:
    pooled = np.full(n_articles, -np.inf, dtype=np.float32)
    np.maximum.at(pooled, unit_article, scores)
    return pooled


@dataclass
class _Probe:
    """A question scored in :func:`self_check`."""

    text: str
    lang: str
    expected: int | None  # article position; None for out-of-scope
    vector: np.ndarray
    excluded_unit: int  # its own unit (leave-one-out), -1 for dev-set questions
    lexical: np.ndarray | None = None


def self_check(
    articles: Sequence[Article],
    encoder: Encoder,
    passage_weights: Iterable[float] = (0.0, 0.5, 1.0),
    bm25_weights: Iterable[float] = (0.0,),
    devset: DevSet | None = None,
) -> dict[str, Any]:
    """Compare passage weights (0 = titles/questions only, 1 = answer passages only) and BM25
    weights without building indexes.

    Two probe sets: (1) leave-one-out - every example question of the KB, scored with its own
    vector removed and its words removed from its article's BM25 document, so an article only
    matches through its *other* phrasings, title and answer; (2) the dev set, if given, whose
    out-of-scope questions show how well each configuration's scores separate answerable from
    unanswerable questions (``in_scope_right_above_max_oos``: share of dev questions whose correct
    top-1 scores above every out-of-scope question).
    """
    all_units = article_units(articles)
    vectors = encode_units(encoder, all_units)
    unit_article = np.array([u.article for u in all_units])
    is_passage = np.array([u.kind == "passage" for u in all_units])
    n_articles = len(articles)
    weights = tuple(bm25_weights)
    use_lexical = any(w > 0 for w in weights)
    base_tokens = [lexical_tokens(article_text(a)) for a in articles] if use_lexical else []
    full_lexical = LexicalIndex.from_tokens(base_tokens) if use_lexical else None

    loo: list[_Probe] = []
    for i, unit in enumerate(all_units):
        if unit.kind != "question":
            continue
        probe = _Probe(unit.text, unit.lang, unit.article, vectors[i], i)
        if use_lexical:
            docs = list(base_tokens)
            docs[unit.article] = _without_tokens(docs[unit.article], lexical_tokens(unit.text))
            probe.lexical = LexicalIndex.from_tokens(docs).scores(unit.text)
        loo.append(probe)

    dev: list[_Probe] = []
    if devset is not None:
        position = {a.id: i for i, a in enumerate(articles)}
        items = [(q.text, q.lang, position.get(q.expected_id, -1)) for q in devset.questions]
        items += [(q.text, q.lang, None) for q in devset.out_of_scope]
        dev_vectors = encoder.encode_queries([text for text, _, _ in items])
        for (text, lang, expected), vector in zip(items, dev_vectors, strict=True):
            lexical = full_lexical.scores(text) if full_lexical is not None else None
            dev.append(_Probe(text, lang, expected, vector, -1, lexical))

    runs: list[dict[str, Any]] = []
    for passage_weight in passage_weights:
        for weight in weights:
            run: dict[str, Any] = {"passage_weight": passage_weight, "bm25_weight": weight}
            for name, probes in (("leave_one_out", loo), ("devset", dev)):
                if probes:
                    run[name] = _score_probes(
                        probes, vectors, is_passage, unit_article, n_articles, passage_weight, weight
                    )
            runs.append(run)
    return {"loo_probes": len(loo), "dev_probes": len(dev), "articles": n_articles, "runs": runs}


def _blended(
    sims: np.ndarray,
    keep: np.ndarray,
    is_passage: np.ndarray,
    unit_article: np.ndarray,
    n_articles: int,
    passage_weight: float,
) -> np.ndarray:
    """Per-article dense score as the retriever computes it (see ``article_scores``)."""
    questions = keep & ~is_passage
    passages = keep & is_passage
    best_q = _max_pool(sims[questions], unit_article[questions], n_articles)
    best_p = _max_pool(sims[passages], unit_article[passages], n_articles)
    blended = (1 - passage_weight) * best_q + passage_weight * best_p
    only_q = np.isneginf(best_p) & ~np.isneginf(best_q)
    only_p = np.isneginf(best_q) & ~np.isneginf(best_p)
    blended[only_q] = best_q[only_q]
    blended[only_p] = best_p[only_p]
    blended[np.isneginf(best_q) & np.isneginf(best_p)] = 0.0
    if passage_weight == 0.0:
        blended = np.where(np.isneginf(best_q), 0.0, best_q)
    elif passage_weight == 1.0:
        blended = np.where(np.isneginf(best_p), 0.0, best_p)
    return blended


def _score_probes(
    probes: Sequence[_Probe],
    vectors: np.ndarray,
    is_passage: np.ndarray,
    unit_article: np.ndarray,
    n_articles: int,
    passage_weight: float,
    weight: float,
) -> dict[str, Any]:
    per_lang: dict[str, list[int]] = {lang: [0, 0, 0] for lang in LANGS}
    in_scope: list[tuple[float, bool]] = []
    oos_scores: list[float] = []
    for probe in probes:
        keep = np.ones(len(vectors), dtype=bool)
        if probe.excluded_unit >= 0:
            keep[probe.excluded_unit] = False
        sims = vectors @ probe.vector
        dense = _blended(sims, keep, is_passage, unit_article, n_articles, passage_weight)
        fused = dense
        if weight > 0 and probe.lexical is not None:
            fused = (1 - weight) * dense + weight * probe.lexical
        order = np.argsort(-fused)
        top = float(fused[order[0]])
        if probe.expected is None:
            oos_scores.append(top)
            continue
        stats = per_lang[probe.lang]
        stats[0] += 1
        stats[1] += int(order[0] == probe.expected)
        stats[2] += int(probe.expected in order[:3])
        in_scope.append((top, bool(order[0] == probe.expected)))
    result: dict[str, Any] = {
        lang: {"n": n, "top1": _rate(t1, n), "top3": _rate(t3, n)} for lang, (n, t1, t3) in per_lang.items() if n
    }
    result["top1_score_right_median"] = _median([s for s, ok in in_scope if ok])
    result["top1_score_wrong_median"] = _median([s for s, ok in in_scope if not ok])
    if oos_scores:
        ceiling = max(oos_scores)
        result["oos_top1_score_median"] = _median(oos_scores)
        result["oos_top1_score_max"] = round(ceiling, 4)
        result["in_scope_right_above_max_oos"] = _rate(
            sum(1 for s, ok in in_scope if ok and s > ceiling), len(in_scope)
        )
        result["in_scope_wrong_above_max_oos"] = _rate(
            sum(1 for s, ok in in_scope if not ok and s > ceiling), len(in_scope)
        )
    return result


def _median(values: Sequence[float]) -> float | None:
    return round(statistics.median(values), 4) if values else None


def _without_tokens(doc: list[str], removed: list[str]) -> list[str]:
    """``doc`` minus one occurrence of each token of ``removed`` (the probe question's words)."""
    left = Counter(removed)
    kept: list[str] = []
    for token in doc:
        if left[token] > 0:
            left[token] -= 1
        else:
            kept.append(token)
    return kept


def example_question_accuracy(retriever: Retriever, articles: Sequence[Article]) -> dict[str, Any]:
    """Sanity check through the full search path: each example question must find its article.

    The question's own vector is in the index, so this checks plumbing (ids, languages, pooling),
    not generalisation; :func:`self_check` measures the latter.
    """
    per_lang: dict[str, list[int]] = {lang: [0, 0] for lang in LANGS}
    misses: list[dict[str, str]] = []
    for article in articles:
        for lang in LANGS:
            for question in article.questions.get(lang):
                hits = retriever.search(question, k=1)
                ok = bool(hits) and hits[0].id == article.id
                per_lang[lang][0] += 1
                per_lang[lang][1] += int(ok)
                if not ok:
                    misses.append({"question": question, "expected": article.id, "got": hits[0].id if hits else ""})
    return {
        **{lang: {"n": n, "top1": _rate(ok, n)} for lang, (n, ok) in per_lang.items()},
        "misses": misses[:20],
    }
