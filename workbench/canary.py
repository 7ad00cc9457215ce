"""The canary (the seeds' 10 % gray release, 灰度发布): a candidate release answers a share of new conversations
before it answers everyone.

Start (editors and supervisors; a release the gate refused: supervisors, with a written reason, as for a deploy):
under the releases lease, the candidate's index goes to the canary action server's folder
(``WORKBENCH_CANARY_KB_DIR``; that action server reloads it at its next request), its model into the canary Rasa
worker (``RASA_CANARY_URL``, Rasa's ``PUT /model``; no customer talks to that worker yet; the ``<releases>/canary``
link follows, so a restarted canary worker loads it again), then the canary is written
to ``conversations.keys.canary()``: from then on every gateway sends the chosen share of the conversations that start
to the canary worker, sticky per conversation (conversations/canary.py). Conversations that started earlier stay on
the live release.

While it runs, the workbench compares the two arms from the managers' record (analytics/canary.py: answered rate,
fallback rate, handoff rate, CSAT, each with its count and a 95 % interval, and whether the difference is significant
yet). It ends in one of three ways:

* **promote**: a normal deploy of the candidate to every live worker (workbench/releases.py ``deploy``), then the
  routing stops - the canary's conversations go on with the same model, now live;
* **abort**: the routing stops; the canary's conversations go on with the live release;
* **replaced**: an editor deploys or rolls back to another release meanwhile - the canary is aborted first;
* **auto_aborted**: the guard (every gateway, every WORKBENCH_CANARY_GUARD_S) found the canary worse than the live
  release on a measure by at least WORKBENCH_CANARY_GUARD_Z standard errors of the difference, with enough data on
  both sides (``regression``). The page's 95 % verdicts are for an editor's judgement; the guard's bar is higher
  (3 standard errors: about 0.13 % one-sided per look and measure) because it looks again every minute and acts on
  its own. Stopping is the safe side: an editor can start the canary again.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select

from conversations import canary as routing
from conversations import keys
from conversations.rasa_client import RasaError
from kb_index.layout import install_build, read_current_fingerprint
from workbench import db
from workbench.releases import ReleaseError, Releases, live_link, model_path, point_link, release_dir

CANARY_LINK = "canary"
GUARD = "canary guard"  # the actor of an automatic abort in the releases log
WORSE = {"answered": -1.0, "fallback": 1.0, "handoff": 1.0, "csat": -1.0}  # the sign of a regression, per measure
logger = logging.getLogger(__name__)


def canary_link(releases_path: Path) -> Path:
    """``<releases>/canary``: the folder of the model the canary worker serves; the stack starts (and restarts) it
    with ``--model <releases>/canary``, so a restarted canary worker serves the candidate again."""
    return releases_path / CANARY_LINK


def ensure_canary(releases_path: Path, live_index: Path, canary_index: Path) -> Path:
    """What the canary worker starts with, made valid first: the canary link (to the live release's folder when it
    leads nowhere) and an index in the canary action server's folder (a copy of the live one when there is none).
    Call after ``ensure_live_link``."""
    link = canary_link(releases_path)
    if not link.resolve().is_dir() or not any(link.resolve().glob("*.tar.gz")):
        point_link(link, live_link(releases_path).resolve())
    if read_current_fingerprint(canary_index) is None and read_current_fingerprint(live_index) is not None:
        install_build(live_index, canary_index)
    return link


async def start(releases: Releases, release_id: int, actor: Any, share: float | None = None,
                reason: str = "") -> dict[str, Any]:
    """Start a canary of ``release_id`` with ``share`` of new conversations (default WORKBENCH_CANARY_SHARE).
    Raises ReleaseError (404 no such release, 409 not possible now, 403/422 a refused release without a supervisor's
    reason, 502 the canary worker did not load the model)."""
    rasa = releases.rasa
    if rasa is None or rasa.canary_index is None:
        raise ReleaseError(409, "No canary worker is configured (RASA_CANARY_URL): deploy directly, or add one.")
    share = releases.settings.canary_share if share is None else share
    if not 0.01 <= share <= 0.5:
        raise ReleaseError(422, "The canary's share must be between 1 % and 50 % of new conversations.")
    releases.row(release_id)
    token = await releases._acquire("canary")
    try:
        live = await asyncio.to_thread(releases.adopt_setup)
        if await asyncio.to_thread(releases.running_canary) is not None:
            raise ReleaseError(409, "A canary is already running: promote or abort it first.")
        row = releases.row(release_id)
        if row["status"] in ("live", "retired"):
            raise ReleaseError(409, "A canary tries a new release; this one has been live (roll back to it instead).")
        releases._check_deployable(row, actor, reason)
        folder = release_dir(releases.settings, release_id)
        await asyncio.to_thread(install_build, folder / "kb_index", releases.settings.canary_kb_path)
        point_link(canary_link(releases.settings.releases_path), folder)
        try:
            await rasa.replace_model(rasa.canary_index, str(model_path(releases.settings, release_id)),
                                     timeout_s=releases.settings.model_load_timeout_s)
        except RasaError as exc:
            raise ReleaseError(502, f"The canary worker did not load the model: {exc}") from exc
        await releases._refresh(token)
        now = releases.clock()
        running = routing.Canary(release_id, share, now)
        override = reason.strip()[:2000] if row["status"] == "blocked" else None
        # The key first, then the record: an abort (which takes no lease) in between finds no canary and leaves the
        # key to this start; the other order could leave routing running with its record already ended.
        await releases.redis.set(keys.canary(), running.to_json())
        try:
            with releases.engine.begin() as conn:
                conn.execute(insert(db.canaries).values(
                    release_id=release_id, share=share, started_at=now, started_by=actor.username,
                    live_release_id=live["id"] if live else None, override_reason=override))
        except BaseException:
            await releases.redis.delete(keys.canary())
            raise
        rasa.set_canary(running)
        releases._log(release_id, actor, "canary_start", {"share": share, "live": live["id"] if live else None,
                                                          **({"override_reason": override} if override else {})})
    finally:
        await releases._release(token)
    return await asyncio.to_thread(state, releases)


async def abort(releases: Releases, actor: Any) -> dict[str, Any]:
    """Stop the running canary (its conversations go on with the live release). 409 when none runs. Takes no lease:
    stopping a candidate that misbehaves must work while a retrain holds it."""
    if await releases.end_canary(actor, "aborted") is None:
        raise ReleaseError(409, "No canary is running.")
    return await asyncio.to_thread(state, releases)


async def promote(releases: Releases, actor: Any, reason: str = "") -> dict[str, Any]:
    """Deploy the canary's release to every worker (a normal deploy; the canary ends when it is live)."""
    running = await asyncio.to_thread(releases.running_canary)
    if running is None:
        raise ReleaseError(409, "No canary is running.")
    await releases.deploy(running["release_id"], actor, reason)
    return await asyncio.to_thread(state, releases)


def last(releases: Releases) -> dict[str, Any] | None:
    """The newest canary, running or ended (None: there never was one)."""
    with releases.engine.connect() as conn:
        found = conn.execute(select(db.canaries).order_by(db.canaries.c.id.desc())).mappings().first()
    return dict(found) if found else None


def state(releases: Releases) -> dict[str, Any]:
    """The running canary (None) and whether this gateway can run one."""
    rasa = releases.rasa
    return {"running": releases.running_canary(), "available": bool(rasa is not None and rasa.canary_index is not None),
            "default_share": releases.settings.canary_share}


def regression(comparison: dict[str, Any], z: float) -> dict[str, Any] | None:
    """The first measure on which the canary is worse than the control by at least ``z`` standard errors of the
    difference, with enough data on both sides (analytics/canary.py ``difference``); None when there is none."""
    for measure, sign in WORSE.items():
        d = (comparison.get("difference") or {}).get(measure) or {}
        if d.get("enough") and d.get("se") and d.get("value") is not None and sign * d["value"] / d["se"] >= z:
            return {"measure": measure, "difference": round(d["value"], 4), "z": round(sign * d["value"] / d["se"], 2)}
    return None


async def guard(releases: Releases, compare: Callable[[int], Awaitable[dict[str, Any] | None]]
                ) -> dict[str, Any] | None:
    """One look of the canary guard: the running canary is ended ("auto_aborted", audited with the measure) when
    ``regression`` finds it worse; returns what was found when this call ended it."""
    z = releases.settings.canary_guard_z
    running = await asyncio.to_thread(releases.running_canary) if z > 0 else None
    if running is None:
        return None
    comparison = await compare(int(running["release_id"]))
    found = regression(comparison, z) if comparison else None
    if found is None or await releases.end_canary(GUARD, "auto_aborted", found) is None:
        return None
    logger.warning("canary of release %s stopped automatically: %s", running["release_id"], found)
    return found
