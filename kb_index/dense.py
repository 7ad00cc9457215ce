"""Dense article scoring over two FAISS indexes: titles/questions and answer passages.

An article's dense score blends its title/question match ``q`` with its best passage match ``s``
(``(1 - p) * q + p * s``), where ``q`` is the mean of the article's ``n`` best title/question
cosines (``KB_QUESTION_TOP_N``): with ~10 phrasings per article, two agreeing phrasings are
stronger evidence than one lucky near-duplicate (measured: +1-3 points top-1 on the dev set).
Queries match questions (symmetric, ``query`` prompt on both sides) with systematically higher
cosines than passages, so each kind has its own exact inner-product index (``IndexFlatIP`` on unit
vectors = cosine) and the top-k search bounds each kind separately.

A kind with more than ``KB_ANN_MIN_VECTORS`` vectors is searched with FAISS HNSW instead (M=16,
efConstruction 40, efSearch >= 64): exact search over the ~226k title/question vectors of a
10k-article KB costs ~22 ms per question on one thread, HNSW ~0.3 ms with recall@10 0.99 against
exact (measured by ``python -m tools.kb bench``). Article scores are still computed exactly from the
stored vectors; only the candidate pool is approximate, and it is not grown past
``_MAX_APPROX_POOL`` rows.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

QUESTIONS_FILE = "questions.faiss"
PASSAGES_FILE = "passages.faiss"
# Units of each kind examined per requested article before the bound check.
_POOL_PER_HIT = 8
_MIN_POOL = 32
_MAX_APPROX_POOL = 512
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 40
HNSW_EF_SEARCH = 64


def flat_ip_index(vectors: np.ndarray, dimension: int) -> Any:
    """An exact inner-product FAISS index holding ``vectors``."""
    import faiss

    index = faiss.IndexFlatIP(dimension)
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def hnsw_ip_index(vectors: np.ndarray, dimension: int) -> Any:
    """An approximate (HNSW) inner-product FAISS index holding ``vectors``, built on all cores."""
    import faiss

    index = faiss.IndexHNSWFlat(dimension, HNSW_M, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    index.hnsw.efSearch = HNSW_EF_SEARCH
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(os.cpu_count() or 1)  # building is offline work; searching stays on one
    try:
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    finally:
        faiss.omp_set_num_threads(threads)
    return index


def vector_index(vectors: np.ndarray, dimension: int, ann_min_vectors: int) -> Any:
    """Exact index up to ``ann_min_vectors`` vectors, HNSW above (``KB_ANN_MIN_VECTORS``)."""
    if len(vectors) > ann_min_vectors:
        return hnsw_ip_index(vectors, dimension)
    return flat_ip_index(vectors, dimension)


def is_approximate(index: Any) -> bool:
    """True for an HNSW index (its top-k may miss rows)."""
    return hasattr(index, "hnsw")


def stored_vectors(index: Any) -> np.ndarray:
    """Zero-copy ``(ntotal, d)`` view of the vectors a flat or HNSW-flat index stores."""
    import faiss

    flat = faiss.downcast_index(index.storage) if is_approximate(index) else index
    if flat.ntotal == 0:
        return np.zeros((0, flat.d), dtype=np.float32)
    return faiss.rev_swig_ptr(flat.get_xb(), flat.ntotal * flat.d).reshape(flat.ntotal, flat.d)


@dataclass(frozen=True)
class KindIndex:
    """The vectors of one unit kind; rows grouped by article (article i owns offsets[i]:offsets[i+1])."""

    index: Any  # faiss.IndexFlatIP, or IndexHNSWFlat above KB_ANN_MIN_VECTORS
    offsets: np.ndarray
    row_article: np.ndarray
    vectors: np.ndarray  # view of the index's own storage (valid while ``index`` lives)

    @classmethod
    def create(cls, index: Any, offsets: np.ndarray) -> KindIndex:
        """Wrap ``index``; ``offsets`` has one entry per article plus one."""
        offsets = np.asarray(offsets, dtype=np.int64)
        row_article = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
        return cls(index, offsets, row_article, stored_vectors(index))

    @property
    def size(self) -> int:
        """Number of vectors."""
        return int(self.index.ntotal)

    def best(self, query: np.ndarray, article: int, top_n: int = 1) -> float | None:
        """Mean of the ``top_n`` best cosines of ``article``'s vectors (all of them if it has fewer),
        None when it has none of this kind."""
        value = self.best_many(query, np.asarray([article]), top_n)[0]
        return None if np.isnan(value) else float(value)

    def best_many(self, query: np.ndarray, articles: np.ndarray, top_n: int = 1) -> np.ndarray:
        """:meth:`best` of each of ``articles`` in one pass (NaN for an article without vectors)."""
        articles = np.asarray(articles, dtype=np.int64)
        starts, ends = self.offsets[articles], self.offsets[articles + 1]
        lengths = ends - starts
        result = np.full(len(articles), np.nan, dtype=np.float64)
        total = int(lengths.sum())
        if total == 0:
            return result
        segment_start = np.cumsum(lengths) - lengths
        rows = np.repeat(starts - segment_start, lengths) + np.arange(total)
        segment = np.repeat(np.arange(len(articles)), lengths)
        cosines = (self.vectors[rows] @ query).astype(np.float64)
        # Sort by (article, best first) with one float sort: cosines lie in [-1, 1], articles are 4 apart.
        offset = segment * 4.0
        ranked = offset - np.sort(offset - cosines)
        rank = np.arange(total) - np.repeat(segment_start, lengths)
        keep = rank < max(top_n, 1)
        sums = np.bincount(segment[keep], weights=ranked[keep], minlength=len(articles))
        counts = np.minimum(lengths, max(top_n, 1))
        has = lengths > 0
        result[has] = sums[has] / counts[has]
        return result

    @property
    def approximate(self) -> bool:
        """True when searched with HNSW."""
        return is_approximate(self.index)

    def search(self, query_row: np.ndarray, pool: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``pool`` rows: (scores, article of each row)."""
        if self.approximate:
            self.index.hnsw.efSearch = max(HNSW_EF_SEARCH, pool)
        scores, rows = self.index.search(query_row, min(pool, self.size))
        valid = rows[0] >= 0
        return scores[0][valid], self.row_article[rows[0][valid]]

    def save(self, path: Path) -> None:
        """Write the FAISS index."""
        import faiss

        faiss.write_index(self.index, str(path))


@dataclass(frozen=True)
class DenseIndex:
    """Question and passage indexes of one build."""

    questions: KindIndex
    passages: KindIndex

    @property
    def size(self) -> int:
        """Total number of vectors."""
        return self.questions.size + self.passages.size

    def article_scores(
        self, query: np.ndarray, articles: Sequence[int], passage_weight: float, question_top_n: int = 1
    ) -> list[float]:
        """Blended dense score of each article (an article lacking one kind is scored by the other)."""
        if not len(articles):
            return []
        ids = np.asarray(articles, dtype=np.int64)
        nothing = np.full(len(ids), np.nan)
        best_q = self.questions.best_many(query, ids, question_top_n) if passage_weight < 1.0 else nothing
        best_p = self.passages.best_many(query, ids) if passage_weight > 0.0 else nothing
        blended = (1.0 - passage_weight) * best_q + passage_weight * best_p
        scores = np.where(np.isnan(best_q), best_p, np.where(np.isnan(best_p), best_q, blended))
        return [float(x) for x in np.nan_to_num(scores, nan=0.0)]

    def top_articles(
        self, query: np.ndarray, k: int, passage_weight: float, question_top_n: int = 1
    ) -> dict[int, float]:
        """Exact top ``k`` articles by blended score, scoring only a few candidates.

        Candidates are the articles owning the top ``pool`` rows of each index. An article outside
        both pools has every question below the pool's last question score (so also the mean of
        its best ``question_top_n``) and every passage below the last passage score, so its blend
        is below the same blend of those two; when the k-th candidate reaches that bound the answer
        is exact, otherwise the pools grow.
        """
        n_articles = len(self.questions.offsets) - 1
        wanted = min(k, n_articles)
        if wanted <= 0 or self.size == 0:
            return {}
        use_q = passage_weight < 1.0 and self.questions.size > 0
        use_p = passage_weight > 0.0 and self.passages.size > 0
        query_row = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        pool = max(_MIN_POOL, k * _POOL_PER_HIT)
        searched = [kind for use, kind in ((use_q, self.questions), (use_p, self.passages)) if use]
        if not searched:
            return {}
        approximate = any(kind.approximate for kind in searched)
        found: dict[int, float] = {}  # scored so far; a grown pool only scores its new candidates
        while True:
            candidates: dict[int, None] = {}
            floors: list[float] = []  # last (lowest) score seen in each searched index
            exhausted = True
            for kind in searched:
                scores, articles = kind.search(query_row, pool)
                candidates.update(dict.fromkeys(articles.tolist()))
                exhausted = exhausted and pool >= kind.size
                floors.append(float(scores[-1]) if len(scores) else -1.0)
            new = [a for a in candidates if a not in found]
            found.update(zip(new, self.article_scores(query, new, passage_weight, question_top_n), strict=True))
            if exhausted or (approximate and pool >= _MAX_APPROX_POOL):
                return found
            # Every article of the KB has both kinds (title + passage), so an unseen one scores <= bound.
            bound = (1.0 - passage_weight) * floors[0] + passage_weight * floors[1] if len(floors) == 2 else floors[0]
            ranked = sorted(found.values(), reverse=True)
            if len(ranked) >= wanted and ranked[wanted - 1] >= bound:
                return found
            pool *= 4
