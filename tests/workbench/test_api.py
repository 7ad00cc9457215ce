"""The workbench API and the editor role on the real gateway app (uvicorn, real Redis; tests/handoff/conftest.py's
``desk`` fixture), with the workbench on a copy of data/kb and its own SQLite file.

Who may do what: anonymous 401, agents 403 on the workbench, editors 403 on the agent desk (and never in the
queue's presence or a transfer target), supervisors both. Saves: versions, 422 with every problem and nothing
saved, 409 for the second of two editors on one version, restore. "Try a question" reaches the action server with
its token and maps its failures to 503."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from bot.shared.paths import REPO_ROOT
from conversations import keys
from tests.handoff.conftest import desk  # noqa: F401 - the gateway fixture, shared
from tests.processes import serve_in_process
from workbench.settings import WorkbenchSettings

ARTICLE = "shipping-remote-regions"
ACTION_TOKEN = "action-token-for-tests"  # noqa: S105 - test secret


@pytest.fixture
def kb_copy(tmp_path: Path) -> Path:
    target = tmp_path / "kb"
    shutil.copytree(REPO_ROOT / "data" / "kb", target)
    return target


@pytest.fixture
async def fake_action_server():
    """Stands in for the action server's ``POST /kb/decide`` (the real one: tests/actions/test_kb_decide.py and
    the browser test against the real stack); records what it was sent."""
    app = FastAPI()
    seen: list[dict[str, Any]] = []

    @app.post("/kb/decide")
    async def decide(request: Request) -> JSONResponse:
        body = await request.json()
        seen.append({"token": request.headers.get("x-action-token"), **body})
        if body["question"] == "break":
            return JSONResponse({"error": "knowledge base unavailable: no index"}, status_code=503)
        return JSONResponse({"question": body["question"], "language": body.get("language") or "en",
                             "decision": "answer", "hits": [{"id": ARTICLE, "title": "Remote regions",
                                                             "score": 0.9, "level": "confident"}],
                             "suggestions": [], "thresholds": {"confident": 0.82, "middling": 0.78,
                                                               "clear_margin": 0.01}, "index_build": "b1"})

    server, task, port = await serve_in_process(app)
    yield f"http://127.0.0.1:{port}", seen
    server.should_exit = True
    await task


@pytest.fixture
def wb(desk, kb_copy: Path, tmp_path: Path, fake_action_server):  # noqa: F811 - pytest fixture injection
    url, _ = fake_action_server
    desk.app.state.workbench_settings = WorkbenchSettings(
        database_url=f"sqlite:///{tmp_path / 'workbench.db'}", kb_dir=kb_copy, action_url=url,
        action_token=ACTION_TOKEN)
    return desk


def _edit(head: dict[str, Any], **changes: Any) -> dict[str, Any]:
    article = head["article"]
    body = {"base_version": head["version"], "title": article["title"], "answer": article["answer"],
            "questions": article["questions"], "tags": article["tags"] or [],
            "last_reviewed": article["last_reviewed"]}
    body.update(changes)
    return body


async def test_who_may_use_the_workbench(wb) -> None:
    assert (await wb.http.get("/api/workbench/articles")).status_code == 401
    assert (await wb.http.get("/workbench")).status_code == 200  # the page itself (it shows the login)
    agent = await wb.agent("ann", "agent")
    r = await wb.http.get("/api/workbench/articles", headers=agent.headers)
    assert r.status_code == 403 and "Editors" in r.json()["detail"]
    editor = await wb.agent("eddie", "editor")
    boss = await wb.agent("boss", "supervisor")
    for who in (editor, boss):
        r = await wb.http.get("/api/workbench/articles", headers=who.headers)
        assert r.status_code == 200 and r.json()["count"] >= 85


async def test_an_editor_is_not_part_of_the_agent_desk(wb) -> None:
    editor = await wb.agent("eddie", "editor")
    me = await wb.http.get("/api/agent/me", headers=editor.headers)
    assert me.status_code == 200 and me.json()["role"] == "editor"  # same login and session as the console
    for method, path in (("GET", "/api/agent/queue"), ("GET", "/api/agent/mine"), ("GET", "/api/agent/agents"),
                         ("GET", "/api/agent/canned"), ("GET", "/api/agent/events"), ("GET", "/api/agent/alerts"),
                         ("POST", "/api/agent/handoffs/h1/claim"), ("POST", "/api/agent/agents")):
        r = await wb.http.request(method, path, headers=editor.headers, json={} if method == "POST" else None)
        assert r.status_code == 403, (path, r.status_code, r.text)
    # Not counted as someone who can take conversations, and not a transfer target.
    assert editor.account.id not in {v.decode() for v in await wb.redis.zrange(keys.agents_online(), 0, -1)}
    ann = await wb.agent("ann", "agent")
    conv = (await wb.say("I want a person"))["conversation_id"]
    handoff_id = (await wb.handoff(conv)).json()["handoff_id"]
    assert (await wb.http.post(f"/api/agent/handoffs/{handoff_id}/claim", headers=ann.headers)).status_code == 200
    r = await wb.http.post(f"/api/agent/handoffs/{handoff_id}/transfer", headers=ann.headers,
                           json={"to_agent_id": editor.account.id})
    assert r.status_code == 404
    # A supervisor creates editor accounts in the console; the desk still lists them (role shown) for supervisors.
    boss = await wb.agent("boss", "supervisor")
    r = await wb.http.post("/api/agent/agents", headers=boss.headers,
                           json={"username": "edna", "password": "long enough pw", "role": "editor"})
    assert r.status_code == 201 and r.json()["role"] == "editor"
    logout = await wb.http.post("/api/agent/logout", headers=editor.headers)
    assert logout.status_code == 200
    assert (await wb.http.get("/api/workbench/me", headers=editor.headers)).status_code == 401


async def test_save_version_conflict_and_restore_over_http(wb, kb_copy: Path) -> None:
    alice = await wb.agent("alice", "editor")
    bob = await wb.agent("bob", "supervisor")
    listing = (await wb.http.get("/api/workbench/articles", params={"q": "新疆"}, headers=alice.headers)).json()
    assert ARTICLE in [a["id"] for a in listing["articles"]]
    head = (await wb.http.get(f"/api/workbench/articles/{ARTICLE}", headers=alice.headers)).json()
    assert head["version"] == 1
    questions = dict(head["article"]["questions"], en=[*head["article"]["questions"]["en"], "do you ship to lhasa"])
    r = await wb.http.put(f"/api/workbench/articles/{ARTICLE}", headers=alice.headers,
                          json=_edit(head, questions=questions))
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 2 and r.headers["etag"] == f'W/"{ARTICLE}-v2"'
    assert "- do you ship to lhasa" in (kb_copy / "shipping.yml").read_text(encoding="utf-8")
    # Bob still has version 1 open: his save is refused with what changed meanwhile, nothing saved.
    r = await wb.http.put(f"/api/workbench/articles/{ARTICLE}", headers=bob.headers,
                          json=_edit(head, tags=["shipping"]))
    assert r.status_code == 409
    body = r.json()
    assert body["current"]["version"] == 2 and body["current"]["updated_by"] == "alice"
    assert "+        - do you ship to lhasa" in body["theirs"] and "alice saved version 2" in body["detail"]
    versions = (await wb.http.get(f"/api/workbench/articles/{ARTICLE}/versions", headers=bob.headers)).json()
    assert [(v["version"], v["author"], v["kind"]) for v in versions["versions"]] == [
        (2, "alice", "edit"), (1, "files", "import")]
    # Bad input: 422 with every problem, nothing saved.
    current = (await wb.http.get(f"/api/workbench/articles/{ARTICLE}", headers=bob.headers)).json()
    before = (kb_copy / "shipping.yml").read_bytes()
    r = await wb.http.put(f"/api/workbench/articles/{ARTICLE}", headers=bob.headers,
                          json=_edit(current, answer={"zh": "", "en": current["article"]["answer"]["en"]},
                                     tags=["Bad Tag"]))
    assert r.status_code == 422
    problems = r.json()["problems"]
    assert any(p.startswith("answer.zh: missing") for p in problems) and any(p.startswith("tags:") for p in problems)
    assert (kb_copy / "shipping.yml").read_bytes() == before
    r = await wb.http.put(f"/api/workbench/articles/{ARTICLE}", headers=bob.headers,
                          json={**_edit(current), "answer": {"zh": "x"}, "unknown": 1})
    assert r.status_code == 422  # malformed request, not just a broken rule
    # Restore version 1 (as a new version 3), the file back to what it was.
    r = await wb.http.post(f"/api/workbench/articles/{ARTICLE}/restore", headers=bob.headers,
                           json={"version": 1, "base_version": 2})
    assert r.status_code == 200 and r.json()["version"] == 3
    assert (kb_copy / "shipping.yml").read_bytes() == (REPO_ROOT / "data" / "kb" / "shipping.yml").read_bytes()
    assert (await wb.http.get(f"/api/workbench/articles/{ARTICLE}/versions/9", headers=bob.headers)).status_code \
        == 404
    assert (await wb.http.get("/api/workbench/articles/no-such-article", headers=bob.headers)).status_code == 404


async def test_cross_site_saves_are_refused(wb) -> None:
    alice = await wb.agent("alice", "editor")
    head = (await wb.http.get(f"/api/workbench/articles/{ARTICLE}", headers=alice.headers)).json()
    r = await wb.http.put(f"/api/workbench/articles/{ARTICLE}", json=_edit(head),
                          headers={**alice.headers, "Origin": "https://evil.example"})
    assert r.status_code == 403


async def test_try_a_question_asks_the_action_server_with_its_token(wb, fake_action_server) -> None:
    _, seen = fake_action_server
    alice = await wb.agent("alice", "editor")
    r = await wb.http.post("/api/workbench/try", headers=alice.headers,
                           json={"question": "how long to xinjiang", "language": "en"})
    assert r.status_code == 200 and r.json()["decision"] == "answer" and r.json()["hits"][0]["id"] == ARTICLE
    assert seen[-1] == {"token": ACTION_TOKEN, "question": "how long to xinjiang", "language": "en"}
    r = await wb.http.post("/api/workbench/try", headers=alice.headers, json={"question": "break"})
    assert r.status_code == 503 and "no index" in r.json()["detail"]
    agent = await wb.agent("ann", "agent")
    assert (await wb.http.post("/api/workbench/try", headers=agent.headers,
                               json={"question": "x"})).status_code == 403


@pytest.mark.desk_settings(handoff_limit_desk_writes="3/minute")
async def test_an_editor_cannot_hammer_the_action_server_or_the_files(wb, fake_action_server) -> None:
    """Each try costs the action server a retrieval and each save a file write: counted per account with the desk's
    write limit (429 + Retry-After), so one session cannot call them 10,000 times."""
    _, seen = fake_action_server
    alice = await wb.agent("alice", "editor")
    bob = await wb.agent("bob", "editor")
    for _ in range(3):
        r = await wb.http.post("/api/workbench/try", headers=alice.headers, json={"question": "ship to xinjiang?"})
        assert r.status_code == 200
    r = await wb.http.post("/api/workbench/try", headers=alice.headers, json={"question": "ship to xinjiang?"})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    head = (await wb.http.get(f"/api/workbench/articles/{ARTICLE}", headers=alice.headers)).json()
    r = await wb.http.put(f"/api/workbench/articles/{ARTICLE}", headers=alice.headers, json=_edit(head))
    assert r.status_code == 429  # the same budget: nothing written
    assert len(seen) == 3
    r = await wb.http.post("/api/workbench/try", headers=bob.headers, json={"question": "ship to xinjiang?"})
    assert r.status_code == 200  # per account
