"""Article scoring arithmetic of kb_index.dense (question top-n mean, exact top-k bound)."""

from __future__ import annotations

import numpy as np
import pytest

from kb_index.dense import DenseIndex, KindIndex, flat_ip_index


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
