"""Releases' faults and refusals (workbench/releases.py) with real Redis and SQLite, and stage programs replaced by a
small script through the documented settings (WORKBENCH_APP_PYTHON / WORKBENCH_RASA_PYTHON): a stage that fails, a
training cancelled (its process group killed), a second retrain while one runs (one lease across gateways), a gateway
that died mid-training, a refused release deployed by an editor or without a reason, a Rasa worker that cannot load a
deployed model (the index goes back, the live release stays). The real training, gate, deploy and rollback on a
running stack: tests/browser/test_workbench_releases.py."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import stat
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import redis.asyncio as aioredis

from bot.shared.paths import REPO_ROOT
from conversations import keys
from conversations.rasa_client import RasaClient
from kb_index.layout import install_build, read_current_fingerprint
from tests.processes import free_port
from tests.workbench.test_gate import setup_model  # noqa: F401 - the fixture
from tests.workbench.test_inbox import copies, desk, fake_embedder, ib  # noqa: F401 - the gateway with the workbench
from workbench import db, releases
from workbench.db import make_engine
from workbench.releases import ReleaseError, Releases
from workbench.settings import WorkbenchSettings

EDITOR = SimpleNamespace(username="ed", role="editor")
SUPERVISOR = SimpleNamespace(username="boss", role="supervisor")

FAKE = """#!{python}
# Stands in for both interpreters: `-m kb_index build` copies an existing index, `-m rasa train` fails, sleeps or
# copies the setup model, as FAKE_RASA says; anything else succeeds.
import os, shutil, sys, time
args = sys.argv[1:]
if args[:3] == ["-m", "kb_index", "build"]:
    shutil.copytree(os.environ["FAKE_SOURCE_INDEX"], os.environ["KB_INDEX_DIR"], dirs_exist_ok=True)
elif args[:3] == ["-m", "rasa", "train"]:
    mode = os.environ.get("FAKE_RASA", "")
    if mode == "fail":
        print("rasa: the domain is broken")
        sys.exit(3)
    if mode == "sleep":
        open(os.environ["FAKE_PIDFILE"], "w").write(str(os.getpid()))
        time.sleep(120)
    name = args[args.index("--fixed-model-name") + 1]
    shutil.copy(os.environ["FAKE_MODEL"], os.path.join(args[args.index("--out") + 1], name + ".tar.gz"))
"""


@pytest.fixture
def world(tmp_path: Path, redis_url: str, setup_model: Path,  # noqa: F811
          monkeypatch: pytest.MonkeyPatch) -> Any:
    from kb_index.settings import KBSettings

    index_dir = tmp_path / "kb_index"
    install_build(KBSettings().index_path, index_dir)
    fake = tmp_path / "fake-python"
    fake.write_text(FAKE.format(python=sys.executable), encoding="utf-8")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("FAKE_SOURCE_INDEX", str(index_dir))
    monkeypatch.setenv("FAKE_MODEL", str(setup_model))
    monkeypatch.setenv("FAKE_PIDFILE", str(tmp_path / "rasa.pid"))
    settings = WorkbenchSettings(database_url=f"sqlite:///{tmp_path / 'wb.db'}", releases_dir=tmp_path / "releases",
                                 app_python=str(fake), rasa_python=fake, nlu_dir=REPO_ROOT / "data" / "nlu",
                                 kb_dir=REPO_ROOT / "data" / "kb")
    releases.ensure_live_link(settings.releases_path)
    return SimpleNamespace(settings=settings, engine=make_engine(settings.database_url), index_dir=index_dir,
                           tmp=tmp_path)


@pytest.fixture
async def redis(redis_url: str) -> Any:
    client = aioredis.from_url(redis_url, decode_responses=True)
    await client.delete(keys.release_lock())
    yield client
    await client.delete(keys.release_lock())
    await client.aclose()


def _releases(world: Any, redis: Any, rasa: RasaClient | None = None) -> Releases:
    return Releases(world.engine, world.settings, redis, rasa, world.index_dir)


async def _finished(rel: Releases, release_id: int, timeout_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while (row := rel.row(release_id))["status"] == "training":
        assert time.monotonic() < deadline, row
        await asyncio.sleep(0.2)
    return row


async def test_a_failing_stage_fails_the_release_with_its_log_and_the_live_bot_unchanged(
        world: Any, redis: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_RASA", "fail")
    rel = _releases(world, redis)
    live_before = releases.served_model(world.settings.releases_path)
    started = await rel.start_training(EDITOR)
    assert started["status"] == "training" and started["created_by"] == "ed"
    row = await _finished(rel, started["id"])
    assert row["status"] == "failed" and "exit 3" in row["error"]
    assert [(s["name"], s["ok"]) for s in row["stages"]] == [("snapshot", True), ("kb_index", True),
                                                             ("rasa_train", False)]
    assert "rasa: the domain is broken" in rel.log_tail(started["id"])
    assert row["content"]["examples"]["en.yml"] > 100 and row["content"]["articles"] > 0
    # The setup model and index were adopted as the live release; nothing else changed.
    live = [r for r in rel.list() if r["status"] == "live"]
    assert [r["kind"] for r in live] == ["setup"]
    assert releases.served_model(world.settings.releases_path) == releases.model_path(world.settings, live[0]["id"])
    assert live_before is not None and live_before.read_bytes()[:64] == \
        releases.model_path(world.settings, live[0]["id"]).read_bytes()[:64]
    assert await redis.get(keys.release_lock()) is None, "the lease is given back"


async def test_a_cancelled_training_kills_its_process_and_one_retrain_at_a_time(
        world: Any, redis: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_RASA", "sleep")
    rel = _releases(world, redis)
    started = await rel.start_training(EDITOR)
    pidfile = world.tmp / "rasa.pid"
    deadline = time.monotonic() + 60
    while not pidfile.exists():
        assert time.monotonic() < deadline, rel.log_tail(started["id"])
        await asyncio.sleep(0.2)
    pid = int(pidfile.read_text())
    # Another gateway (its own Releases, same Redis and database) cannot start a second one.
    other = _releases(world, redis)
    with pytest.raises(ReleaseError) as refused:
        await other.start_training(SUPERVISOR)
    assert refused.value.status == 409
    with pytest.raises(ReleaseError) as refused:
        await other.cancel(12345, EDITOR)
    assert refused.value.status == 404
    # ... but it can cancel this one: the flag is read by the gateway running it.
    await other.cancel(started["id"], SUPERVISOR)
    row = await _finished(rel, started["id"])
    assert row["status"] == "cancelled" and row["stages"][-1] == {**row["stages"][-1], "name": "rasa_train",
                                                                  "ok": False}
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert [h["action"] for h in rel.history()] == ["cancel", "retrain"]
    assert [h["actor"] for h in rel.history()] == ["boss", "ed"]
    with pytest.raises(ReleaseError) as refused:
        await rel.cancel(started["id"], EDITOR)
    assert refused.value.status == 409
    assert await redis.get(keys.release_lock()) is None


async def test_a_training_whose_gateway_died_is_reported_failed(world: Any, redis: Any) -> None:
    rel = _releases(world, redis)
    with world.engine.begin() as conn:
        conn.execute(db.releases.insert().values(kind="retrain", status="training", stage="rasa_train", stages="[]",
                                                 created_by="ed", created_at=time.time() - 600,
                                                 heartbeat_at=time.time() - releases.STALE_S - 5))
    row = rel.list()[0]
    assert row["status"] == "failed" and "stopped" in row["error"]


def _ready_release(world: Any, status: str) -> int:
    """A finished release with its files (the setup model and index copied), in ``status``."""
    with world.engine.begin() as conn:
        release_id = conn.execute(db.releases.insert().values(
            kind="retrain", status=status, stage="", stages="[]", created_by="ed", created_at=time.time(),
            finished_at=time.time(), gate="fail" if status == "blocked" else "pass")).inserted_primary_key[0]
    folder = releases.release_dir(world.settings, release_id)
    folder.mkdir(parents=True)
    shutil.copy(os.environ["FAKE_MODEL"], releases.model_path(world.settings, release_id))
    # A different build id than the live one, so a switch of the index shows.
    shutil.copytree(world.index_dir, folder / "kb_index")
    fingerprint = read_current_fingerprint(folder / "kb_index")
    assert fingerprint is not None
    builds = folder / "kb_index" / "builds"
    (builds / fingerprint["build_id"]).rename(builds / "candidate-build")
    (folder / "kb_index" / "fingerprint.json").write_text(json.dumps({**fingerprint, "build_id": "candidate-build"}))
    return int(release_id)


async def test_a_refused_release_needs_a_supervisor_and_a_reason(world: Any, redis: Any) -> None:
    rel = _releases(world, redis, RasaClient(f"http://127.0.0.1:{free_port()}"))
    blocked = _ready_release(world, "blocked")
    for actor, reason, status in ((EDITOR, "I am sure it is fine", 403), (SUPERVISOR, " too short ", 422)):
        with pytest.raises(ReleaseError) as refused:
            await rel.deploy(blocked, actor, reason)
        assert refused.value.status == status
    with pytest.raises(ReleaseError) as refused:
        await rel.deploy(999, SUPERVISOR)
    assert refused.value.status == 404
    failed = _ready_release(world, "failed")
    with pytest.raises(ReleaseError) as refused:
        await rel.deploy(failed, SUPERVISOR, "a long enough reason")
    assert refused.value.status == 409
    assert rel.row(blocked)["status"] == "blocked"
    assert await redis.get(keys.release_lock()) is None


async def test_a_worker_that_cannot_load_the_model_puts_the_index_back(world: Any, redis: Any) -> None:
    rel = _releases(world, redis, RasaClient(f"http://127.0.0.1:{free_port()}"))
    ready = _ready_release(world, "ready")
    before = read_current_fingerprint(world.index_dir)
    with pytest.raises(ReleaseError) as refused:
        await rel.deploy(ready, EDITOR)
    assert refused.value.status == 502 and "previous release is serving again" in str(refused.value)
    assert read_current_fingerprint(world.index_dir)["build_id"] == before["build_id"]
    assert rel.row(ready)["status"] == "ready"
    live = next(r for r in rel.list() if r["status"] == "live")
    assert releases.served_model(world.settings.releases_path) == releases.model_path(world.settings, live["id"])
    assert await redis.get(keys.release_lock()) is None


# --- the routes on the real gateway app (the inbox tests' ``ib`` fixture) ---------------------------------------

ROUTES = [("GET", "/api/workbench/releases"), ("POST", "/api/workbench/releases"),
          ("GET", "/api/workbench/releases/1"), ("GET", "/api/workbench/releases/1/log"),
          ("POST", "/api/workbench/releases/1/cancel"), ("POST", "/api/workbench/releases/1/deploy"),
          ("GET", "/api/workbench/canary"), ("POST", "/api/workbench/releases/1/canary"),
          ("POST", "/api/workbench/canary/promote"), ("POST", "/api/workbench/canary/abort")]


@pytest.mark.desk_settings(handoff_limit_report_reads="3/minute", handoff_limit_desk_writes="3/minute")
async def test_release_routes_need_an_editor_and_each_account_is_limited(ib) -> None:  # noqa: F811
    ann, editor = await ib.agent("ann", "agent"), await ib.agent("eddie", "editor")
    for method, path in ROUTES:
        body = {} if method == "POST" else None
        assert (await ib.http.request(method, path, json=body)).status_code == 401, path
    for method, path in ROUTES[:2]:
        r = await ib.http.request(method, path, json={} if method == "POST" else None, headers=ann.headers)
        assert r.status_code == 403, path
    # An editor polling a release, or asking to cancel/deploy one that does not exist: counted per account.
    reads = [(await ib.http.get("/api/workbench/releases/999/log", headers=editor.headers)).status_code
             for _ in range(5)]
    assert reads[:3] == [404] * 3 and set(reads[3:]) == {429}
    writes = [(await ib.http.post("/api/workbench/releases/999/cancel", headers=editor.headers)).status_code
              for _ in range(5)]
    assert writes[:3] == [404] * 3 and set(writes[3:]) == {429}
    # State changes only from the gateway's own origin.
    r = await ib.http.post("/api/workbench/releases", headers={**editor.headers, "Origin": "https://evil.example"})
    assert r.status_code == 403


# --- the canary (workbench/canary.py) with fake Rasa workers on real sockets ---------------------------------------

@pytest.fixture
async def fleet() -> Any:
    from tests.channels.fake_rasa import FakeRasa

    workers = [await FakeRasa(name).start() for name in ("live1", "live2", "canary")]
    client = RasaClient(f"{workers[0].url},{workers[1].url}", canary_url=workers[2].url)
    yield SimpleNamespace(workers=workers, client=client)
    await client.close()
    for w in workers:
        await w.stop()


async def test_a_canary_loads_the_candidate_only_on_the_canary_worker_and_promote_deploys_it(
        world: Any, redis: Any, fleet: Any) -> None:
    from conversations import canary as routing
    from workbench import canary

    rel = _releases(world, redis, fleet.client)
    ready = _ready_release(world, "ready")
    live1, live2, cand = fleet.workers
    try:
        state = await canary.start(rel, ready, EDITOR)
        running = state["running"]
        assert running["release_id"] == ready and running["share"] == 0.10 and running["started_by"] == "ed"
        model = str(releases.model_path(world.settings, ready))
        assert cand.model_file == model and live1.model_file == live2.model_file == "model.tar.gz"
        assert read_current_fingerprint(world.settings.canary_kb_path)["build_id"] == "candidate-build"
        assert read_current_fingerprint(world.index_dir)["build_id"] != "candidate-build", "live index unchanged"
        assert (canary.canary_link(world.settings.releases_path).resolve()
                == releases.release_dir(world.settings, ready).resolve())
        assert routing.parse(await redis.get(keys.canary())) == routing.Canary(ready, 0.10, running["started_at"])
        with pytest.raises(ReleaseError) as refused:
            await canary.start(rel, ready, EDITOR)
        assert refused.value.status == 409, "one canary at a time"

        state = await canary.promote(rel, EDITOR)
        assert state["running"] is None and await redis.get(keys.canary()) is None
        assert live1.model_file == live2.model_file == model and rel.row(ready)["status"] == "live"
        assert canary.last(rel)["outcome"] == "promoted"
        assert [h["action"] for h in rel.history()][:3] == ["canary_promoted", "deploy", "canary_start"]
    finally:
        await redis.delete(keys.canary())


async def test_a_canary_is_refused_or_ended_when_it_must_be(world: Any, redis: Any, fleet: Any) -> None:
    from workbench import canary

    rel = _releases(world, redis, fleet.client)
    blocked, ready = _ready_release(world, "blocked"), _ready_release(world, "ready")
    try:
        for actor, share, reason, status in ((EDITOR, None, "", 403), (SUPERVISOR, None, "short", 422),
                                             (EDITOR, 0.9, "", 422)):
            with pytest.raises(ReleaseError) as refused:
                await canary.start(rel, blocked if share is None else ready, actor, share, reason)
            assert refused.value.status == status
        with pytest.raises(ReleaseError) as refused:
            await canary.start(_releases(world, redis, RasaClient(fleet.workers[0].url)), ready, EDITOR)
        assert refused.value.status == 409 and "RASA_CANARY_URL" in str(refused.value)
        with pytest.raises(ReleaseError) as refused:
            await canary.abort(rel, EDITOR)
        assert refused.value.status == 409
        assert await redis.get(keys.canary()) is None and fleet.workers[2].model_file == "model.tar.gz"

        # A supervisor may try a refused release on a share, with a reason; an abort sends everyone back.
        state = await canary.start(rel, blocked, SUPERVISOR, 0.25, "the gate's story test is flaky, try it")
        assert state["running"]["override_reason"].startswith("the gate's")
        # Aborting needs no lease: it works while a retrain (or anything else) holds it.
        await redis.set(keys.release_lock(), "retrain:elsewhere", ex=60)
        await canary.abort(rel, EDITOR)
        await redis.delete(keys.release_lock())
        assert await redis.get(keys.canary()) is None and canary.last(rel)["outcome"] == "aborted"

        # A deploy of another release (a rollback) during a canary ends the canary first.
        await canary.start(rel, ready, EDITOR, 0.5)
        live = next(r for r in rel.list() if r["status"] == "live")
        other = _ready_release(world, "ready")
        await rel.deploy(other, EDITOR)
        assert await redis.get(keys.canary()) is None and canary.last(rel)["outcome"] == "replaced"
        assert rel.row(other)["status"] == "live" and rel.row(live["id"])["status"] == "retired"
        assert await redis.get(keys.release_lock()) is None
    finally:
        await redis.delete(keys.canary())


async def test_the_guard_stops_a_canary_that_is_significantly_worse_and_only_then(
        world: Any, redis: Any, fleet: Any, tmp_path: Path) -> None:
    """The guard reads the comparison from a real analytics record (analytics/canary.py): too few conversations or
    a difference within 3 standard errors leave the canary running; a candidate that falls back where the live
    release answers is stopped, in the releases log with the measure, by the loop every gateway runs."""
    from analytics import canary as comparison
    from tests.analytics.test_canary_compare import _conversation, _engine
    from workbench import canary
    from workbench.wiring import guard_canary

    rel = _releases(world, redis, fleet.client)
    ready = _ready_release(world, "ready")

    def record(canary_turns: list[list[str]], control_turns: list[list[str]]) -> Any:
        rows: list[dict[str, Any]] = []
        for i, turns in enumerate(canary_turns):
            _conversation(rows, f"c{i}", f"{ready}:canary", turns)
        for i, turns in enumerate(control_turns):
            _conversation(rows, f"k{i}", f"{ready}:control", turns)
        folder = tmp_path / f"record-{len(list(tmp_path.glob('record-*')))}"
        folder.mkdir()
        engine = _engine(folder, rows)
        return lambda release: asyncio.to_thread(comparison.compare, engine, release)

    try:
        await canary.start(rel, ready, EDITOR)
        # Not enough conversations yet, however bad: the page says so and the guard waits.
        assert await canary.guard(rel, record([["fallback"]] * 10, [["kb"]] * 10)) is None
        # Enough, worse at the page's 95 % but within 3 standard errors: an editor's call, not the guard's.
        mild = record([["kb"]] * 60 + [["fallback"]] * 20, [["kb"]] * 72 + [["fallback"]] * 8)
        cmp = await mild(ready)
        assert cmp["difference"]["answered"]["significant"] and canary.regression(cmp, 3.0) is None, cmp
        assert await canary.guard(rel, mild) is None
        assert canary.state(rel)["running"]["release_id"] == ready

        # Clearly worse: the loop every gateway runs stops it within its interval.
        bad = record([["fallback", "kb"]] * 40, [["kb", "kb"]] * 40)
        app = SimpleNamespace(state=SimpleNamespace(canary_comparison=bad, rasa=fleet.client,
                                                    workbench_releases=rel))
        loop = asyncio.create_task(guard_canary(app, world.settings.model_copy(update={"canary_guard_s": 0.05})))
        deadline = time.monotonic() + 10
        while await redis.get(keys.canary()) is not None:
            assert time.monotonic() < deadline, "the guard never stopped the canary"
            await asyncio.sleep(0.05)
        loop.cancel()
        await asyncio.wait([loop], timeout=5)
        assert loop.done()
        assert canary.state(rel)["running"] is None and canary.last(rel)["outcome"] == "auto_aborted"
        entry = rel.history()[0]
        assert entry["action"] == "canary_auto_aborted" and entry["actor"] == canary.GUARD
        assert entry["detail"]["measure"] == "answered" and entry["detail"]["z"] >= 3.0
        assert entry["detail"]["difference"] == -0.5
        assert fleet.workers[0].model_file == fleet.workers[1].model_file == "model.tar.gz", "live release unchanged"
    finally:
        await redis.delete(keys.canary())
