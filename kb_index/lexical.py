"""Lexical BM25 scoring of articles (bm25s), normalised to [0, 1) so it can be fused with cosine.

Raw BM25 grows with the number and rarity of matched words and has no fixed scale, so a threshold
on a fused score would drift with every KB edit. Each article's score is therefore divided by the
best score any text could reach for this question: ``sum(idf)`` over the question's words (the
Lucene variant's term-frequency part tends to 1), counting words absent from the KB at the largest
idf. The result reads as "how much of the question's information this article matches", whatever
the KB size.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kb_index.schema import LANGS, Article
from kb_index.text import lexical_tokens

logger = logging.getLogger(__name__)

K1 = 1.5
B = 0.75


def article_text(article: Article) -> str:
    """Everything a customer might echo: titles, example questions, answers and tags, both languages."""
    parts: list[str] = []
    for lang in LANGS:
        parts.append(article.title.get(lang))
        parts.extend(article.questions.get(lang))
        parts.append(article.answer.get(lang))
    parts.extend(article.tags)
    return "\n".join(parts)


class LexicalIndex:
    """BM25 over one document per article."""

    def __init__(self, retriever: object, n_docs: int) -> None:
        import bm25s

        if not isinstance(retriever, bm25s.BM25):
            raise TypeError("retriever must be a bm25s.BM25")
        self._bm25 = retriever
        self.n_docs = n_docs
        indptr = np.asarray(retriever.scores["indptr"])
        doc_freq = np.diff(indptr).astype(np.float64)
        # Lucene idf, as bm25s' default "lucene" method uses.
        self._idf = np.log1p((n_docs - doc_freq + 0.5) / (doc_freq + 0.5))
        self._max_idf = float(np.log1p((n_docs + 0.5) / 0.5))

    @classmethod
    def build(cls, docs: Sequence[str]) -> LexicalIndex:
        """Index ``docs`` (one per article, in article order)."""
        return cls.from_tokens([lexical_tokens(doc) for doc in docs])

    @classmethod
    def from_tokens(cls, token_lists: Sequence[list[str]]) -> LexicalIndex:
        """Index documents already split by :func:`lexical_tokens`."""
        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)
        retriever = bm25s.BM25(k1=K1, b=B)
        # bm25s cannot index an empty document; "" never matches a question token.
        retriever.index([tokens or [""] for tokens in token_lists], show_progress=False)
        return cls(retriever, len(token_lists))

    @classmethod
    def for_articles(cls, articles: Sequence[Article]) -> LexicalIndex:
        """Index the text of ``articles``."""
        return cls.build([article_text(a) for a in articles])

    def save(self, directory: Path) -> None:
        """Write the index as plain numpy/JSON files (no pickles)."""
        directory.mkdir(parents=True, exist_ok=True)
        self._bm25.save(str(directory))

    @classmethod
    def load(cls, directory: Path, n_docs: int) -> LexicalIndex:
        """Read an index written by :meth:`save`."""
        import bm25s

        os.environ.setdefault("DISABLE_TQDM", "1")
        retriever = bm25s.BM25.load(str(directory), load_corpus=False)
        return cls(retriever, n_docs)

    def scores(self, question: str) -> np.ndarray:
        """Normalised BM25 score of every article for ``question`` (zeros when nothing matches)."""
        tokens = lexical_tokens(question)
        result = np.zeros(self.n_docs, dtype=np.float32)
        if not tokens:
            return result
        vocab = self._bm25.vocab_dict
        known = [vocab[t] for t in tokens if t in vocab and t != ""]
        unknown = sum(1 for t in tokens if t not in vocab)
        ceiling = float(self._idf[known].sum()) + unknown * self._max_idf
        if not known or ceiling <= 0:
            return result
        raw = np.asarray(self._bm25.get_scores_from_ids(known), dtype=np.float64)
        return (raw / ceiling).astype(np.float32)
