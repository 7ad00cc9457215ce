"""The editors' knowledge-base store: articles and their versions in SQL, the article files kept in step.

The files in ``WORKBENCH_KB_DIR`` (``data/kb``) stay the input of ``kb_index build`` and of the content tests: every
save writes the article's file back (whole file, rendered from the stored articles, parsed back and compared before
it atomically replaces the old one). Edits made to the files by hand are taken in as versions by ``files`` (when the
store first reads the files, whenever their modification times change, and right before a file is written), so a
save never overwrites a hand edit and the history shows it.

Optimistic concurrency: each article has a version number. A save or a restore names the version it was based on;
if that is no longer the current one, nothing is saved and :class:`Conflict` carries the current state and what
changed since (HTTP 409). The check and the update are one conditional UPDATE inside a transaction that first takes
the file's row in ``workbench_files`` (two writers of one file queue; the second then sees the first's version).

Everything here is synchronous (SQLAlchemy core); the API calls it in worker threads.
"""
from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from kb_index.errors import KBContentError
from workbench import articles as kb
from workbench.db import articles as heads
from workbench.db import files, versions

FILES_AUTHOR = "files"


class NotFound(LookupError):
    """No such article (or version)."""


@dataclass
class Conflict(Exception):
    """The article changed since the version the editor started from."""

    current: dict[str, Any]  # the current head (as :meth:`ContentStore.get` returns it)
    base_version: int
    theirs: str  # unified diff: the base version -> the current one (what someone else changed)
    yours: str  # unified diff: the current version -> the edit that was refused


def _dump(article: Mapping[str, Any]) -> str:
    return json.dumps(article, ensure_ascii=False, sort_keys=True)


def _head_out(row: Any) -> dict[str, Any]:
    return {"article": json.loads(row.content), "version": row.version, "updated_at": row.updated_at,
            "updated_by": row.updated_by, "category": row.category}


def _haystack(article: Mapping[str, Any]) -> str:
    texts = [article["id"], *article["title"].values(), *article["answer"].values(),
             *(q for qs in article["questions"].values() for q in qs), *(article.get("tags") or [])]
    return "\n".join(texts).lower()


class ContentStore:
    def __init__(self, engine: Engine, kb_dir: Path) -> None:
        self.engine = engine
        self.kb_dir = kb_dir
        self._seen_mtimes: dict[str, float] | None = None
        self._sync_lock = threading.Lock()

    # ------------------------------------------------------------------ files -> store

    def _mtimes(self) -> dict[str, float]:
        from kb_index.content import kb_files

        return {p.name: p.stat().st_mtime for p in kb_files(self.kb_dir)} if self.kb_dir.is_dir() else {}

    def refresh(self) -> dict[str, int]:
        """Take in the files if they changed since the last look (cheap when they did not)."""
        with self._sync_lock:
            mtimes = self._mtimes()
            if mtimes == self._seen_mtimes:
                return {}
            counts = self.sync()
            self._seen_mtimes = mtimes
            return counts

    def sync(self) -> dict[str, int]:
        """Every article file into the store: new articles are version 1 (``import``), articles whose file text
        differs from the stored one get a ``files`` version, articles gone from the files are marked removed.

        Raises:
            KBContentError: a file cannot be read (nothing of that run is stored).
        """
        found = kb.read_dir(self.kb_dir)
        counts = {"imported": 0, "changed": 0, "removed": 0}
        with self.engine.begin() as db:
            for category, (_path, _header, items) in found.items():
                self._lock_file(db, category)
                for key, n in self._take_in(db, category, items).items():
                    counts[key] += n
            gone = db.execute(select(heads.c.article_id).where(
                heads.c.removed.is_(False), heads.c.category.not_in(list(found) or [""]))).scalars().all()
            if gone:
                db.execute(update(heads).where(heads.c.article_id.in_(gone)).values(removed=True))
                counts["removed"] += len(gone)
        return counts

    def _lock_file(self, db: Connection, category: str) -> None:
        if not db.execute(update(files).where(files.c.category == category)
                          .values(writes=files.c.writes + 1)).rowcount:
            db.execute(insert(files).values(category=category, writes=1))

    def _take_in(self, db: Connection, category: str, items: list[dict[str, Any]]) -> dict[str, int]:
        counts = {"imported": 0, "changed": 0, "removed": 0}
        now = time.time()
        rows = {r.article_id: r for r in db.execute(select(heads).where(
            heads.c.article_id.in_([a["id"] for a in items] or [""])))}
        for position, article in enumerate(items):
            row = rows.get(article["id"])
            if row is None:
                db.execute(insert(heads).values(article_id=article["id"], category=category, position=position,
                                                version=1, content=_dump(article), updated_at=now,
                                                updated_by=FILES_AUTHOR, removed=False))
                self._add_version(db, article["id"], 1, None, article, FILES_AUTHOR, "", "import", now)
                counts["imported"] += 1
                continue
            values: dict[str, Any] = {"category": category, "position": position, "removed": False}
            if row.removed:
                counts["imported"] += 1
            before = json.loads(row.content)
            if before != article:
                values.update(version=row.version + 1, content=_dump(article), updated_at=now,
                              updated_by=FILES_AUTHOR)
                self._add_version(db, article["id"], row.version + 1, before, article, FILES_AUTHOR, "", "files", now)
                counts["changed"] += 1
            db.execute(update(heads).where(heads.c.article_id == article["id"]).values(**values))
        ids = [a["id"] for a in items]
        gone = db.execute(select(heads.c.article_id).where(
            heads.c.category == category, heads.c.removed.is_(False), heads.c.article_id.not_in(ids or [""]))
        ).scalars().all()
        if gone:
            db.execute(update(heads).where(heads.c.article_id.in_(gone)).values(removed=True))
            counts["removed"] += len(gone)
        return counts

    def _add_version(self, db: Connection, article_id: str, version: int, before: Mapping[str, Any] | None,
                     after: Mapping[str, Any], author: str, role: str, kind: str, now: float,
                     restored_from: int | None = None) -> None:
        label = f"{article_id} v{version - 1}" if before is not None else "/dev/null"
        db.execute(insert(versions).values(
            article_id=article_id, version=version, content=_dump(after), author=author, author_role=role,
            created_at=now, kind=kind, restored_from=restored_from,
            diff=kb.diff(before, after, label, f"{article_id} v{version}")))

    # ------------------------------------------------------------------ reads

    def search(self, query: str = "", category: str | None = None) -> list[dict[str, Any]]:
        """Current articles, file order; ``query`` matches id, titles, answers, questions and tags (any case)."""
        needle = query.strip().lower()
        stmt = select(heads).where(heads.c.removed.is_(False)).order_by(heads.c.category, heads.c.position)
        if category:
            stmt = stmt.where(heads.c.category == category)
        with self.engine.connect() as db:
            rows = db.execute(stmt).all()
        out = []
        for row in rows:
            article = json.loads(row.content)
            if needle and needle not in _haystack(article):
                continue
            out.append({"id": row.article_id, "category": row.category, "title": article["title"],
                        "version": row.version, "updated_at": row.updated_at, "updated_by": row.updated_by,
                        "tags": article.get("tags") or []})
        return out

    def get(self, article_id: str) -> dict[str, Any]:
        with self.engine.connect() as db:
            row = db.execute(select(heads).where(heads.c.article_id == article_id,
                                                 heads.c.removed.is_(False))).first()
        if row is None:
            raise NotFound(f"No article {article_id!r}.")
        return _head_out(row)

    def versions(self, article_id: str) -> list[dict[str, Any]]:
        """Every version of an article, newest first, each with its diff from the one before."""
        with self.engine.connect() as db:
            rows = db.execute(select(versions).where(versions.c.article_id == article_id)
                              .order_by(versions.c.version.desc())).all()
        if not rows:
            raise NotFound(f"No article {article_id!r}.")
        return [{"version": r.version, "author": r.author, "author_role": r.author_role, "created_at": r.created_at,
                 "kind": r.kind, "restored_from": r.restored_from, "diff": r.diff} for r in rows]

    def version(self, article_id: str, version: int) -> dict[str, Any]:
        with self.engine.connect() as db:
            row = db.execute(select(versions).where(versions.c.article_id == article_id,
                                                    versions.c.version == version)).first()
        if row is None:
            raise NotFound(f"Article {article_id!r} has no version {version}.")
        return json.loads(row.content)

    # ------------------------------------------------------------------ writes

    def save(self, article_id: str, base_version: int, changes: Mapping[str, Any], author: str, role: str,
             kind: str = "edit", restored_from: int | None = None) -> dict[str, Any]:
        """Apply ``changes`` (editable fields) to the article if ``base_version`` is still current, store the new
        version and write the file. Returns the new head (unchanged, with ``"unchanged": True``, when the edit
        changes nothing).

        Raises:
            NotFound, Conflict, articles.ArticleProblems (nothing stored), KBContentError (the file cannot be read).
        """
        self.refresh()  # hand edits since the last look become versions of their own (committed first)
        with self.engine.begin() as db:
            row = db.execute(select(heads.c.category).where(heads.c.article_id == article_id)).first()
            if row is None:
                raise NotFound(f"No article {article_id!r}.")
            category = row.category
            self._lock_file(db, category)
            path, header, items = self._file(category)
            self._take_in(db, category, items)  # hand edits of this file first: never written over
            head = db.execute(select(heads).where(heads.c.article_id == article_id)).first()
            if head is None or head.removed:
                raise NotFound(f"Article {article_id!r} is no longer in the files.")
            current = json.loads(head.content)
            new = kb.edited(current, changes)
            if head.version != base_version:
                raise self._conflict(db, head, base_version, new)
            others = [json.loads(c) for c in db.execute(select(heads.c.content).where(
                heads.c.article_id != article_id, heads.c.removed.is_(False))).scalars()]
            found = kb.problems(new, others)
            if found:
                raise kb.ArticleProblems(found)
            if new == current:
                return {**_head_out(head), "unchanged": True}
            now = time.time()
            version = head.version + 1
            if not db.execute(update(heads).where(heads.c.article_id == article_id, heads.c.version == base_version)
                              .values(version=version, content=_dump(new), updated_at=now, updated_by=author)
                              ).rowcount:
                raise self._conflict(db, head, base_version, new)
            self._add_version(db, article_id, version, current, new, author, role, kind, now, restored_from)
            self._write_file(db, category, path, header)
            head = db.execute(select(heads).where(heads.c.article_id == article_id)).first()
        with self._sync_lock:
            self._seen_mtimes = None  # our own write: the next refresh re-reads (and finds nothing new)
        return _head_out(head)

    def create(self, article: Mapping[str, Any], author: str, role: str, kind: str = "draft") -> dict[str, Any]:
        """A new article at the end of its category's file: checked by the same rules as an edit, version 1 (``kind``)
        with the diff from nothing, the file written like a save. Returns the new head.

        Raises:
            articles.ArticleProblems: the id is (or was) used, or a rule is broken (nothing stored).
            KBContentError: the category has no file, or the file cannot be read or written.
        """
        self.refresh()
        category = str(article.get("category") or "")
        article_id = str(article.get("id") or "")
        with self.engine.begin() as db:
            self._lock_file(db, category)
            path, header, items = self._file(category)
            self._take_in(db, category, items)
            new = kb.edited({"id": article_id, "category": category, "title": {}, "answer": {}, "questions": {},
                             "tags": [], "last_reviewed": None}, article)
            if db.execute(select(heads.c.article_id).where(heads.c.article_id == article_id)).first() is not None \
                    or db.execute(select(versions.c.id).where(versions.c.article_id == article_id)).first():
                raise kb.ArticleProblems([f"id: {article_id!r} is already used by an article (or was used before); "
                                          "choose another id"])
            others = [json.loads(c) for c in db.execute(select(heads.c.content).where(
                heads.c.removed.is_(False))).scalars()]
            found = kb.problems(new, others)
            if found:
                raise kb.ArticleProblems(found)
            position = len(items)
            now = time.time()
            db.execute(insert(heads).values(article_id=article_id, category=category, position=position, version=1,
                                            content=_dump(new), updated_at=now, updated_by=author, removed=False))
            self._add_version(db, article_id, 1, None, new, author, role, kind, now)
            self._write_file(db, category, path, header)
            head = db.execute(select(heads).where(heads.c.article_id == article_id)).first()
        with self._sync_lock:
            self._seen_mtimes = None
        return _head_out(head)

    def categories(self) -> list[str]:
        with self.engine.connect() as db:
            return sorted(set(db.execute(select(heads.c.category).where(heads.c.removed.is_(False))).scalars()))

    def restore(self, article_id: str, version: int, base_version: int, author: str, role: str) -> dict[str, Any]:
        """A new version with the content of an earlier one (checked by today's rules, like any edit)."""
        old = self.version(article_id, version)
        return self.save(article_id, base_version, {k: old.get(k) for k in kb.EDITABLE}, author, role,
                         kind="restore", restored_from=version)

    def _conflict(self, db: Connection, head: Any, base_version: int, mine: Mapping[str, Any]) -> Conflict:
        base = db.execute(select(versions.c.content).where(versions.c.article_id == head.article_id,
                                                           versions.c.version == base_version)).scalar()
        current = json.loads(head.content)
        theirs = kb.diff(json.loads(base) if base else None, current, f"{head.article_id} v{base_version}",
                         f"{head.article_id} v{head.version} ({head.updated_by})")
        yours = kb.diff(current, mine, f"{head.article_id} v{head.version}", f"{head.article_id} (your edit)")
        return Conflict(_head_out(head), base_version, theirs, yours)

    def _file(self, category: str) -> tuple[Path, list[str], list[dict[str, Any]]]:
        for path in sorted(self.kb_dir.glob("*.y*ml")):
            if path.stem == category:
                header, found, items = kb.read_file(path)
                if found == category:
                    return path, header, items
        found_all = kb.read_dir(self.kb_dir)
        if category not in found_all:
            raise KBContentError(f"no article file for category {category!r} in {self.kb_dir}")
        return found_all[category]

    def _write_file(self, db: Connection, category: str, path: Path, header: list[str]) -> None:
        """Render the category's file from the store, check that it reads back as exactly those articles, then
        replace the file atomically (same folder, fsync, rename)."""
        stored = [json.loads(c) for c in db.execute(select(heads.c.content).where(
            heads.c.category == category, heads.c.removed.is_(False)).order_by(heads.c.position)).scalars()]
        text = kb.render_file(header, category, stored)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            _, back_category, back = kb.read_file(Path(tmp))
            if back_category != category or back != stored:
                raise KBContentError(f"{path.name}: the written file does not read back as the stored articles")
            os.chmod(tmp, path.stat().st_mode & 0o777)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def write_all(self) -> list[Path]:
        """Write every category's file from the store (the round trip check; a save writes only its own file)."""
        written = []
        with self.engine.begin() as db:
            for category, (path, header, _items) in kb.read_dir(self.kb_dir).items():
                self._lock_file(db, category)
                self._write_file(db, category, path, header)
                written.append(path)
        return written
