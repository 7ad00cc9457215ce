"""Account management in the console and routing (issue 17, item 4) against the real gateway and Redis: supervisors
set concurrency, skills and languages, disable (sessions end, no login) and reset passphrases (sessions end); the
queue is routed by skills and languages with VIP customers first, "take next" honours the concurrency limit; agents
and editors cannot manage accounts, a supervisor cannot disable themselves, changes are audited and limited."""
from __future__ import annotations

import json

import pytest


async def _queued(desk, language: str, reason: str, tier: str = "regular") -> str:
    cid = (await desk.say("I need help" if language == "en" else "我需要帮助"))["conversation_id"]
    r = await desk.handoff(cid, language=language, reason_code=reason, priority=3,
                           customer={"id": None, "tier": tier, "verified": tier != "regular"},
                           frustration={"score": 30, "curve": []})
    assert r.status_code == 200, r.text
    return r.json()["handoff_id"]


def _patch(desk, who, account_id: str, **body):
    return desk.http.patch(f"/api/agent/accounts/{account_id}", json=body, headers=who.headers)


async def test_supervisor_sets_skills_languages_concurrency_and_routing_follows(desk) -> None:
    boss = await desk.agent("boss", role="supervisor")
    alice = await desk.agent("alice")
    r = await _patch(desk, boss, alice.account.id, max_concurrent=1, skills=["complaint"], languages=["zh"])
    assert r.status_code == 200, r.text
    assert r.json()["skills"] == ["complaint"] and r.json()["languages"] == ["zh"] and r.json()["max_concurrent"] == 1
    me = (await desk.http.get("/api/agent/me", headers=alice.headers)).json()
    assert me["skills"] == ["complaint"] and me["max_concurrent"] == 1
    listed = {a["username"]: a for a in (await desk.http.get("/api/agent/accounts", headers=boss.headers)).json()}
    assert listed["alice"]["languages"] == ["zh"] and listed["alice"]["online"] is True
    entry = [e for e in await desk.app.state.desk.audit_log(100) if e["action"] == "account_change"][0]
    assert json.loads(entry["detail"])["account"] == "alice" and entry["agent"] == "boss"

    english = await _queued(desk, "en", "explicit_request")
    chinese = await _queued(desk, "zh", "complaint")
    vip = await _queued(desk, "zh", "complaint", tier="gold")  # newest, but a priority tier
    routed = (await desk.http.get("/api/agent/queue/routed", headers=alice.headers)).json()
    assert [(r["handoff_id"], r["match"]) for r in routed] == [(vip, True), (chinese, True), (english, False)]
    # The supervisor matches everything: the plain queue order (VIP first, then waiting time).
    assert [r["handoff_id"] for r in (await desk.http.get("/api/agent/queue/routed", headers=boss.headers)).json()] \
        == [vip, english, chinese]
    r = await desk.http.post("/api/agent/queue/next", headers=alice.headers)
    assert r.status_code == 200 and r.json()["handoff_id"] == vip and r.json()["agent_id"] == alice.account.id
    r = await desk.http.post("/api/agent/queue/next", headers=alice.headers)
    assert r.status_code == 409 and "Concurrency limit" in r.json()["detail"]  # max_concurrent 1
    # An English-only agent is offered only the English one.
    bob = await desk.agent("bob")
    await _patch(desk, boss, bob.account.id, languages=["en"])
    r = await desk.http.post("/api/agent/queue/next", headers=bob.headers)
    assert r.json()["handoff_id"] == english
    r = await desk.http.post("/api/agent/queue/next", headers=bob.headers)
    assert r.status_code == 404


async def test_disable_and_reset_end_sessions(desk) -> None:
    boss = await desk.agent("boss", role="supervisor")
    alice, bob = await desk.agent("alice"), await desk.agent("bob")
    assert (await _patch(desk, boss, bob.account.id, disabled=True)).json()["disabled"] is True
    assert (await desk.http.get("/api/agent/me", headers=bob.headers)).status_code == 401
    r = await desk.http.post("/api/agent/login", json={"username": "bob", "password": desk.password})
    assert r.status_code == 401
    online = {a["username"]: a["online"] for a in (await desk.http.get("/api/agent/accounts",
                                                                        headers=boss.headers)).json()}
    assert online["bob"] is False
    # Nobody hands a conversation to a disabled account.
    hid = await _queued(desk, "en", "complaint")
    assert (await desk.http.post(f"/api/agent/handoffs/{hid}/claim", headers=alice.headers)).status_code == 200
    for route, who in (("transfer", alice), ("reassign", boss)):
        r = await desk.http.post(f"/api/agent/handoffs/{hid}/{route}", json={"to_agent_id": bob.account.id},
                                 headers=who.headers)
        assert r.status_code == 409 and "disabled" in r.json()["detail"]
    assert (await _patch(desk, boss, bob.account.id, disabled=False)).json()["disabled"] is False
    r = await desk.http.post("/api/agent/login", json={"username": "bob", "password": desk.password})
    assert r.status_code == 200
    desk.http.cookies.clear()

    r = await desk.http.post(f"/api/agent/accounts/{alice.account.id}/password", json={"password": "new passphrase 1"},
                             headers=boss.headers)
    assert r.status_code == 200
    assert (await desk.http.get("/api/agent/me", headers=alice.headers)).status_code == 401
    r = await desk.http.post("/api/agent/login", json={"username": "alice", "password": desk.password})
    assert r.status_code == 401
    r = await desk.http.post("/api/agent/login", json={"username": "alice", "password": "new passphrase 1"})
    assert r.status_code == 200
    desk.http.cookies.clear()
    actions = [e["action"] for e in await desk.app.state.desk.audit_log(100)]
    assert "account_password_reset" in actions and actions.count("account_change") == 2


async def test_only_supervisors_manage_accounts(desk) -> None:
    boss = await desk.agent("boss", role="supervisor")
    alice, bob = await desk.agent("alice"), await desk.agent("bob")
    await desk.app.state.agents.create("ed", desk.password, "editor")
    login = await desk.http.post("/api/agent/login", json={"username": "ed", "password": desk.password})
    desk.http.cookies.clear()
    editor = type("E", (), {"headers": {"Authorization": f"Bearer {login.json()['token']}"}})()
    for who in (alice, editor):
        assert (await desk.http.get("/api/agent/accounts", headers=who.headers)).status_code == 403
        assert (await _patch(desk, who, bob.account.id, max_concurrent=20)).status_code == 403
        r = await desk.http.post(f"/api/agent/accounts/{bob.account.id}/password",
                                 json={"password": "taken over!!"}, headers=who.headers)
        assert r.status_code == 403
    assert (await desk.http.post("/api/agent/queue/next", headers=editor.headers)).status_code == 403
    assert (await desk.http.get("/api/agent/me", headers=bob.headers)).json()["max_concurrent"] == 3
    # Bad input and self-lockout.
    assert (await _patch(desk, boss, boss.account.id, disabled=True)).status_code == 409
    assert (await _patch(desk, boss, bob.account.id, max_concurrent=0)).status_code == 422
    assert (await _patch(desk, boss, bob.account.id, skills=["<script>"])).status_code == 422
    assert (await _patch(desk, boss, bob.account.id, languages=["fr"])).status_code == 422
    assert (await _patch(desk, boss, "nobody", max_concurrent=2)).status_code == 404
    r = await desk.http.post(f"/api/agent/accounts/{bob.account.id}/password", json={"password": "short"},
                             headers=boss.headers)
    assert r.status_code == 422


@pytest.mark.desk_settings(handoff_limit_desk_writes="3/minute")
async def test_a_flood_of_account_changes_is_stopped(desk) -> None:
    boss = await desk.agent("boss", role="supervisor")
    alice = await desk.agent("alice")
    for n in range(3):
        assert (await _patch(desk, boss, alice.account.id, max_concurrent=n + 1)).status_code == 200
    r = await _patch(desk, boss, alice.account.id, max_concurrent=5)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert (await desk.http.get("/api/agent/me", headers=alice.headers)).json()["max_concurrent"] == 3
