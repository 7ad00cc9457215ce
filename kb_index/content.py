"""Reading the article files (``data/kb/*.yml``) into validated :class:`Article` objects."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from kb_index.errors import KBContentError
from kb_index.schema import Article

KB_FILE_GLOBS: tuple[str, ...] = ("*.yml", "*.yaml")


def kb_files(data_dir: Path) -> list[Path]:
    """Article files of ``data_dir`` in a stable (sorted) order."""
    files: set[Path] = set()
    for pattern in KB_FILE_GLOBS:
        files.update(p for p in data_dir.glob(pattern) if p.is_file())
    return sorted(files)


def _parse_file(path: Path) -> list[Article]:
    try:
        doc: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise KBContentError(f"{path}: not valid YAML: {exc}") from exc
    if doc is None:
        return []
    if not isinstance(doc, dict) or not isinstance(doc.get("articles", []), list):
        raise KBContentError(f"{path}: expected a mapping with 'category' and an 'articles' list")
    category = str(doc.get("category") or path.stem)
    articles: list[Article] = []
    for position, raw in enumerate(doc.get("articles") or []):
        if not isinstance(raw, dict):
            raise KBContentError(f"{path}: article #{position + 1} is not a mapping")
        label = raw.get("id", f"#{position + 1}")
        try:
            articles.append(Article.model_validate({**raw, "category": category}))
        except ValidationError as exc:
            raise KBContentError(f"{path}: article {label}: {exc}") from exc
    return articles


def load_articles(data_dir: Path) -> list[Article]:
    """All articles of ``data_dir``; ids must be unique across files.

    Raises:
        KBContentError: a file is not valid YAML, an article misses a field, or an id repeats.
    """
    if not data_dir.is_dir():
        raise KBContentError(f"KB data directory {data_dir} does not exist")
    seen: dict[str, Path] = {}
    articles: list[Article] = []
    for path in kb_files(data_dir):
        for article in _parse_file(path):
            if article.id in seen:
                raise KBContentError(f"duplicate article id {article.id!r} in {path} (first in {seen[article.id]})")
            seen[article.id] = path
            articles.append(article)
    return articles


def content_hash(articles: Sequence[Article]) -> str:
    """SHA-256 of the articles' content, so comment or formatting edits do not force a rebuild."""
    digest = hashlib.sha256()
    for article in articles:
        digest.update(article.model_dump_json().encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()
