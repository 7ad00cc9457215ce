"""Draft articles: a new knowledge article started from an inbox message that an agent answered.

One click in the inbox (``POST /api/workbench/inbox/draft-article``) makes a draft: the customer's masked question is
its first example question, the agent's masked reply its answer, both in the message's language, and a title to start
from; the other language is left to the editor. A draft lives in ``workbench_drafts``, never in the article files, so
the bot cannot serve it: it is listed with what is still missing (the rules of workbench/articles.py - both languages,
3-12 questions each, same numbers - plus "no placeholder left in the answer", "no personal placeholder anywhere") and
is finished in the article editor. Publishing runs the same rules and appends the article to its category's file
(:meth:`workbench.content.ContentStore.create`: version 1 of kind ``draft``, author and diff like any version).

Drafts have a version number like articles: a save names the version it started from and a stale one is refused (409,
with the current draft), so two editors finishing the same draft never lose an edit. Synchronous (SQLAlchemy core);
the API runs it in worker threads.
"""
from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, insert, select, update

from workbench import articles as kb
from workbench.content import ContentStore
from workbench.db import articles as heads
from workbench.db import drafts
from workbench.masking import IDENTIFIER_PLACEHOLDERS, PERSONAL_PLACEHOLDERS, mask, mask_reply
from workbench.nlu import EXAMPLE_VALUES

TITLE_CHARS = 60
_PLACEHOLDER = re.compile(r"\{[a-z_]+\}")
_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


class DraftProblem(Exception):
    """A request that cannot be done (``status`` is the HTTP status; nothing stored)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class DraftConflict(Exception):
    """The draft changed since the version the editor started from."""

    current: dict[str, Any]
    base_version: int
    yours: str  # unified diff: the current draft -> the refused edit


def _question(text: str) -> str:
    """A masked customer message as an example question: identifier placeholders become the made-up values the
    inbox's other actions use (workbench/nlu.py EXAMPLE_VALUES); personal ones stay for the editor to rewrite."""
    for entity, placeholder in IDENTIFIER_PLACEHOLDERS.items():
        text = text.replace(placeholder, EXAMPLE_VALUES[entity])
    return text


def _title(question: str, language: str) -> str:
    text = question.strip().rstrip("?？")
    if len(text) <= TITLE_CHARS:
        return text
    cut = text[:TITLE_CHARS]
    return (cut.rsplit(" ", 1)[0] if language == "en" and " " in cut else cut) + "…"


def draft_problems(article: Mapping[str, Any], others: list[Mapping[str, Any]]) -> list[str]:
    """What keeps a draft from being published: the article rules, then what a draft from a conversation may still
    hold (an agent's reply addressed to one customer, a name or number the masking left as a placeholder)."""
    found = kb.problems(article, others)
    if not _ID.match(str(article.get("id") or "")):
        found.append("id: lowercase words joined by hyphens (shipping-to-tibet)")
    for lang in kb.LANGS:
        left = sorted(set(_PLACEHOLDER.findall(article["answer"][lang])))
        if left:
            found.append(f"answer.{lang}: {', '.join(left)} is one customer's data - write the answer for everyone")
        for text in [article["title"][lang], *article["questions"][lang]]:
            for placeholder in PERSONAL_PLACEHOLDERS:
                if placeholder in text:
                    found.append(f"{lang}: rewrite {text!r} without {placeholder} (personal data never goes into an "
                                 "article)")
    return found


class DraftStore:
    def __init__(self, engine: Engine, content: ContentStore) -> None:
        self.engine = engine
        self.content = content

    # ------------------------------------------------------------------ reads

    def _articles(self) -> list[dict[str, Any]]:
        """Every current article (what a draft's questions and answers must not repeat)."""
        with self.engine.connect() as db:
            return [json.loads(c) for c in db.execute(select(heads.c.content).where(
                heads.c.removed.is_(False))).scalars()]

    def _taken(self, article_id: str) -> bool:
        with self.engine.connect() as db:
            return db.execute(select(heads.c.article_id).where(heads.c.article_id == article_id)).first() is not None

    def _out(self, row: Any, articles: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        article = json.loads(row.content)
        problems: list[str] = []
        if row.status == "draft":
            everyone = self._articles() if articles is None else articles
            problems = draft_problems(article, [a for a in everyone if a["id"] != article["id"]])
            if self._taken(article["id"]):
                problems.append(f"id: {article['id']!r} is already used by an article; choose another id")
        missing = [lang for lang in kb.LANGS if not article["answer"][lang] or not article["title"][lang]
                   or not article["questions"][lang]]
        return {"id": row.id, "article": article, "version": row.version, "status": row.status,
                "source": json.loads(row.source or "{}"), "created_by": row.created_by, "created_at": row.created_at,
                "updated_by": row.updated_by, "updated_at": row.updated_at, "problems": problems,
                "missing_languages": missing, "complete": not problems}

    def _row(self, draft_id: int) -> Any:
        with self.engine.connect() as db:
            row = db.execute(select(drafts).where(drafts.c.id == draft_id)).first()
        if row is None:
            raise DraftProblem(404, f"No draft {draft_id}.")
        return row

    def get(self, draft_id: int) -> dict[str, Any]:
        return self._out(self._row(draft_id))

    def list(self, status: str = "draft", limit: int = 200) -> list[dict[str, Any]]:
        with self.engine.connect() as db:
            rows = db.execute(select(drafts).where(drafts.c.status == status)
                              .order_by(drafts.c.updated_at.desc()).limit(limit)).all()
        out = []
        articles = self._articles() if rows else []
        for row in rows:
            full = self._out(row, articles)
            out.append({k: full[k] for k in ("id", "version", "status", "created_by", "created_at", "updated_by",
                                             "updated_at", "missing_languages", "complete")}
                       | {"article_id": full["article"]["id"], "category": full["article"]["category"],
                          "title": full["article"]["title"], "problem_count": len(full["problems"])})
        return out

    # ------------------------------------------------------------------ writes

    def from_item(self, items: list[dict[str, Any]], category: str, reply_index: int | None, author: str
                  ) -> dict[str, Any]:
        """A draft from the first of ``items`` (inbox rows) that holds an agent's reply. Raises DraftProblem (422: no
        agent reply, an unknown category, a reply index out of range)."""
        if category not in self.content.categories():
            raise DraftProblem(422, f"Unknown category {category!r}: a draft is published into an existing article "
                                    "file.")
        lead = next((r for r in items if json.loads(r["detail"] or "{}").get("agent_replies")), None)
        if lead is None:
            raise DraftProblem(422, "None of these messages has an agent's reply to draft an answer from (only "
                                    "conversations an agent answered: corrections and handoffs).")
        replies = json.loads(lead["detail"])["agent_replies"]
        if reply_index is None:  # the fullest reply: greetings and "one moment" are short
            reply_index = max(range(len(replies)), key=lambda i: len(replies[i]["text"]))
        if not 0 <= reply_index < len(replies):
            raise DraftProblem(422, f"reply_index: this message has {len(replies)} agent replies.")
        language = lead["language"] if lead["language"] in kb.LANGS else "en"
        question = _question(mask(lead["text"]))  # masked when stored; masked again in case the rules grew
        answer = mask_reply(replies[reply_index]["text"])
        empty = {lang: "" for lang in kb.LANGS}
        article = {"id": f"{category}-draft-{uuid.uuid4().hex[:6]}", "category": category,
                   "title": {**empty, language: _title(question, language)}, "answer": {**empty, language: answer},
                   "questions": {lang: ([question] if lang == language else []) for lang in kb.LANGS},
                   "tags": [], "last_reviewed": None}
        source = {"item_ids": [r["id"] for r in items], "lead_item": lead["id"], "language": language,
                  "reply_index": reply_index, "agent_id": replies[reply_index].get("agent_id", ""),
                  "conversation_id": lead["conversation_id"]}
        now = time.time()
        with self.engine.begin() as db:
            draft_id = db.execute(insert(drafts).values(
                article_id=article["id"], category=category, version=1, content=json.dumps(article, ensure_ascii=False),
                status="draft", source=json.dumps(source), created_by=author, created_at=now, updated_by=author,
                updated_at=now)).inserted_primary_key[0]
        return self.get(int(draft_id))

    def _check(self, db: Any, draft_id: int, base_version: int, mine: Mapping[str, Any] | None) -> Any:
        row = db.execute(select(drafts).where(drafts.c.id == draft_id)).first()
        if row is None:
            raise DraftProblem(404, f"No draft {draft_id}.")
        if row.status != "draft":
            raise DraftProblem(409, f"Draft {draft_id} is being published." if row.status == "publishing"
                               else f"Draft {draft_id} was already {row.status}.")
        if row.version != base_version:
            current = json.loads(row.content)
            raise DraftConflict(self._out(row), base_version,
                                kb.diff(current, mine, f"draft {draft_id} v{row.version}", "your edit") if mine
                                else "")
        return row

    def _lost(self, db: Any, draft_id: int, base_version: int, mine: Mapping[str, Any] | None) -> None:
        """A conditional update changed nothing: someone else's write came first. Raises what the caller meets now
        (409 published / discarded / being published, or DraftConflict with the current draft)."""
        self._check(db, draft_id, base_version, mine)
        raise DraftProblem(409, f"Draft {draft_id} changed meanwhile; reload it.")

    def save(self, draft_id: int, base_version: int, changes: Mapping[str, Any], author: str) -> dict[str, Any]:
        """The editable fields (and the id and category it will be published under) of a draft that is still at
        ``base_version``. An incomplete draft may be saved: its problems are listed, not refused. Raises
        DraftProblem (404, 409 when published or discarded, 422 unknown category), DraftConflict."""
        category = changes.get("category")
        if category is not None and category not in self.content.categories():
            raise DraftProblem(422, f"Unknown category {category!r}.")
        with self.engine.begin() as db:
            row = db.execute(select(drafts).where(drafts.c.id == draft_id)).first()
            current = json.loads(row.content) if row else {}
            new = kb.edited(current, changes) if row else {}
            if row is not None:
                new["id"] = str(changes.get("article_id") or current["id"]).strip()
                new["category"] = category or current["category"]
            self._check(db, draft_id, base_version, new)
            if new != current and not db.execute(update(drafts).where(
                    drafts.c.id == draft_id, drafts.c.version == base_version, drafts.c.status == "draft").values(
                    version=base_version + 1, content=json.dumps(new, ensure_ascii=False), article_id=new["id"],
                    category=new["category"], updated_by=author, updated_at=time.time())).rowcount:
                self._lost(db, draft_id, base_version, new)
        return self.get(draft_id)

    def publish(self, draft_id: int, base_version: int, author: str, role: str) -> dict[str, Any]:
        """The draft, complete, as a new article (version 1, kind ``draft``, its file written); the draft is marked
        published. Raises DraftProblem, DraftConflict, articles.ArticleProblems (what is still missing; nothing
        published), KBContentError."""
        with self.engine.begin() as db:
            row = self._check(db, draft_id, base_version, None)
            article = json.loads(row.content)
        found = draft_problems(article, [a for a in self._articles() if a["id"] != article["id"]])
        if found:
            raise kb.ArticleProblems(found)
        with self.engine.begin() as db:  # claim it first: two publishes of one draft make one article
            if not db.execute(update(drafts).where(drafts.c.id == draft_id, drafts.c.version == base_version,
                                                   drafts.c.status == "draft")
                              .values(status="publishing", updated_by=author, updated_at=time.time())).rowcount:
                self._lost(db, draft_id, base_version, None)
        try:
            head = self.content.create(article, author, role, kind="draft")
        except BaseException:
            with self.engine.begin() as db:
                db.execute(update(drafts).where(drafts.c.id == draft_id).values(status="draft"))
            raise
        with self.engine.begin() as db:
            db.execute(update(drafts).where(drafts.c.id == draft_id).values(
                status="published", version=base_version + 1, updated_by=author, updated_at=time.time()))
        return {"draft": self.get(draft_id), "article": head}

    def discard(self, draft_id: int, base_version: int, author: str) -> dict[str, Any]:
        with self.engine.begin() as db:
            self._check(db, draft_id, base_version, None)
            if not db.execute(update(drafts).where(drafts.c.id == draft_id, drafts.c.version == base_version,
                                                   drafts.c.status == "draft")
                              .values(status="discarded", version=base_version + 1, updated_by=author,
                                      updated_at=time.time())).rowcount:
                self._lost(db, draft_id, base_version, None)
        return self.get(draft_id)
