"""Index building: files written, fingerprint skip/rebuild, exact cosine index, content errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from kb_fixtures import FIXTURE_ARTICLES, write_kb

from kb_index.builder import (
    BM25_DIR,
    META_FILE,
    article_units,
    build_index,
    encode_units,
)
from kb_index.content import load_articles
from kb_index.dense import PASSAGES_FILE, QUESTIONS_FILE
from kb_index.errors import KBContentError
from kb_index.layout import BUILDS_DIR, FINGERPRINT_FILE


def test_build_writes_vectors_metadata_bm25_and_fingerprint(settings: Any, built: Any) -> None:
    index_dir: Path = settings.index_path
    fingerprint = json.loads((index_dir / FINGERPRINT_FILE).read_text())
    build_dir = index_dir / BUILDS_DIR / fingerprint["build_id"]
    assert built.built is True
    assert {p.name for p in build_dir.iterdir()} == {QUESTIONS_FILE, PASSAGES_FILE, META_FILE, BM25_DIR}
    meta = json.loads((build_dir / META_FILE).read_text())
    assert [a["id"] for a in meta["articles"]] == [
        "returns-window",
        "returns-shipping-fee",
        "refund-bank-card",
        "invoice-request",
        "service-hours",
    ]
    # 5 articles x 2 languages x (title + 2 questions + 1 passage)
    assert fingerprint["articles"] == 5 and fingerprint["vectors"] == 40
    assert meta["question_offsets"] == list(range(0, 31, 6))
    assert meta["passage_offsets"] == list(range(0, 11, 2))
    assert fingerprint["model"].startswith("dir:multilingual-e5-small:")
    assert (index_dir / ".gitignore").read_text().strip() == "*"


def test_indexes_hold_unit_vectors_and_equal_exact_cosine_search(built: Any, encoder: Any) -> None:
    import faiss

    index = faiss.read_index(str(built.build_dir / QUESTIONS_FILE))
    stored = index.reconstruct_n(0, index.ntotal)
    np.testing.assert_allclose(np.linalg.norm(stored, axis=1), 1.0, atol=1e-5)
    query = encoder.encode_queries(["退货运费谁出"])
    scores, rows = index.search(query, 10)
    exact = stored @ query[0]
    assert list(rows[0]) == list(np.argsort(-exact)[:10])
    np.testing.assert_allclose(scores[0], np.sort(exact)[::-1][:10], atol=1e-5)


def test_stored_vectors_are_the_model_embeddings_of_the_units(settings: Any, built: Any, encoder: Any) -> None:
    import faiss

    units = article_units(load_articles(settings.data_path))
    expected = encode_units(encoder, units)
    is_passage = np.array([u.kind == "passage" for u in units])
    questions = faiss.read_index(str(built.build_dir / QUESTIONS_FILE))
    passages = faiss.read_index(str(built.build_dir / PASSAGES_FILE))
    np.testing.assert_allclose(questions.reconstruct_n(0, questions.ntotal), expected[~is_passage], atol=1e-4)
    np.testing.assert_allclose(passages.reconstruct_n(0, passages.ntotal), expected[is_passage], atol=1e-4)
    assert [u.kind for u in units[:8]] == ["title", "question", "question", "passage"] * 2


def test_unchanged_kb_is_not_rebuilt(settings: Any, built: Any, encoder: Any) -> None:
    again = build_index(settings, encoder=encoder)
    assert again.built is False
    assert again.fingerprint["build_id"] == built.fingerprint["build_id"]


def test_comment_only_edit_does_not_rebuild_but_content_edit_does(
    settings: Any, built: Any, encoder: Any, kb_dir: Path
) -> None:
    path = kb_dir / "service.yml"
    path.write_text("# reviewed again\n" + path.read_text(encoding="utf-8"), encoding="utf-8")
    assert build_index(settings, encoder=encoder).built is False

    changed = {name: [dict(a) for a in arts] for name, arts in FIXTURE_ARTICLES.items()}
    changed["service.yml"][2]["answer"] = {"zh": "人工客服每天 8:00-22:00 在线。", "en": "Agents work 08:00-22:00."}
    write_kb(kb_dir, changed)
    rebuilt = build_index(settings, encoder=encoder)
    assert rebuilt.built is True
    assert rebuilt.fingerprint["content_hash"] != built.fingerprint["content_hash"]
    current = json.loads((settings.index_path / FINGERPRINT_FILE).read_text())
    assert current["build_id"] == rebuilt.fingerprint["build_id"]
    # The previous build stays for processes still reading it.
    assert (settings.index_path / BUILDS_DIR / built.fingerprint["build_id"]).is_dir()


def test_force_rebuilds_even_when_up_to_date(settings: Any, built: Any, encoder: Any) -> None:
    forced = build_index(settings, encoder=encoder, force=True)
    assert forced.built is True
    assert forced.fingerprint["build_id"] != built.fingerprint["build_id"]


def test_old_builds_are_pruned_to_the_last_two(settings: Any, built: Any, encoder: Any) -> None:
    for _ in range(3):
        build_index(settings, encoder=encoder, force=True)
    builds = [p for p in (settings.index_path / BUILDS_DIR).iterdir() if p.is_dir()]
    assert len(builds) == 2


def test_duplicate_article_ids_are_rejected(tmp_path: Path) -> None:
    article = FIXTURE_ARTICLES["returns.yml"][0]
    write_kb(tmp_path / "kb", {"a.yml": [article], "b.yml": [article]})
    with pytest.raises(KBContentError, match="duplicate article id 'returns-window'"):
        load_articles(tmp_path / "kb")


def test_article_missing_a_language_is_rejected_with_file_and_id(tmp_path: Path) -> None:
    article = dict(FIXTURE_ARTICLES["returns.yml"][0], answer={"zh": "只有中文"})
    write_kb(tmp_path / "kb", {"a.yml": [article]})
    with pytest.raises(KBContentError, match=r"a\.yml: article returns-window"):
        load_articles(tmp_path / "kb")


def test_invalid_yaml_is_reported_as_content_error(tmp_path: Path) -> None:
    (tmp_path / "kb").mkdir()
    (tmp_path / "kb" / "broken.yml").write_text("articles: [\n  - id: x\n", encoding="utf-8")
    with pytest.raises(KBContentError, match="broken.yml: not valid YAML"):
        load_articles(tmp_path / "kb")


def test_empty_kb_cannot_be_built(settings: Any, encoder: Any, kb_dir: Path) -> None:
    for path in kb_dir.iterdir():
        path.unlink()
    with pytest.raises(KBContentError, match="no articles"):
        build_index(settings, encoder=encoder)
