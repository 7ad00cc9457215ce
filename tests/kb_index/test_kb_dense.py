"""Article scoring arithmetic of kb_index.dense (question top-n mean, exact top-k bound)."""

from __future__ import annotations

import numpy as np
import pytest

from kb_index.dense import DenseIndex, KindIndex, flat_ip_index, vector_index


def _unit(*values: float) -> np.ndarray:
    vector = np.asarray(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def _dense() -> DenseIndex:
    # Article 0: one question very close to the query, one far. Article 1: two fairly close ones.
    questions = np.stack([_unit(1, 0.1, 0), _unit(0, 0, 1), _unit(1, 0.6, 0), _unit(1, 0.7, 0)])
    passages = np.stack([_unit(1, 1, 1), _unit(1, 1, 1)])
    return DenseIndex(
        questions=KindIndex.create(flat_ip_index(questions, 3), np.array([0, 2, 4])),
        passages=KindIndex.create(flat_ip_index(passages, 3), np.array([0, 1, 2])),
    )


def test_best_is_the_mean_of_the_top_n_cosines() -> None:
    dense = _dense()
    query = _unit(1, 0, 0)
    cosines_0 = [float(_unit(1, 0.1, 0) @ query), 0.0]
    cosines_1 = [float(_unit(1, 0.6, 0) @ query), float(_unit(1, 0.7, 0) @ query)]
    assert dense.questions.best(query, 0) == pytest.approx(max(cosines_0), abs=1e-6)
    assert dense.questions.best(query, 0, top_n=2) == pytest.approx(np.mean(cosines_0), abs=1e-6)
    assert dense.questions.best(query, 1, top_n=2) == pytest.approx(np.mean(cosines_1), abs=1e-6)
    # More than the article has: the mean of all of them.
    assert dense.questions.best(query, 1, top_n=5) == pytest.approx(np.mean(cosines_1), abs=1e-6)


def test_top_n_changes_which_article_wins() -> None:
    dense = _dense()
    query = _unit(1, 0, 0)
    by_max = dense.top_articles(query, 1, passage_weight=0.0, question_top_n=1)
    by_top2 = dense.top_articles(query, 1, passage_weight=0.0, question_top_n=2)
    assert max(by_max, key=by_max.__getitem__) == 0
    assert max(by_top2, key=by_top2.__getitem__) == 1


def test_top_articles_scores_match_article_scores() -> None:
    dense = _dense()
    query = _unit(0.9, 0.3, 0.2)
    found = dense.top_articles(query, 2, passage_weight=0.35, question_top_n=2)
    assert sorted(found) == [0, 1]
    expected = dense.article_scores(query, [0, 1], 0.35, 2)
    assert [found[0], found[1]] == pytest.approx(expected)


def _clustered(n_articles: int, per_article: int, dim: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors in ``n_articles`` tight clusters (like an article's phrasings) and their offsets."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_articles, dim)).astype(np.float32)
    vectors = np.repeat(centres, per_article, axis=0) + 0.3 * rng.standard_normal(
        (n_articles * per_article, dim)
    ).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors, np.arange(0, n_articles * per_article + 1, per_article)


def test_best_many_equals_best_per_article_including_empty_articles() -> None:
    vectors, _ = _clustered(6, 3)
    offsets = np.array([0, 3, 3, 7, 9, 9, 18])  # articles 1 and 4 have no vectors
    kind = KindIndex.create(flat_ip_index(vectors, 32), offsets)
    query = vectors[4]
    for top_n in (1, 2, 5):
        many = kind.best_many(query, np.arange(6), top_n)
        for article in range(6):
            single = kind.best(query, article, top_n)
            if single is None:
                assert np.isnan(many[article])
            else:
                assert many[article] == pytest.approx(single, abs=1e-6)
    assert kind.best(query, 1) is None


def test_large_kinds_use_hnsw_and_rank_like_exact_search() -> None:
    questions, q_offsets = _clustered(400, 6)
    passages, p_offsets = _clustered(400, 1, seed=1)
    exact = DenseIndex(
        KindIndex.create(vector_index(questions, 32, ann_min_vectors=10_000), q_offsets),
        KindIndex.create(vector_index(passages, 32, ann_min_vectors=10_000), p_offsets),
    )
    approx = DenseIndex(
        KindIndex.create(vector_index(questions, 32, ann_min_vectors=1_000), q_offsets),
        KindIndex.create(vector_index(passages, 32, ann_min_vectors=1_000), p_offsets),
    )
    assert not exact.questions.approximate and approx.questions.approximate  # 2400 vectors > 1000
    assert not approx.passages.approximate  # 400 vectors: still exact
    # The stored vectors are the index's own (zero-copy), so exact article scores need no reconstruct.
    np.testing.assert_allclose(approx.questions.vectors, questions)
    rng = np.random.default_rng(7)
    same = 0
    for article in rng.choice(400, 50, replace=False):
        query = questions[article * 6] + 0.1 * rng.standard_normal(32).astype(np.float32)
        query /= np.linalg.norm(query)
        want = exact.top_articles(query, 3, passage_weight=0.35, question_top_n=2)
        got = approx.top_articles(query, 3, passage_weight=0.35, question_top_n=2)
        top = sorted(want, key=lambda a: -want[a])[:3]
        assert sorted(got, key=lambda a: -got[a])[0] == top[0]
        same += sorted(got, key=lambda a: -got[a])[:3] == top
        for a in set(got) & set(want):
            assert got[a] == pytest.approx(want[a], abs=1e-5)  # scores are exact either way
    assert same >= 48
