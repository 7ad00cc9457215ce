"""The content versions page's API (``GET /api/workbench/versions``): every published change - article versions
(``workbench_versions``) and intent versions (``workbench_nlu_versions``) - newest first, each with author, time,
kind and its unified diff, and which version is current, so the page can offer "restore" on the older ones.

Restoring goes through the existing routes, which make it a new version (kind ``restore``, ``restored_from``, author
and time: the versions table is the audit trail): ``POST /articles/{id}/restore`` (optimistic: names the current
version, 409 with both diffs when someone saved meanwhile) and ``POST /intents/{language}/{intent}/restore``.
Editors and supervisors only (401 / 403 for agents).
"""
from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from sqlalchemy import Engine, func, select

from handoff.deps import EditorDep, count_report_read, same_origin
from workbench import db
from workbench.api import ContentDep

router = APIRouter(prefix="/api/workbench", tags=["workbench versions"], dependencies=[Depends(same_origin)])
Kind = Literal["all", "article", "intent"]


def recent(engine: Engine, kind: Kind = "all", limit: int = 100, include_imports: bool = False,
           target: str = "") -> list[dict[str, Any]]:
    """The newest ``limit`` versions of articles and/or intents (``target`` narrows to an article id or an intent
    name), each marked ``current`` when it is its item's latest version."""
    out: list[dict[str, Any]] = []
    with engine.connect() as conn:
        if kind in ("all", "article"):
            v = db.versions
            latest = select(v.c.article_id, func.max(v.c.version).label("top")).group_by(v.c.article_id).subquery()
            q = select(v, latest.c.top).join(latest, latest.c.article_id == v.c.article_id)
            if not include_imports:
                q = q.where(v.c.kind != "import")
            if target:
                q = q.where(v.c.article_id == target)
            for r in conn.execute(q.order_by(v.c.created_at.desc(), v.c.id.desc()).limit(limit)).mappings():
                out.append({"type": "article", "target": r["article_id"], "article_id": r["article_id"],
                            "version": r["version"], "current_version": r["top"], "current": r["version"] == r["top"],
                            "author": r["author"], "author_role": r["author_role"], "created_at": r["created_at"],
                            "kind": r["kind"], "restored_from": r["restored_from"], "diff": r["diff"]})
        if kind in ("all", "intent"):
            n = db.nlu_versions
            latest = select(n.c.file, n.c.intent, func.max(n.c.version).label("top")).group_by(
                n.c.file, n.c.intent).subquery()
            q = select(n, latest.c.top).join(latest, (latest.c.file == n.c.file) & (latest.c.intent == n.c.intent))
            if not include_imports:
                q = q.where(n.c.kind != "import")
            if target:
                q = q.where(n.c.intent == target)
            for r in conn.execute(q.order_by(n.c.created_at.desc(), n.c.id.desc()).limit(limit)).mappings():
                language = r["file"].removesuffix(".yml")
                out.append({"type": "intent", "target": f"{language}/{r['intent']}", "intent": r["intent"],
                            "language": language, "version": r["version"], "current_version": r["top"],
                            "current": r["version"] == r["top"], "author": r["author"],
                            "author_role": r["author_role"], "created_at": r["created_at"], "kind": r["kind"],
                            "restored_from": r["restored_from"], "diff": r["diff"]})
    out.sort(key=lambda x: -x["created_at"])
    return out[:limit]


@router.get("/versions", dependencies=[Depends(count_report_read)])
async def versions(editor: EditorDep, content: ContentDep, kind: Kind = "all",
                   limit: Annotated[int, Query(ge=1, le=500)] = 100, include_imports: bool = False,
                   target: Annotated[str, Query(max_length=120)] = "") -> dict[str, Any]:
    rows = await asyncio.to_thread(recent, content.engine, kind, limit, include_imports, target)
    return {"versions": rows, "count": len(rows)}
