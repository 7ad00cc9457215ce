"""The real launcher (`make run` = scripts/stack.py) as a user runs it: stopping never leaves a process behind.

Each test starts its own launcher on free ports with a throw-away var dir and one Rasa worker (the shared `stack`
fixture is not used: these tests kill the launcher).
"""
from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import redis

from bot.shared.paths import REPO_ROOT
from tests.processes import alive

pytestmark = pytest.mark.e2e
ROOT = REPO_ROOT
APP_PY = ROOT / ".venv-app" / "bin" / "python"



def _wait_gone(pids: set[int], timeout_s: float) -> set[int]:
    deadline = time.monotonic() + timeout_s
    while alive(pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive(pids)


def _descendants(pid: int) -> set[int]:
    return {p.pid for p in psutil.Process(pid).children(recursive=True)}


def _launch(var_dir: Path, **popen: object) -> subprocess.Popen:
    env = {**os.environ, "RASA_WORKERS": "1", "PYTHONPATH": str(ROOT)}
    env.pop("REDIS_URL", None)
    return subprocess.Popen([str(APP_PY), str(ROOT / "scripts" / "stack.py"), "--free-ports", "--var-dir",
                             str(var_dir)], cwd=ROOT, env=env, **popen)  # type: ignore[call-overload]


@pytest.fixture()
def cleanup() -> Iterator[set[int]]:
    """Pids to kill whatever the test's outcome (so a failing test does not leave a stack running)."""
    pids: set[int] = set()
    yield pids
    for pid in alive(pids):
        psutil.Process(pid).kill()


def test_ctrl_c_with_stdout_a_closed_pipe_stops_everything(tmp_path: Path, cleanup: set[int]) -> None:
    """`make run | tee run.log`, then Ctrl-C: tee is gone first, so every print of the launcher hits a closed
    pipe. Before: the launcher died of BrokenPipeError in its `finally` and left all services running."""
    var_dir = tmp_path / "var"
    with open(tmp_path / "stderr.log", "wb") as stderr:
        launcher = _launch(var_dir, stdout=subprocess.PIPE, stderr=stderr, text=True)
    cleanup.add(launcher.pid)
    banner = ""
    deadline = time.monotonic() + 300
    while "Press Ctrl-C" not in banner and time.monotonic() < deadline:
        line = launcher.stdout.readline()  # type: ignore[union-attr]
        if not line:
            break
        banner += line
    assert "Press Ctrl-C" in banner, banner + (tmp_path / "stderr.log").read_text()
    services = _descendants(launcher.pid)
    cleanup.update(services)
    names = {" ".join(psutil.Process(p).cmdline()) for p in services}
    assert any("redis-server" in n for n in names) and any("actions.server" in n for n in names)
    assert any("rasa run" in n for n in names) and any("uvicorn" in n for n in names)

    # The project's Redis: a password, loopback only, private files (issue item 5).
    port = int(re.search(r"Redis:\s+127\.0\.0\.1:(\d+)", banner).group(1))  # type: ignore[union-attr]
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=port).ping()  # no password: refused
    password = (var_dir / "redis" / "password").read_text().strip()
    client = redis.Redis(port=port, password=password)
    assert client.ping()
    assert client.config_get("bind")["bind"] == "127.0.0.1"
    assert client.config_get("protected-mode")["protected-mode"] == "yes"
    client.set("csbot:test:launcher", "x")
    client.bgrewriteaof()  # the rewritten AOF must be private too
    time.sleep(1.5)
    redis_dir = var_dir / "redis"
    assert stat.S_IMODE(redis_dir.stat().st_mode) == 0o700
    files = [p for p in redis_dir.rglob("*") if p.is_file()]
    assert any(p.name.startswith("appendonly") for p in files), files
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, f"{path} is readable by others"

    launcher.stdout.close()  # type: ignore[union-attr]  (tee died with the Ctrl-C)
    launcher.send_signal(signal.SIGINT)
    assert launcher.wait(timeout=60) == 0
    assert not _wait_gone(services, 10), "services left running after Ctrl-C"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_kill_9_of_the_launcher_takes_the_services_down(tmp_path: Path, cleanup: set[int]) -> None:
    launcher = _launch(tmp_path / "var", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cleanup.add(launcher.pid)
    services: set[int] = set()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # every service spawned (Rasa still loading its model is fine)
        services = _descendants(launcher.pid)
        cmdlines = " | ".join(" ".join(psutil.Process(p).cmdline()) for p in alive(services))
        if all(part in cmdlines for part in ("redis-server", "rasa run", "actions.server", "uvicorn")):
            break
        time.sleep(0.5)
    time.sleep(5)  # let them get going (and spawn whatever children they spawn)
    services = _descendants(launcher.pid)
    cleanup.update(services)
    assert len(services) >= 4
    launcher.send_signal(signal.SIGKILL)
    launcher.wait(timeout=10)
    left = _wait_gone(services, 10)
    assert not left, [" ".join(psutil.Process(p).cmdline()) for p in alive(left)]
