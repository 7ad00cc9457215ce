"""Canned answers for agents, drawn from the knowledge base (data/kb/*.yml titles and answers, both languages).

Loaded once on first use (not at import) and filtered by plain substring match: agents type a few characters of
a topic; no embeddings are needed for a list of ~100 articles.
"""
from __future__ import annotations

from pathlib import Path

import yaml


class CannedAnswers:
    def __init__(self, kb_dir: Path) -> None:
        self._kb_dir = Path(kb_dir)
        self._articles: list[dict[str, object]] | None = None

    def _load(self) -> list[dict[str, object]]:
        if self._articles is None:
            articles: list[dict[str, object]] = []
            for path in sorted(self._kb_dir.glob("*.yml")):
                data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
                for article in data.get("articles") or []:
                    if not isinstance(article, dict) or not article.get("id"):
                        continue
                    articles.append({
                        "id": str(article["id"]),
                        "category": data.get("category"),
                        "title": article.get("title") or {},
                        "answer": article.get("answer") or {},
                        "haystack": " ".join(
                            [str(v) for v in (article.get("title") or {}).values()]
                            + [str(v) for v in (article.get("answer") or {}).values()]
                            + [str(q) for qs in (article.get("questions") or {}).values() for q in qs or []]
                            + [str(t) for t in article.get("tags") or []]
                        ).lower(),
                    })
            self._articles = articles
        return self._articles

    def search(self, language: str, query: str = "", limit: int = 20) -> list[dict[str, str]]:
        """Articles in the conversation's language whose title, answer, questions or tags contain the query."""
        lang = language if language in ("zh", "en") else "zh"
        needle = query.strip().lower()
        out = []
        for article in self._load():
            if needle and needle not in str(article["haystack"]):
                continue
            title, answer = article["title"], article["answer"]
            assert isinstance(title, dict) and isinstance(answer, dict)
            if lang not in answer:
                continue
            out.append({"id": str(article["id"]), "category": str(article["category"] or ""),
                        "title": str(title.get(lang) or article["id"]), "answer": str(answer[lang])})
            if len(out) >= limit:
                break
        return out
