"""Process and port checks shared by the launcher, supervisor and fault tests."""
from __future__ import annotations

import socket
from typing import Set

import psutil


def alive(pids: Set[int]) -> Set[int]:
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
