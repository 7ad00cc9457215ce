"""Dense article scoring over two FAISS indexes: titles/questions and answer passages.

An article's dense score blends its title/question match ``q`` with its best passage match ``s``
(``(1 - p) * q + p * s``), where ``q`` is the mean of the article's ``n`` best title/question
cosines (``KB_QUESTION_TOP_N``): with ~10 phrasings per article, two agreeing phrasings are
stronger evidence than one lucky near-duplicate (measured: +1-3 points top-1 on the dev set).
Queries match questions (symmetric, ``query`` prompt on both sides) with systematically higher
cosines than passages, so each kind has its own exact inner-product index (``IndexFlatIP`` on unit
vectors = cosine) and the top-k search bounds each kind separately.
"""

from __future__ import annotations

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


def flat_ip_index(vectors: np.ndarray, dimension: int) -> Any:
    """An exact inner-product FAISS index holding ``vectors``."""
    import faiss

    index = faiss.IndexFlatIP(dimension)
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


@dataclass(frozen=True)
class KindIndex:
    """The vectors of one unit kind; rows grouped by article (article i owns offsets[i]:offsets[i+1])."""

    index: Any  # faiss.IndexFlatIP
    offsets: np.ndarray
    row_article: np.ndarray

    @classmethod
    def create(cls, index: Any, offsets: np.ndarray) -> KindIndex:
        """Wrap ``index``; ``offsets`` has one entry per article plus one."""
        offsets = np.asarray(offsets, dtype=np.int64)
        row_article = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
        return cls(index, offsets, row_article)

    @property
    def size(self) -> int:
        """Number of vectors."""
        return int(self.index.ntotal)

    def best(self, query: np.ndarray, article: int, top_n: int = 1) -> float | None:
        """Mean of the ``top_n`` best cosines of ``article``'s vectors (all of them if it has fewer),
        None when it has none of this kind."""
        start, end = int(self.offsets[article]), int(self.offsets[article + 1])
        if end <= start:
            return None
        cosines = self.index.reconstruct_n(start, end - start) @ query
        if top_n <= 1 or len(cosines) == 1:
            return float(np.max(cosines))
        n = min(top_n, len(cosines))
        return float(np.mean(np.partition(cosines, len(cosines) - n)[-n:]))

    def search(self, query_row: np.ndarray, pool: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``pool`` rows: (scores, article of each row)."""
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
        scores: list[float] = []
        for article in articles:
            best_q = self.questions.best(query, article, question_top_n) if passage_weight < 1.0 else None
            best_p = self.passages.best(query, article) if passage_weight > 0.0 else None
            if best_q is not None and best_p is not None:
                scores.append((1.0 - passage_weight) * best_q + passage_weight * best_p)
            elif best_q is not None or best_p is not None:
                scores.append(best_q if best_q is not None else float(best_p))  # type: ignore[arg-type]
            else:
                scores.append(0.0)
        return scores

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
        while True:
            candidates: dict[int, None] = {}
            floors: list[float] = []  # last (lowest) score seen in each searched index
            exhausted = True
            for kind in [k for use, k in ((use_q, self.questions), (use_p, self.passages)) if use]:
                scores, articles = kind.search(query_row, pool)
                candidates.update(dict.fromkeys(int(a) for a in articles))
                exhausted = exhausted and pool >= kind.size
                floors.append(float(scores[-1]) if len(scores) else -1.0)
            if not floors:
                return {}
            ids = list(candidates)
            found = dict(zip(ids, self.article_scores(query, ids, passage_weight, question_top_n), strict=True))
            if exhausted:
                return found
            # Every article of the KB has both kinds (title + passage), so an unseen one scores <= bound.
            bound = (1.0 - passage_weight) * floors[0] + passage_weight * floors[1] if len(floors) == 2 else floors[0]
            ranked = sorted(found.values(), reverse=True)
            if len(ranked) >= wanted and ranked[wanted - 1] >= bound:
                return found
            pool *= 4
