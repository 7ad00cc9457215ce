"""Knowledge articles as the workbench handles them: read from and written to ``data/kb/*.yml`` in the files' own
layout, checked with the rules of docs/KB_EDITING.md, compared as readable unified diffs.

An article is a plain JSON-able dict (what the database stores and the API sends)::

    {"id", "category", "title": {"zh", "en"}, "answer": {"zh", "en"}, "questions": {"zh": [...], "en": [...]},
     "tags": [...] or None (no ``tags:`` line), "last_reviewed": "YYYY-MM-DD" or None}

``render_file`` writes the layout the files are written in (leading comment lines kept, block lists for questions,
inline tags, a blank line between articles, a value quoted only when YAML would read it differently), so a file
read and written back is byte for byte the same (tests/workbench/test_articles.py checks every file of data/kb).
"""
from __future__ import annotations

import datetime as dt
import difflib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from kb_index.content import kb_files
from kb_index.errors import KBContentError
from kb_index.schema import Article

LANGS = ("zh", "en")
MIN_QUESTIONS, MAX_QUESTIONS = 3, 12
MAX_SENTENCES = 4
MAX_TEXT_CHARS = 2000
KEBAB = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
CJK = re.compile(r"[\u4e00-\u9fff]")
NUMBER = re.compile(r"\d+")
ZH_SENTENCE_END = re.compile(r"[。！？!?]")
EN_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")
EDITABLE = ("title", "answer", "questions", "tags", "last_reviewed")
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: same types, ~10x faster


def _load(text: str) -> Any:
    return yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader (C or Python)


class ArticleProblems(ValueError):
    """An edit that breaks the rules; ``problems`` lists every one, in the editor's words."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def to_dict(raw: Mapping[str, Any], category: str) -> dict[str, Any]:
    """The article dict of one YAML article mapping (validated by kb_index's schema first)."""
    Article.model_validate({**raw, "category": category})  # raises pydantic.ValidationError
    reviewed = raw.get("last_reviewed")
    return {
        "id": str(raw["id"]),
        "category": category,
        "title": {lang: str(raw["title"][lang]) for lang in LANGS},
        "answer": {lang: str(raw["answer"][lang]) for lang in LANGS},
        "questions": {lang: [str(q) for q in ((raw.get("questions") or {}).get(lang) or [])] for lang in LANGS},
        "tags": [str(t) for t in raw["tags"]] if raw.get("tags") is not None else None,
        "last_reviewed": reviewed.isoformat() if isinstance(reviewed, dt.date) else reviewed,
    }


def read_file(path: Path) -> tuple[list[str], str, list[dict[str, Any]]]:
    """(leading comment lines, category, articles in file order) of one article file.

    Raises:
        KBContentError: not YAML, not the article layout, or an article that fails the schema.
    """
    text = path.read_text(encoding="utf-8")
    header = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    try:
        doc = _load(text)
    except yaml.YAMLError as exc:
        raise KBContentError(f"{path.name}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("articles"), list):
        raise KBContentError(f"{path.name}: expected a mapping with 'category' and an 'articles' list")
    category = str(doc.get("category") or path.stem)
    articles = []
    for position, raw in enumerate(doc["articles"]):
        if not isinstance(raw, dict):
            raise KBContentError(f"{path.name}: article #{position + 1} is not a mapping")
        try:
            articles.append(to_dict(raw, category))
        except Exception as exc:  # noqa: BLE001 - pydantic's message names the field
            raise KBContentError(f"{path.name}: article {raw.get('id', position + 1)}: {exc}") from exc
    return header, category, articles


def read_dir(kb_dir: Path) -> dict[str, tuple[Path, list[str], list[dict[str, Any]]]]:
    """Every article file of ``kb_dir``: category -> (path, header, articles)."""
    if not kb_dir.is_dir():
        raise KBContentError(f"KB data directory {kb_dir} does not exist")
    out = {}
    for path in kb_files(kb_dir):
        header, category, articles = read_file(path)
        out[category] = (path, header, articles)
    return out


def _scalar(value: str, flow: bool = False) -> str:
    """``value`` as the files write it: plain when YAML reads the plain text back as the same string, else
    double-quoted (JSON's escaping is valid YAML)."""
    if value and "\n" not in value and value == value.strip():
        try:
            back = _load(f"[{value}]" if flow else f"k: {value}")
        except yaml.YAMLError:
            back = None
        if back == ([value] if flow else {"k": value}):
            return value
    return json.dumps(value, ensure_ascii=False)


def render_article(article: Mapping[str, Any]) -> list[str]:
    lines = [f"  - id: {_scalar(article['id'])}"]
    for key in ("title", "answer"):
        lines.append(f"    {key}:")
        lines += [f"      {lang}: {_scalar(article[key][lang])}" for lang in LANGS]
    lines.append("    questions:")
    for lang in LANGS:
        items = article["questions"][lang]
        if items:
            lines.append(f"      {lang}:")
            lines += [f"        - {_scalar(q)}" for q in items]
        else:
            lines.append(f"      {lang}: []")
    if article.get("tags") is not None:
        lines.append("    tags: [" + ", ".join(_scalar(t, flow=True) for t in article["tags"]) + "]")
    if article.get("last_reviewed"):
        lines.append(f"    last_reviewed: {article['last_reviewed']}")
    return lines


def render_file(header: Sequence[str], category: str, articles: Iterable[Mapping[str, Any]]) -> str:
    lines = [*header, f"category: {_scalar(category)}", "articles:"]
    for i, article in enumerate(articles):
        if i:
            lines.append("")
        lines += render_article(article)
    return "\n".join(lines) + "\n"


def readable(article: Mapping[str, Any] | None) -> list[str]:
    """The article as the lines a diff shows (its YAML block)."""
    return [line + "\n" for line in render_article(article)] if article else []


def diff(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None, before_label: str,
         after_label: str) -> str:
    """Unified diff of two states of an article ("" when equal)."""
    return "".join(difflib.unified_diff(readable(before), readable(after), before_label, after_label, n=2))


def _numbers(text: str) -> set[int]:
    return {int(n) for n in NUMBER.findall(text)}


def _norm(text: str) -> str:
    return text.strip().lower().rstrip("?？")


def edited(current: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """``current`` with the editable fields of ``changes`` applied; texts trimmed, empty questions dropped."""
    out = json.loads(json.dumps(current))
    for key in EDITABLE:
        if key in changes:
            out[key] = changes[key]
    for key in ("title", "answer"):
        out[key] = {lang: str((out.get(key) or {}).get(lang) or "").strip() for lang in LANGS}
    questions = out.get("questions") or {}
    out["questions"] = {lang: [str(q).strip() for q in (questions.get(lang) or []) if str(q).strip()]
                        for lang in LANGS}
    if out.get("tags") is not None:
        out["tags"] = [str(t).strip() for t in out["tags"] if str(t).strip()]
    out["last_reviewed"] = str(out["last_reviewed"]).strip() if out.get("last_reviewed") else None
    return out


def problems(article: Mapping[str, Any], others: Iterable[Mapping[str, Any]]) -> list[str]:
    """Everything wrong with ``article`` by the rules of docs/KB_EDITING.md (the ones tests/kb_index checks), given
    the other articles of the knowledge base; [] when it may be saved."""
    found: list[str] = []
    for key in ("title", "answer"):
        for lang in LANGS:
            text = article[key][lang]
            if not text:
                found.append(f"{key}.{lang}: missing - every {key} is needed in both languages")
            elif len(text) > MAX_TEXT_CHARS:
                found.append(f"{key}.{lang}: longer than {MAX_TEXT_CHARS} characters")
        if article[key]["zh"] and not CJK.search(article[key]["zh"]):
            found.append(f"{key}.zh: contains no Chinese")
        if CJK.search(article[key]["en"]):
            found.append(f"{key}.en: contains Chinese")
    zh_answer, en_answer = article["answer"]["zh"], article["answer"]["en"]
    if zh_answer and en_answer:
        zh_n, en_n = len(ZH_SENTENCE_END.findall(zh_answer)), len(EN_SENTENCE_END.findall(en_answer))
        for lang, count in (("zh", zh_n), ("en", en_n)):
            if not 1 <= count <= MAX_SENTENCES:
                found.append(f"answer.{lang}: {count} sentences (1-{MAX_SENTENCES}, each ending with a full stop)")
        if _numbers(zh_answer) != _numbers(en_answer):
            found.append("answer: the Chinese and English answers state different numbers "
                         f"(zh {sorted(_numbers(zh_answer))}, en {sorted(_numbers(en_answer))})")
    for lang in LANGS:
        items = article["questions"][lang]
        if not MIN_QUESTIONS <= len(items) <= MAX_QUESTIONS:
            found.append(f"questions.{lang}: {len(items)} questions ({MIN_QUESTIONS}-{MAX_QUESTIONS} per language)")
        if len({_norm(q) for q in items}) != len(items):
            found.append(f"questions.{lang}: a question is listed twice")
        for q in items:
            if len(q) > MAX_TEXT_CHARS:
                found.append(f"questions.{lang}: a question is longer than {MAX_TEXT_CHARS} characters")
            elif (lang == "zh") != bool(CJK.search(q)):
                found.append(f"questions.{lang}: {q!r} is not in {'Chinese' if lang == 'zh' else 'English'}")
    tags = article.get("tags") or []
    bad = [t for t in tags if not KEBAB.match(t)]
    if bad:
        found.append(f"tags: {', '.join(bad)} - lowercase words joined by hyphens (sale-618, not 618 or Sale)")
    if len(set(tags)) != len(tags):
        found.append("tags: a tag is listed twice")
    reviewed = article.get("last_reviewed")
    if reviewed:
        try:
            dt.date.fromisoformat(reviewed)
        except ValueError:
            found.append(f"last_reviewed: {reviewed!r} is not a date (YYYY-MM-DD)")
    mine = {_norm(q) for lang in LANGS for q in article["questions"][lang]} | \
        {_norm(article["answer"][lang]) for lang in LANGS if article["answer"][lang]}
    for other in others:
        if other["id"] == article["id"]:
            continue
        theirs = {_norm(q) for lang in LANGS for q in other["questions"][lang]} | \
            {_norm(other["answer"][lang]) for lang in LANGS}
        for text in sorted(mine & theirs):
            found.append(f"{text!r} is already in article {other['id']} (a question or answer may belong to one "
                         "article only)")
    if not found:
        try:
            Article.model_validate({**{k: v for k, v in article.items() if k != "category"},
                                    "tags": article.get("tags") or [], "category": article["category"]})
        except Exception as exc:  # noqa: BLE001 - the schema's own words
            found.append(str(exc))
    return found
