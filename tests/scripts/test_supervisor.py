"""The launcher's supervisor (scripts/stack.py) with small stand-in services: restarts, backoff, clean stops.

A stand-in service serves ``GET /`` (its pid) on a port and, like Sanic's worker process, leaves a worker child that
inherits the listening socket: if the service is killed and that child survives, the port stays taken and a
restart on the same port cannot bind.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from stack import (  # scripts/stack.py (tests/conftest.py puts it on the path)
    Service,
    Stack,
    Supervisor,
    free_port,
    free_ports,
    http_ok,
)

from bot.shared.paths import REPO_ROOT
from tests.processes import alive, port_free

SERVICE = textwrap.dedent("""
    import http.server, os, subprocess, sys, time
    port, crash_flag = int(sys.argv[1]), sys.argv[2]
    if os.path.exists(crash_flag):
        sys.exit(3)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = str(os.getpid()).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], pass_fds=[server.fileno()])
    server.serve_forever()
""")


def _service(tmp_path: Path, name: str) -> Service:
    script = tmp_path / "service.py"
    script.write_text(SERVICE)
    port = free_port()
    service = Service(name, [sys.executable, str(script), str(port), str(tmp_path / f"{name}.crash")],
                      lambda: http_ok(f"http://127.0.0.1:{port}/", timeout_s=0.5), ready_timeout_s=20)
    service.port = port  # type: ignore[attr-defined]  (for the tests)
    return service


def _pid_serving(service: Service) -> int:
    return int(httpx.get(f"http://127.0.0.1:{service.port}/", timeout=2).text)  # type: ignore[attr-defined]




@pytest.fixture()
def supervised(tmp_path: Path) -> Iterator[Supervisor]:
    services = [_service(tmp_path, "a"), _service(tmp_path, "b")]
    supervisor = Supervisor(services, {}, tmp_path / "logs", cwd=tmp_path, poll_s=0.1, announce=lambda _: None)
    supervisor.start()
    try:
        yield supervisor
    finally:
        supervisor.stop()


def test_every_service_runs_with_its_worker_child(supervised: Supervisor) -> None:
    a = supervised.services["a"]
    assert _pid_serving(a) == a.proc.pid
    children = psutil.Process(a.proc.pid).children()
    assert len(children) == 1  # the stand-in's worker
    assert children[0].pid in supervised.pids()


def test_a_killed_service_restarts_on_the_same_port_while_the_others_keep_serving(supervised: Supervisor) -> None:
    a, b = supervised.services["a"], supervised.services["b"]
    b_pid = _pid_serving(b)
    old_worker = psutil.Process(a.proc.pid).children()[0].pid
    old_pid = supervised.kill("a")
    # The dead service's worker child still holds the port; the supervisor must clear it to restart on that port.
    served_by_b: list[int] = []
    deadline = time.monotonic() + 15
    while not (a.is_ready and a.proc and a.proc.poll() is None) and time.monotonic() < deadline:
        served_by_b.append(_pid_serving(b))
        time.sleep(0.05)
    supervised.wait_ready("a", timeout_s=5)
    new_pid = _pid_serving(a)
    assert new_pid != old_pid and new_pid == a.proc.pid
    assert not alive({old_pid, old_worker})
    assert served_by_b and set(served_by_b) == {b_pid}  # b never went away
    assert [e.kind for e in supervised.events if e.service == "a"][-3:] == ["exited", "started", "ready"]


def test_a_crash_loop_backs_off_and_recovers(supervised: Supervisor, tmp_path: Path) -> None:
    a = supervised.services["a"]
    crash_flag = tmp_path / "a.crash"
    crash_flag.write_text("")
    supervised.kill("a")
    deadline = time.monotonic() + 30  # a loaded machine delays each restart; the backoff shape is what is checked
    starts: list[float] = []
    while time.monotonic() < deadline and len(starts) < 3:
        time.sleep(0.2)
        starts = [e.t for e in supervised.events if e.service == "a" and e.kind == "started"][1:]
    gaps = [later - earlier for earlier, later in zip(starts, starts[1:])]
    # backoff 0.5, 1, 2 s ... (plus the poll interval): each wait about twice the previous one
    assert len(starts) >= 3, starts
    assert all(g2 > g1 * 1.5 for g1, g2 in zip(gaps, gaps[1:])), gaps
    assert gaps[0] >= 0.9
    crash_flag.unlink()
    supervised.wait_ready("a", timeout_s=15)
    assert _pid_serving(a) == a.proc.pid


def test_stop_leaves_no_process_behind_grandchildren_included(tmp_path: Path) -> None:
    services = [_service(tmp_path, "a"), _service(tmp_path, "b")]
    supervisor = Supervisor(services, {}, tmp_path / "logs", cwd=tmp_path, poll_s=0.1, announce=lambda _: None)
    supervisor.start()
    seen = set(supervisor.pids())
    supervisor.kill("b")
    supervisor.wait_ready("b", timeout_s=15)
    seen |= supervisor.pids()
    assert len(seen) >= 6  # 2 services x (leader + worker), b once more
    supervisor.stop()
    assert not alive(seen)
    assert all(port_free(s.port) for s in services)  # type: ignore[attr-defined]
    assert supervisor.procs == []


LAUNCHER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, sys.argv[1])
    import test_supervisor as t
    from pathlib import Path
    from stack import Supervisor
    tmp = Path(sys.argv[2])
    supervisor = Supervisor([t._service(tmp, "a"), t._service(tmp, "b")], {}, tmp / "logs", cwd=tmp,
                            announce=lambda _: None)
    supervisor.start()
    print(" ".join(str(p.pid) for p in supervisor.procs), flush=True)
    time.sleep(600)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_services_die_with_a_launcher_killed_by_sigkill(tmp_path: Path) -> None:
    script = tmp_path / "launcher.py"
    script.write_text(LAUNCHER)
    tests_dir = str(Path(__file__).parent)
    root = REPO_ROOT
    scripts_dir = str(root / "scripts")
    launcher = subprocess.Popen([sys.executable, str(script), tests_dir, str(tmp_path)], stdout=subprocess.PIPE,
                                text=True, env={"PYTHONPATH": f"{tests_dir}:{scripts_dir}:{root}"})
    try:
        leaders = {int(pid) for pid in launcher.stdout.readline().split()}  # type: ignore[union-attr]
        assert len(leaders) == 2 and alive(leaders) == leaders
        launcher.send_signal(signal.SIGKILL)
        launcher.wait(timeout=10)
        deadline = time.monotonic() + 5
        while alive(leaders) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(leaders)  # no launcher left to stop them: the kernel did (PR_SET_PDEATHSIG)
    finally:
        launcher.kill()
        for pid in alive(leaders if "leaders" in locals() else set()):
            psutil.Process(pid).kill()


def test_a_stack_on_free_ports_never_gives_two_services_one_port() -> None:
    """Ports picked one after another can repeat (the OS may hand out a just-closed port again); a Redis listening
    where a Rasa worker should be made a stack fail to start."""
    for _ in range(20):
        assert len(set(free_ports(6))) == 6
        stack = Stack.on_free_ports(rasa_workers=3)
        ports = [stack.web_port, stack.action_port, stack.redis_port, *stack.rasa_ports]
        assert len(set(ports)) == len(ports) == 6
