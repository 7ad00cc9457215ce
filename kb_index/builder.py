"""Building the KB index: articles -> vectors (FAISS) + BM25 + metadata + fingerprint.

On-disk layout of ``KB_INDEX_DIR``::

    fingerprint.json        the current build (model id, content hash, build folder); replaced
                            atomically last, so watching it is enough to hot-reload
    builds/<build id>/      questions.faiss, passages.faiss, meta.json, bm25/  (the previous
                            build is kept so a process still reading it is not disturbed)

Each article becomes several vectors ("units"): its title and every example question in both
languages, encoded like a user's question (``query`` prompt), and per language one passage (title +
answer, ``passage`` prompt). The retriever scores an article by blending its best question/title
unit with its best passage unit (``KB_PASSAGE_WEIGHT``); the blend was chosen by measurement (see
``tools.evaluate_kb.self_check``): example questions alone miss paraphrases that only the answer
covers, passages alone separate out-of-scope questions poorly.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from kb_index.content import content_hash, load_articles
from kb_index.dense import PASSAGES_FILE, QUESTIONS_FILE, DenseIndex, KindIndex, flat_ip_index, vector_index
from kb_index.encoder import Encoder, load_encoder, model_identity
from kb_index.errors import KBContentError
from kb_index.layout import BUILDS_DIR, read_current_fingerprint, write_fingerprint
from kb_index.lexical import LexicalIndex
from kb_index.schema import LANGS, Article
from kb_index.settings import KBSettings
from kb_index.text import tokenizer_fingerprint

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 2
META_FILE = "meta.json"
BM25_DIR = "bm25"
KEEP_BUILDS = 2
BUILD_FILES: tuple[str, ...] = (QUESTIONS_FILE, PASSAGES_FILE, META_FILE, BM25_DIR)

UnitKind = Literal["title", "question", "passage"]
# Recorded in the fingerprint: changing what gets encoded must force a rebuild.
REPRESENTATION = "titles+questions+passages/v1"


@dataclass(frozen=True)
class Unit:
    """One encoded text of an article."""

    article: int
    kind: UnitKind
    lang: str
    text: str


def article_units(articles: Sequence[Article]) -> list[Unit]:
    """The texts to encode, grouped by article (units of one article are contiguous).

    Titles and example questions are short questions/topics, so they are encoded like the user's
    question (``query`` prompt, symmetric matching); answers are passages (``passage`` prompt,
    prefixed with the title so a long answer keeps its topic).
    """
    units: list[Unit] = []
    for position, article in enumerate(articles):
        for lang in LANGS:
            units.append(Unit(position, "title", lang, article.title.get(lang)))
            units.extend(Unit(position, "question", lang, q) for q in article.questions.get(lang))
            text = f"{article.title.get(lang)}\n{article.answer.get(lang)}"
            units.append(Unit(position, "passage", lang, text))
    return units


def encode_units(encoder: Encoder, units: Sequence[Unit], batch_size: int = 32) -> np.ndarray:
    """Unit vectors in unit order (queries and passages encoded with their own prompts)."""
    vectors = np.zeros((len(units), encoder.dimension), dtype=np.float32)
    query_rows = [i for i, u in enumerate(units) if u.kind != "passage"]
    passage_rows = [i for i, u in enumerate(units) if u.kind == "passage"]
    if query_rows:
        vectors[query_rows] = encoder.encode_queries([units[i].text for i in query_rows], batch_size=batch_size)
    if passage_rows:
        vectors[passage_rows] = encoder.encode_documents([units[i].text for i in passage_rows], batch_size=batch_size)
    return vectors


def unit_offsets(units: Sequence[Unit], n_articles: int) -> np.ndarray:
    """``offsets[i]:offsets[i + 1]`` are the rows of article ``i`` (units are grouped by article)."""
    counts = np.bincount(np.asarray([u.article for u in units], dtype=np.int64), minlength=n_articles)
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def article_meta(article: Article) -> dict[str, Any]:
    """What the retriever needs to answer without the YAML files."""
    return {
        "id": article.id,
        "category": article.category,
        "title": {lang: article.title.get(lang) for lang in LANGS},
        "answer": {lang: article.answer.get(lang) for lang in LANGS},
    }


def fingerprint_for(model_identity: str, kb_hash: str) -> str:
    """Key deciding whether an existing build can be reused."""
    key = f"{SCHEMA_VERSION}|{REPRESENTATION}|{model_identity}|{kb_hash}|{tokenizer_fingerprint()}"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class BuildResult:
    """What ``build_index`` did."""

    built: bool
    build_dir: Path
    fingerprint: dict[str, Any]
    seconds: float


def build_index(
    settings: KBSettings,
    *,
    encoder: Encoder | None = None,
    force: bool = False,
) -> BuildResult:
    """Build the index of ``settings.data_path`` into ``settings.index_path`` unless up to date.

    Args:
        settings: where the articles, the model and the index are.
        encoder: an already loaded model (tests, hot paths); loaded from settings otherwise.
        force: rebuild even if the fingerprint matches.

    Raises:
        KBContentError: the article files are malformed or empty.
        KBUnavailable: the model cannot be loaded.
    """
    started = time.perf_counter()
    articles = load_articles(settings.data_path)
    if not articles:
        raise KBContentError(f"no articles found in {settings.data_path}")
    kb_hash = content_hash(articles)
    # The model's identity comes from its files, so an up-to-date index is detected without
    # spending seconds loading the model.
    identity = encoder.identity if encoder else model_identity(settings.model_location)
    key = fingerprint_for(identity, kb_hash)
    index_dir = settings.index_path
    current = read_current_fingerprint(index_dir)
    if not force and current and current.get("key") == key:
        build_dir = index_dir / BUILDS_DIR / str(current.get("build_id"))
        if all((build_dir / name).exists() for name in BUILD_FILES):
            logger.info("index in %s is up to date (%s)", index_dir, current.get("build_id"))
            return BuildResult(False, build_dir, current, time.perf_counter() - started)

    encoder = encoder or load_encoder(settings)
    units = article_units(articles)
    vectors = encode_units(encoder, units)
    build_id = f"{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S%f}-{key[:8]}"
    fingerprint = {
        "schema": SCHEMA_VERSION,
        "key": key,
        "build_id": build_id,
        "model": encoder.identity,
        "model_location": encoder.location,
        "content_hash": kb_hash,
        "representation": REPRESENTATION,
        "articles": len(articles),
        "vectors": len(units),
        "dimension": encoder.dimension,
        "built_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    dense = dense_index(units, vectors, len(articles), encoder.dimension, settings.ann_min_vectors)
    meta = {
        "schema": SCHEMA_VERSION,
        "model": encoder.identity,
        "dimension": encoder.dimension,
        "articles": [article_meta(a) for a in articles],
        "question_offsets": dense.questions.offsets.tolist(),
        "passage_offsets": dense.passages.offsets.tolist(),
    }
    build_dir = write_build(index_dir, build_id, dense, meta, LexicalIndex.for_articles(articles), fingerprint)
    elapsed = time.perf_counter() - started
    logger.info("built %s: %d articles, %d vectors in %.1f s", build_id, len(articles), len(units), elapsed)
    return BuildResult(True, build_dir, fingerprint, elapsed)


def dense_index(
    units: Sequence[Unit], vectors: np.ndarray, n_articles: int, dimension: int, ann_min_vectors: int | None = None
) -> DenseIndex:
    """Split unit vectors into the question/title index and the passage index (exact unless a kind has more
    than ``ann_min_vectors`` vectors, see ``kb_index.dense``; None = always exact)."""
    kinds: list[KindIndex] = []
    for is_passage in (False, True):
        rows = [i for i, u in enumerate(units) if (u.kind == "passage") == is_passage]
        offsets = unit_offsets([units[i] for i in rows], n_articles)
        index = (
            flat_ip_index(vectors[rows], dimension)
            if ann_min_vectors is None
            else vector_index(vectors[rows], dimension, ann_min_vectors)
        )
        kinds.append(KindIndex.create(index, offsets))
    return DenseIndex(questions=kinds[0], passages=kinds[1])


def write_build(
    index_dir: Path,
    build_id: str,
    dense: DenseIndex,
    meta: dict[str, Any],
    lexical: LexicalIndex,
    fingerprint: dict[str, Any],
) -> Path:
    """Write a complete build folder, then point ``fingerprint.json`` at it (atomic replace)."""
    builds = index_dir / BUILDS_DIR
    builds.mkdir(parents=True, exist_ok=True)
    # Indexes are derived data: keep them out of git wherever KB_INDEX_DIR points.
    gitignore = index_dir / ".gitignore"
    if not gitignore.exists():
        gitignore.write_text("*\n", encoding="utf-8")
    staging = builds / f".{build_id}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    dense.questions.save(staging / QUESTIONS_FILE)
    dense.passages.save(staging / PASSAGES_FILE)
    (staging / META_FILE).write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    lexical.save(staging / BM25_DIR)
    final = builds / build_id
    os.replace(staging, final)
    write_fingerprint(index_dir, fingerprint)
    _prune_builds(builds, keep=build_id)
    return final


def _prune_builds(builds: Path, keep: str) -> None:
    """Delete all but the newest :data:`KEEP_BUILDS` builds (never ``keep``)."""
    dirs = sorted(
        (p for p in builds.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: p.name,
        reverse=True,
    )
    for old in dirs[KEEP_BUILDS:]:
        if old.name != keep:
            shutil.rmtree(old, ignore_errors=True)
