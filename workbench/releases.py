"""Releases of the bot: retrain from the editors' content, gate the candidate, deploy it, roll back (issue 14, 4-5).

A release is one trained Rasa model (intents, dialogue, the frustration and escalation data it persists) and one
knowledge-base index build, made from a snapshot of the content. Each release has a folder under
``WORKBENCH_RELEASES_DIR`` (``<id>/``) holding everything needed to serve it again:

    project/            the snapshot: config.yml, domain.yml, data/ (nlu/ from WORKBENCH_NLU_DIR, kb/ from
                        WORKBENCH_KB_DIR)
    kb_index/           its index (fingerprint.json + builds/<build id>/)
    model.tar.gz        its Rasa model
    train.log           every stage's output
    nlu.json, kb_*.json the gate's measurements

**Retrain** (one at a time across gateways: a Redis lease, ``conversations.keys.release_lock``) runs in the
background of the gateway that was asked, stage by stage, each a subprocess (``STAGES``): snapshot, ``python -m
kb_index build``, ``python -m rasa train`` (Rasa environment; Rasa's training cache ``WORKBENCH_RASA_CACHE_DIR`` is
shared, so what did not change is not trained again), ``python -m bot.nlu_eval`` (candidate and live model on the
held-out sets), ``python -m kb_index check`` (candidate and live index on the retrieval dev set). Progress (stage,
times) and a heartbeat go to the database every ``HEARTBEAT_S``; a cancel request is read there too, so any gateway
can cancel. A training whose heartbeat stopped (its gateway died) is reported failed; the live bot is never touched.
Then workbench/gate.py decides: ``ready`` (may be deployed) or ``blocked`` (only a supervisor, with a written reason,
can deploy it; the reason is logged).

**Deploy / roll back** (same lease): the release's index build is installed into the action servers' ``KB_INDEX_DIR``
(``kb_index.layout.install_build``: they reload it at their next question), then each Rasa worker of ``RASA_URL``
loads the model in turn with Rasa's model-replacement API (``PUT /model``; a worker answers with the old model until
the new one is loaded, so no message is lost or answered twice), then ``<releases dir>/live-model.tar.gz`` (the link
the stack starts the workers with, scripts/stack.py) points at it. If a worker refuses, the workers already switched
and the index go back to the previous release. Rolling back is deploying an earlier release again.

The running bot before any deploy is adopted as a ``setup`` release (its model and index copied into a release
folder), so it can be rolled back to. Release folders beyond the newest ``WORKBENCH_KEEP_RELEASES`` (never the live
one) are deleted; their rows stay, marked ``files_removed``.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Engine, insert, select, update

from bot.shared.paths import REPO_ROOT
from conversations import keys
from conversations.rasa_client import DRAIN_POLL_S, RasaClient, RasaError
from kb_index.layout import install_build, read_current_fingerprint
from workbench import db, gate
from workbench.settings import WorkbenchSettings

logger = logging.getLogger(__name__)

STAGES = ("snapshot", "kb_index", "rasa_train", "nlu_gate", "stories_gate", "kb_gate")
LIVE_LINK = "live"
HEARTBEAT_S = 2.0
STALE_S = 90.0  # a training whose heartbeat is older than this has stopped with its gateway
LOCK_TTL_S = 60
DRAIN_GRACE_S = 2.0  # after every gateway stopped sending to a draining worker: its last requests finish
LOG_TAIL_CHARS = 20000
# What the snapshot copies from the repository besides the editors' nlu/ and kb/ (what `rasa train` and the
# components it runs read, relative to their working directory).
PROJECT_FILES = ("config.yml", "domain.yml")
PROJECT_DATA_SKIP = ("nlu", "kb")
ACTIVE = ("training",)
DEPLOYABLE = ("ready", "blocked", "retired")


class ReleaseError(Exception):
    """A request the releases cannot carry out now; ``status`` is the HTTP status the API answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Cancelled(Exception):
    pass


def release_dir(settings: WorkbenchSettings, release_id: int) -> Path:
    return settings.releases_path / str(release_id)


def model_path(settings: WorkbenchSettings, release_id: int) -> Path:
    """A release's model file; its name is what Rasa's /status (and /metrics) report as the loaded model."""
    return release_dir(settings, release_id) / f"release-{release_id}.tar.gz"


def live_link(releases_path: Path) -> Path:
    """``<releases>/live``: a link to the folder of the model the Rasa workers serve. The stack starts (and restarts)
    every worker with ``--model <releases>/live`` (Rasa loads the one model file in that folder), so a worker the
    supervisor restarts after a deploy loads the deployed model."""
    return releases_path / LIVE_LINK


def setup_model() -> Path | None:
    """The model `make setup` trained last (models/CURRENT), or None."""
    marker = REPO_ROOT / "models" / "CURRENT"
    try:
        path = REPO_ROOT / "models" / marker.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return path if path.is_file() else None


def point_link(link: Path, target: Path) -> None:
    """Make ``link`` a symbolic link to ``target`` (atomic replace: a reader sees the old or the new target)."""
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    tmp.symlink_to(target.resolve())
    os.replace(tmp, link)


def served_model(releases_path: Path) -> Path | None:
    """The model file the live link leads to (resolved), or None."""
    try:
        folder = live_link(releases_path).resolve(strict=True)
    except OSError:
        return None
    models = sorted(folder.glob("*.tar.gz"))
    return models[0].resolve() if len(models) == 1 else None


def ensure_live_link(releases_path: Path) -> Path:
    """The path to start Rasa workers with (``<releases>/live``), made valid first: it keeps leading to the last
    deployed release unless `make setup` trained a newer model since (models/CURRENT written after the link was);
    then, or when there is none, it leads to ``<releases>/setup/``, which holds a link to the setup model (the
    workbench adopts that as a release at its first use). Raises FileNotFoundError without a setup model."""
    link = live_link(releases_path)
    marker = REPO_ROOT / "models" / "CURRENT"
    try:
        fresh = served_model(releases_path) is not None and link.lstat().st_mtime >= marker.stat().st_mtime
    except OSError:
        fresh = False
    if fresh:
        return link
    model = setup_model()
    if model is None:
        raise FileNotFoundError("No trained model: run `make setup` first (it trains when data or config changed).")
    folder = releases_path / "setup"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.tar.gz"):
        old.unlink()
    (folder / model.name).symlink_to(model.resolve())
    point_link(link, folder)
    return link


def story_results(files: list[Path], failed_file: Path) -> dict[str, Any]:
    """``rasa test core``'s outcome per conversation test: ``{"stories": {name: passed}}``, names as in ``files``
    (Rasa writes the failed ones to ``failed_test_stories.yml``, their names followed by the file they came from)."""
    names = [str(story["story"]) for path in files
             for story in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("stories") or []]
    try:
        failed_raw = yaml.safe_load(failed_file.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        failed_raw = {}
    failed = [str(story.get("story", "")) for story in failed_raw.get("stories") or []]
    return {"stories": {name: not any(f == name or f.startswith(name + " (") for f in failed) for name in names}}


def _hash_files(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _json(text: str | None, default: Any) -> Any:
    try:
        return json.loads(text) if text else default
    except ValueError:
        return default


class Releases:
    """The releases of one gateway process: the database rows, the training it runs, deploys and rollbacks."""

    def __init__(self, engine: Engine, settings: WorkbenchSettings, redis: Any, rasa: RasaClient | None,
                 kb_index_dir: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.settings = settings
        self.redis = redis
        self.rasa = rasa
        self.kb_index_dir = kb_index_dir
        self.clock = clock
        self.runner = f"{socket.gethostname()}-{os.getpid()}"
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------------------------------------ reading
    def row(self, release_id: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            found = conn.execute(select(db.releases).where(db.releases.c.id == release_id)).mappings().first()
        if found is None:
            raise ReleaseError(404, "No such release.")
        return self._public(dict(found), full=True)

    def list(self, limit: int = 30) -> list[dict[str, Any]]:
        self.reap_stale()
        with self.engine.connect() as conn:
            rows = conn.execute(select(db.releases).order_by(db.releases.c.id.desc()).limit(limit)).mappings().all()
        return [self._public(dict(r), full=False) for r in rows]

    def log_tail(self, release_id: int) -> str:
        self.row(release_id)
        path = release_dir(self.settings, release_id) / "train.log"
        try:
            with path.open("rb") as fh:
                fh.seek(0, os.SEEK_END)
                size = fh.tell()
                fh.seek(max(0, size - LOG_TAIL_CHARS))
                return fh.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def history(self, limit: int = 100) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(db.release_log).order_by(db.release_log.c.id.desc()).limit(limit)).mappings()
            return [{**dict(r), "detail": _json(r["detail"], {})} for r in rows]

    def _public(self, r: dict[str, Any], *, full: bool) -> dict[str, Any]:
        stages = _json(r["stages"], [])
        now = self.clock()
        out = {k: r[k] for k in ("id", "kind", "status", "stage", "created_by", "created_at", "finished_at",
                                 "model_name", "kb_build", "gate", "error", "deployed_at", "deployed_by",
                                 "override_by", "override_reason", "files_removed", "cancel_requested")}
        out["stages"] = [{**s, "seconds": round((s.get("finished_at") or now) - s["started_at"], 1)}
                         for s in stages]
        out["elapsed_s"] = round((r["finished_at"] or now) - r["created_at"], 1)
        out["content"] = _json(r["content"], {})
        if full:
            out["report"] = _json(r["report"], None)
        else:
            report = _json(r["report"], None) or {}
            out["summary"] = [row for check in gate.CHECKS for row in (report.get(check) or {}).get("rows", [])]
        return out

    def _cancel_requested(self, release_id: int) -> bool:
        with self.engine.connect() as conn:
            return bool(conn.execute(select(db.releases.c.cancel_requested).where(
                db.releases.c.id == release_id)).scalar())

    def _update(self, release_id: int, **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(db.releases).where(db.releases.c.id == release_id).values(**values))

    def _log(self, release_id: int, actor: Any, action: str, detail: dict[str, Any] | None = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(db.release_log).values(
                release_id=release_id, ts=self.clock(), actor=getattr(actor, "username", str(actor)),
                role=getattr(actor, "role", ""), action=action,
                detail=json.dumps(detail or {}, ensure_ascii=False)))

    def reap_stale(self) -> None:
        """Trainings whose runner stopped writing (its gateway died) are failed; the live bot never changed."""
        cutoff = self.clock() - STALE_S
        with self.engine.begin() as conn:
            conn.execute(update(db.releases).where(
                db.releases.c.status.in_(ACTIVE), db.releases.c.heartbeat_at < cutoff).values(
                status="failed", error="The gateway running this training stopped.", finished_at=self.clock()))

    # ------------------------------------------------------------------------------------------------ the lease
    async def _acquire(self, holder: str) -> str:
        token = f"{holder}:{self.runner}:{time.monotonic_ns()}"
        if not await self.redis.set(keys.release_lock(), token, nx=True, ex=LOCK_TTL_S):
            raise ReleaseError(409, "Another retrain, deploy or rollback is running; try again when it has ended.")
        return token

    async def _refresh(self, token: str) -> None:
        if await self.redis.get(keys.release_lock()) in (token, token.encode()):
            await self.redis.expire(keys.release_lock(), LOCK_TTL_S)

    async def _release(self, token: str) -> None:
        # Only our own lease: compare and delete in one step.
        await self.redis.eval("if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) "
                              "end return 0", 1, keys.release_lock(), token)

    # ------------------------------------------------------------------------------------------------ adoption
    def adopt_setup(self) -> dict[str, Any] | None:
        """Make sure the model and index the bot serves now are a release (the ``setup`` one when no deploy made
        them), marked live: so there is a "current" to roll back to. Called under the lease. Returns the live row."""
        model = served_model(self.settings.releases_path)
        fingerprint = read_current_fingerprint(self.kb_index_dir)
        with self.engine.connect() as conn:
            live = conn.execute(select(db.releases).where(db.releases.c.status == "live")).mappings().first()
        if model is None or fingerprint is None:
            return dict(live) if live else None
        if (live is not None and model == model_path(self.settings, live["id"]).resolve()
                and live["kb_build"] == fingerprint.get("build_id")):
            return dict(live)
        # Not a release yet (first use, or `make setup` trained or indexed since the last deploy): adopt it.
        with self.engine.begin() as conn:
            conn.execute(update(db.releases).where(db.releases.c.status == "live").values(status="retired"))
            release_id = conn.execute(insert(db.releases).values(
                kind="setup", status="live", stage="", stages="[]", created_by="setup", created_at=self.clock(),
                finished_at=self.clock(), kb_build=str(fingerprint.get("build_id")),
                content=json.dumps({"model_file": model.name}), deployed_at=self.clock(), deployed_by="setup",
            )).inserted_primary_key[0]
        folder = release_dir(self.settings, release_id)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        shutil.copy2(model, model_path(self.settings, release_id))
        install_build(self.kb_index_dir, folder / "kb_index")  # the release keeps its own copy
        point_link(live_link(self.settings.releases_path), folder)
        self._update(release_id, model_name=model_path(self.settings, release_id).name)
        logger.info("adopted the running model %s and index %s as release %s", model.name,
                    fingerprint.get("build_id"), release_id)
        with self.engine.connect() as conn:
            return dict(conn.execute(select(db.releases).where(db.releases.c.id == release_id)).mappings().one())

    # ------------------------------------------------------------------------------------------------ training
    async def start_training(self, actor: Any) -> dict[str, Any]:
        await asyncio.to_thread(self.reap_stale)
        token = await self._acquire("retrain")
        try:
            await asyncio.to_thread(self.adopt_setup)
            now = self.clock()
            with self.engine.begin() as conn:
                release_id = conn.execute(insert(db.releases).values(
                    kind="retrain", status="training", stage=STAGES[0], stages="[]", created_by=actor.username,
                    created_at=now, runner=self.runner, heartbeat_at=now)).inserted_primary_key[0]
            self._log(release_id, actor, "retrain")
        except BaseException:
            await self._release(token)
            raise
        self._task = asyncio.create_task(self._train(release_id, token))
        return self.row(release_id)

    async def cancel(self, release_id: int, actor: Any) -> dict[str, Any]:
        row = self.row(release_id)
        if row["status"] not in ACTIVE:
            raise ReleaseError(409, "This release is not training.")
        self._update(release_id, cancel_requested=True)
        self._log(release_id, actor, "cancel")
        return self.row(release_id)

    async def _train(self, release_id: int, token: str) -> None:
        folder = release_dir(self.settings, release_id)
        stages: list[dict[str, Any]] = []
        status, error = "failed", None
        try:
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            log = folder / "train.log"
            for name in STAGES:
                stages.append({"name": name, "started_at": self.clock(), "finished_at": None, "ok": None})
                self._update(release_id, stage=name, stages=json.dumps(stages), heartbeat_at=self.clock())
                with log.open("a", encoding="utf-8") as fh:
                    fh.write(f"\n=== {name} ===\n")
                await getattr(self, f"_stage_{name}")(release_id, folder, log, token)
                stages[-1].update(finished_at=self.clock(), ok=True)
                self._update(release_id, stages=json.dumps(stages), heartbeat_at=self.clock())
            report = await asyncio.to_thread(self._verdict, folder)
            status = "ready" if report["passed"] else "blocked"
            self._update(release_id, report=json.dumps(report, ensure_ascii=False),
                         gate="pass" if report["passed"] else "fail",
                         model_name=model_path(self.settings, release_id).name,
                         kb_build=str((read_current_fingerprint(folder / "kb_index") or {}).get("build_id", "")))
        except Cancelled:
            status, error = "cancelled", "Cancelled; the live bot did not change."
        except asyncio.CancelledError:
            status, error = "failed", "The gateway stopped during the training; the live bot did not change."
            raise
        except Exception as exc:  # noqa: BLE001 - any failure is the release's, never the gateway's
            logger.exception("release %s failed", release_id)
            error = f"{exc}"[:2000] or exc.__class__.__name__
        finally:
            if stages and stages[-1]["finished_at"] is None:
                stages[-1].update(finished_at=self.clock(), ok=False)
            self._update(release_id, status=status, error=error, stages=json.dumps(stages), stage="",
                         finished_at=self.clock())
            with contextlib.suppress(Exception):
                await self._release(token)
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self._prune)

    async def _run(self, release_id: int, cmd: list[str], log: Path, token: str, *, cwd: Path,
                   env: dict[str, str] | None = None) -> None:
        """One stage's subprocess (its own process group), its output appended to the log; heartbeat, lease and
        cancel checks while it runs; killed on cancel, timeout or gateway shutdown."""
        deadline = time.monotonic() + self.settings.train_timeout_s
        with log.open("ab") as out:
            proc = await asyncio.create_subprocess_exec(*cmd, cwd=str(cwd), env={**os.environ, **(env or {})},
                                                        stdout=out, stderr=asyncio.subprocess.STDOUT,
                                                        stdin=asyncio.subprocess.DEVNULL, start_new_session=True)
        try:
            while True:
                try:
                    await asyncio.wait_for(proc.wait(), timeout=HEARTBEAT_S)
                    break
                except asyncio.TimeoutError:
                    pass
                self._update(release_id, heartbeat_at=self.clock())
                await self._refresh(token)
                if self._cancel_requested(release_id):
                    raise Cancelled()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{cmd[2] if len(cmd) > 2 else cmd[0]} took longer than "
                                       f"WORKBENCH_TRAIN_TIMEOUT_S ({self.settings.train_timeout_s} s)")
        finally:
            if proc.returncode is None:
                await _kill(proc)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[1:4])} failed (exit {proc.returncode}); see the log")

    # The stages, in STAGES order.
    async def _stage_snapshot(self, release_id: int, folder: Path, log: Path, token: str) -> None:
        content = await asyncio.to_thread(self._snapshot, folder / "project")
        self._update(release_id, content=json.dumps(content, ensure_ascii=False))
        with log.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(content, ensure_ascii=False) + "\n")

    def _snapshot(self, project: Path) -> dict[str, Any]:
        project.mkdir(parents=True)
        for name in PROJECT_FILES:
            shutil.copy2(REPO_ROOT / name, project / name)
        data = project / "data"
        shutil.copytree(REPO_ROOT / "data", data, ignore=lambda d, names: [n for n in names if Path(d) ==
                                                                           REPO_ROOT / "data" and
                                                                           n in PROJECT_DATA_SKIP])
        shutil.copytree(self.settings.nlu_path, data / "nlu")
        shutil.copytree(self.settings.kb_path, data / "kb")
        from workbench.nlu import count_examples  # the NLU files' reader
        return {"examples": count_examples(data / "nlu"),
                "articles": sum(1 for _ in (data / "kb").glob("*.yml"))}

    async def _stage_kb_index(self, release_id: int, folder: Path, log: Path, token: str) -> None:
        """The candidate's index starts as a copy of the live one: when the articles did not change, ``kb_index
        build`` finds it up to date (same content and model) and the release keeps the live build."""
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(install_build, self.kb_index_dir, folder / "kb_index")
        await self._run(release_id, [self.settings.app_python, "-m", "kb_index", "build"], log, token, cwd=REPO_ROOT,
                        env={"KB_DATA_DIR": str(folder / "project" / "data" / "kb"),
                             "KB_INDEX_DIR": str(folder / "kb_index"), "PYTHONPATH": str(REPO_ROOT)})

    async def _stage_rasa_train(self, release_id: int, folder: Path, log: Path, token: str) -> None:
        await self._run(release_id, [
            str(self.settings.rasa_python_path), "-m", "rasa", "train", "--fixed-model-name", f"release-{release_id}",
            "--out",
            str(folder), "--config", "config.yml", "--domain", "domain.yml", "--data", "data/nlu", "data/dialogue"],
            log, token, cwd=folder / "project",
            env={"PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "2",
                 "RASA_CACHE_DIRECTORY": str(self.settings.rasa_cache_path)})
        if not model_path(self.settings, release_id).is_file():
            raise RuntimeError("rasa train ended without a model file")

    def _heldout_files(self) -> list[Path]:
        return sorted(self.settings.heldout_path.glob("heldout_*.yml"))

    async def _measured(self, release_id: int, log: Path, token: str, kind: str, subject: str,
                        files: list[Path], cmd: list[str], env: dict[str, str], *,
                        convert: Callable[[Path], Any] = lambda out: _json(out.read_text(encoding="utf-8"), None)
                        ) -> Any:
        """One measurement of ``subject`` (a model file or an index build) on ``files``, kept in
        ``<releases>/measured/``: a release measured as a candidate is not measured again once it is live. ``cmd``
        is run with ``{out}`` replaced by a scratch path; ``convert`` reads its result."""
        cache = self._measurement(kind, subject, files)
        if not cache.is_file():
            scratch = cache.with_name(f".{cache.stem}.{release_id}")
            shutil.rmtree(scratch, ignore_errors=True)
            with contextlib.suppress(FileNotFoundError):
                scratch.unlink()
            await self._run(release_id, [part.replace("{out}", str(scratch)) for part in cmd], log, token,
                            cwd=REPO_ROOT, env={"PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "2", **env})
            result = convert(scratch)
            tmp = cache.with_suffix(".tmp")
            tmp.write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")
            tmp.replace(cache)
            if scratch.is_dir():
                shutil.rmtree(scratch, ignore_errors=True)
            else:
                scratch.unlink(missing_ok=True)
        return _json(cache.read_text(encoding="utf-8"), None)

    async def _compare_models(self, release_id: int, folder: Path, log: Path, token: str, kind: str,
                              files: list[Path], cmd: list[str], convert: Callable[[Path], Any] | None = None
                              ) -> None:
        """``<kind>_candidate.json`` / ``<kind>_current.json``: the candidate model and the live one measured by
        ``cmd`` (``{model}`` and ``{out}`` filled in)."""
        live = served_model(self.settings.releases_path) or setup_model()

        async def measure(role: str, model: Path | None) -> None:
            result = None
            if model is not None:
                result = await self._measured(release_id, log, token, kind, str(model), files,
                                              [part.replace("{model}", str(model)) for part in cmd], {},
                                              **({"convert": convert} if convert else {}))
            (folder / f"{kind}_{role}.json").write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")
        await _together(measure("candidate", model_path(self.settings, release_id)), measure("current", live))

    async def _stage_nlu_gate(self, release_id: int, folder: Path, log: Path, token: str) -> None:
        files = self._heldout_files()
        if not files:
            raise RuntimeError(f"no held-out files (heldout_*.yml) in {self.settings.heldout_path}")

        def read(out: Path) -> Any:
            models = _json(out.read_text(encoding="utf-8"), {}).get("models", {})
            return next(iter(models.values()), None)
        await self._compare_models(release_id, folder, log, token, "nlu", files, [
            str(self.settings.rasa_python_path), "-m", "bot.nlu_eval", "--model", "{model}", "--out", "{out}",
            *map(str, files)], read)

    async def _stage_stories_gate(self, release_id: int, folder: Path, log: Path, token: str) -> None:
        """The conversation tests (``rasa test core`` on WORKBENCH_GATE_STORIES_DIR) for the candidate and the live
        model: which stories each gets wrong."""
        files = sorted(self.settings.gate_stories_path.glob("*.yml"))
        if not files:
            raise RuntimeError(f"no conversation tests (*.yml) in {self.settings.gate_stories_path}")
        await self._compare_models(release_id, folder, log, token, "stories", files, [
            str(self.settings.rasa_python_path), "-m", "rasa", "test", "core", "--model", "{model}", "--stories",
            str(self.settings.gate_stories_path), "--out", "{out}", "--no-plot"],
            lambda out: story_results(files, out / "failed_test_stories.yml"))

    async def _stage_kb_gate(self, release_id: int, folder: Path, log: Path, token: str) -> None:
        devset = self.settings.gate_kb_devset_path
        candidate_dir = folder / "kb_index"
        builds = {role: (read_current_fingerprint(index_dir) or {}).get("build_id")
                  for role, index_dir in (("candidate", candidate_dir), ("current", self.kb_index_dir))}

        async def measure(role: str, index_dir: Path) -> None:
            result = None
            if builds[role]:
                result = await self._measured(release_id, log, token, "kb", str(builds[role]), [devset], [
                    self.settings.app_python, "-m", "kb_index", "check", "--devset", str(devset), "--out", "{out}"],
                    {"KB_INDEX_DIR": str(index_dir)})
            (folder / f"kb_{role}.json").write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")
        if builds["candidate"] == builds["current"]:  # articles unchanged: the same build, measured once
            await measure("candidate", candidate_dir)
            await measure("current", self.kb_index_dir)
        else:
            await _together(measure("candidate", candidate_dir), measure("current", self.kb_index_dir))

    def _measurement(self, kind: str, name: str, files: list[Path]) -> Path:
        """Where a measurement is kept, keyed by what it measured and on what."""
        directory = self.settings.releases_path / "measured"
        directory.mkdir(parents=True, exist_ok=True)
        return directory / f"{kind}-{hashlib.sha256(name.encode()).hexdigest()[:16]}-{_hash_files(files)}.json"
    def _verdict(self, folder: Path) -> dict[str, Any]:
        def read(name: str) -> Any:
            return _json((folder / name).read_text(encoding="utf-8"), None)
        tolerance = self.settings.gate_tolerance
        return gate.verdict(gate.compare_nlu(read("nlu_current.json"), read("nlu_candidate.json"), tolerance),
                            gate.compare_kb(read("kb_current.json"), read("kb_candidate.json"), tolerance),
                            tolerance,
                            stories=gate.compare_stories(read("stories_current.json"),
                                                         read("stories_candidate.json")))

    # ------------------------------------------------------------------------------------------------ deploying
    async def deploy(self, release_id: int, actor: Any, reason: str = "") -> dict[str, Any]:
        """Serve release ``release_id``: its index, then its model on every Rasa worker in turn (logged as a
        ``rollback`` when it was live before, else ``deploy``). A ``blocked`` release needs a supervisor and a written
        reason. Raises ReleaseError."""
        if self.rasa is None:
            raise ReleaseError(503, "The gateway has no Rasa client.")
        self.row(release_id)  # 404 before taking the lease
        token = await self._acquire("deploy")
        try:
            previous = await asyncio.to_thread(self.adopt_setup)
            row = self.row(release_id)
            self._check_deployable(row, actor, reason)
            action = "rollback" if row["status"] == "retired" else "deploy"
            running = await asyncio.to_thread(self.running_canary)
            if running is not None and running["release_id"] != release_id:
                # Another release goes live (a rollback during a canary): the canary ends first, so no customer is
                # left on the candidate.
                await self.end_canary(actor, "replaced")
            await self._switch(release_id, previous, token)
            now = self.clock()
            with self.engine.begin() as conn:
                conn.execute(update(db.releases).where(db.releases.c.status == "live").values(status="retired"))
                values: dict[str, Any] = {"status": "live", "deployed_at": now, "deployed_by": actor.username}
                if row["status"] == "blocked":
                    values.update(override_by=actor.username, override_reason=reason.strip()[:2000])
                conn.execute(update(db.releases).where(db.releases.c.id == release_id).values(**values))
            self._log(release_id, actor, action, {
                "from": previous["id"] if previous else None, "gate": row["gate"],
                **({"override_reason": reason.strip()[:2000]} if row["status"] == "blocked" else {})})
            if running is not None and running["release_id"] == release_id:
                await self.end_canary(actor, "promoted")  # its conversations go on with the same model, now live
        finally:
            await self._release(token)
        return self.row(release_id)

    def _check_deployable(self, row: dict[str, Any], actor: Any, reason: str) -> None:
        if row["status"] == "live":
            raise ReleaseError(409, "This release is already live.")
        if row["status"] not in DEPLOYABLE:
            raise ReleaseError(409, f"A release that is {row['status']} cannot be deployed.")
        if row["files_removed"]:
            raise ReleaseError(409, "This release's files were removed (only the newest releases are kept).")
        if row["status"] == "blocked":
            if getattr(actor, "role", "") != "supervisor":
                raise ReleaseError(403, "The gate refused this release: only a supervisor can deploy it, with a "
                                        "reason.")
            if len(reason.strip()) < 10:
                raise ReleaseError(422, "Deploying over the gate needs a written reason (10 characters or more).")
        folder = release_dir(self.settings, row["id"])
        if not model_path(self.settings, row["id"]).is_file() or read_current_fingerprint(folder / "kb_index") is None:
            raise ReleaseError(409, "This release's model or index is missing on disk.")

    async def _switch(self, release_id: int, previous: dict[str, Any] | None, token: str) -> None:
        """Index, then each worker's model, then the live link; on a worker's failure everything goes back."""
        assert self.rasa is not None
        folder = release_dir(self.settings, release_id)
        model = model_path(self.settings, release_id)
        await asyncio.to_thread(install_build, folder / "kb_index", self.kb_index_dir)
        switched: list[int] = []
        try:
            for index in range(self.rasa.workers):
                await self._drain(index)
                try:
                    await self.rasa.replace_model(index, str(model), timeout_s=self.settings.model_load_timeout_s)
                finally:
                    await self._undrain()
                switched.append(index)
                await self._refresh(token)
        except RasaError as exc:
            logger.error("deploy of release %s failed at Rasa worker %d: %s; switching back", release_id,
                         len(switched) + 1, exc)
            if previous is not None:
                old = release_dir(self.settings, previous["id"])
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(install_build, old / "kb_index", self.kb_index_dir)
                for index in switched:
                    with contextlib.suppress(RasaError):
                        await self._drain(index)
                        try:
                            await self.rasa.replace_model(index, str(model_path(self.settings, previous["id"])),
                                                          timeout_s=self.settings.model_load_timeout_s)
                        finally:
                            await self._undrain()
            raise ReleaseError(502, f"{exc}; the previous release is serving again.") from exc
        point_link(live_link(self.settings.releases_path), folder)

    async def _drain(self, index: int) -> None:
        """Take worker ``index`` out of the rotation before it loads a model (it answers nothing for the load's
        duration, ~30 s): every gateway reads the key within DRAIN_POLL_S; then this gateway's requests to it end."""
        assert self.rasa is not None
        url = self.rasa.urls[index]
        await self.redis.set(keys.rasa_draining(), json.dumps([url]), ex=int(self.settings.model_load_timeout_s) + 60)
        self.rasa.set_draining({url})
        await asyncio.sleep(DRAIN_POLL_S * 2 + DRAIN_GRACE_S)
        deadline = time.monotonic() + 30
        while self.rasa.inflight(index) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)

    async def _undrain(self) -> None:
        assert self.rasa is not None
        await self.redis.delete(keys.rasa_draining())
        self.rasa.set_draining(set())

    # ------------------------------------------------------------------------------------------------ the canary
    def running_canary(self) -> dict[str, Any] | None:
        """The canary that runs now (workbench/canary.py starts it), or None."""
        with self.engine.connect() as conn:
            found = conn.execute(select(db.canaries).where(db.canaries.c.ended_at.is_(None)).order_by(
                db.canaries.c.id.desc())).mappings().first()
        return dict(found) if found else None

    async def end_canary(self, actor: Any, outcome: str, detail: dict[str, Any] | None = None
                         ) -> dict[str, Any] | None:
        """Stop routing conversations to the candidate (every gateway within DRAIN_POLL_S) and record how the
        canary ended: promoted, aborted, replaced, auto_aborted (the guard: ``detail`` says why). Its conversations
        go on with the live release."""
        running = await asyncio.to_thread(self.running_canary)
        await self.redis.delete(keys.canary())
        if self.rasa is not None:
            self.rasa.set_canary(None)
        if running is None:
            return None
        with self.engine.begin() as conn:
            ended = conn.execute(update(db.canaries).where(
                db.canaries.c.id == running["id"], db.canaries.c.ended_at.is_(None)).values(
                ended_at=self.clock(), ended_by=getattr(actor, "username", str(actor)), outcome=outcome)).rowcount
        if not ended:  # another gateway ended it at the same moment (an abort takes no lease)
            return None
        self._log(running["release_id"], actor, f"canary_{outcome}", {"share": running["share"], **(detail or {})})
        return running

    # ------------------------------------------------------------------------------------------------ housekeeping
    def _prune(self) -> None:
        """Delete the folders of releases beyond the newest WORKBENCH_KEEP_RELEASES finished ones (never the live
        one, never a training)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(db.releases.c.id, db.releases.c.status).where(
                db.releases.c.files_removed.is_(False)).order_by(db.releases.c.id.desc())).all()
        kept = 0
        canary = self.running_canary()
        for release_id, status in rows:
            if status in ("live", "training") or (canary is not None and canary["release_id"] == release_id):
                continue
            kept += 1
            if kept > self.settings.keep_releases:
                shutil.rmtree(release_dir(self.settings, release_id), ignore_errors=True)
                self._update(release_id, files_removed=True)

    async def close(self) -> None:
        """Gateway shutdown: a running training's subprocess is killed (the release is failed by its task)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task


async def _together(*coros: Any) -> None:
    """Run the candidate's and the live release's measurements at the same time (two cores); when one fails or the
    training is cancelled, the other is cancelled too (its subprocess killed)."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def _kill(proc: asyncio.subprocess.Process) -> None:
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            await asyncio.wait_for(proc.wait(), timeout=wait)
            return
        except asyncio.TimeoutError:
            continue


