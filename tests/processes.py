"""Process and port checks shared by the launcher, supervisor and fault tests."""
from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import psutil
import pytest


def alive(pids: set[int]) -> set[int]:
    """The pids that still run (zombies count as gone)."""
    out = set()
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.add(pid)
        except psutil.NoSuchProcess:
            pass
    return out


def port_free(port: int) -> bool:
    """Nobody listens on it (bound as the services bind: SO_REUSEADDR, so TIME_WAIT does not count)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            s.listen()
        except OSError:
            return False
    return True


def start_stack(var_dir: Path, **options: Any) -> Any:
    """A started stack on free ports (scripts/stack.py ``Stack.on_free_ports(var_dir=..., **options)``); a failed
    start fails the test with the services' logs, which are otherwise hard to find."""
    from stack import Stack  # scripts/stack.py

    running = Stack.on_free_ports(var_dir=var_dir, **options)
    try:
        running.start()
    except Exception as exc:
        running.stop()
        logs = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in (var_dir / "logs").glob("*.log"))
        pytest.fail(f"stack did not start: {exc}\n{logs}")
    return running


def free_port() -> int:
    """A port nobody listens on right now (the kernel's pick)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def serve_in_process(app: Any, attempts: int = 400) -> tuple[Any, asyncio.Task[Any], int]:
    """Run a FastAPI app under uvicorn in this event loop on a free port; (server, task, port) once it accepts
    connections. Stop it with ``server.should_exit = True`` and awaiting the task."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    for _ in range(attempts):
        if server.started:
            break
        await asyncio.sleep(0.025)
    assert server.started, "test server did not start"
    return server, task, port


def create_accounts(stack: Any, names: dict[str, str], password: str) -> dict[str, str]:
    """Desk accounts on a started stack, the way an operator makes them (``python -m handoff.admin create-<role>``):
    ``names`` maps each role to its username; returns ``names``."""
    import subprocess
    import sys

    env = {**stack.env(), "HANDOFF_ADMIN_PASSWORD": password}
    for role, username in names.items():
        done = subprocess.run([sys.executable, "-m", "handoff.admin", f"create-{role}", "--username", username],
                              cwd=Path(__file__).resolve().parents[1], env=env, capture_output=True, text=True,
                              timeout=60, check=False)
        assert done.returncode == 0, done.stderr
    return names
