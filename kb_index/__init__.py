"""Knowledge-base retrieval: bilingual (zh/en) FAQ articles -> dense (+ optional BM25) search.

Entry points:
    * ``python -m kb_index provision-model | build | search | evaluate | bench``
    * :class:`kb_index.retriever.Retriever` for the action server (``Retriever.from_settings()``).

Nothing is loaded at import time; models and indexes are opened by factories at start-up.
"""

from kb_index.errors import KBContentError, KBError, KBUnavailable, ModelProvisionError
from kb_index.schema import ArticleText, Confidence, Hit

__all__ = [
    "ArticleText",
    "Confidence",
    "Hit",
    "KBContentError",
    "KBError",
    "KBUnavailable",
    "ModelProvisionError",
]
