"""The Redis Sentinel form of REDIS_URL, read the same way by every client (gateway, action server, Rasa's stores).

``redis+sentinel://[:password@]host:port[,host:port...]/service_name``

names the Sentinels (default port 26379) and the monitored service instead of one Redis server; clients ask the
Sentinels for the current primary and follow a failover. The same form is what the ``limits`` package reads for its
rate-limit storage (``async+redis+sentinel://``), so one setting serves every client. The password is the data
nodes' ``requirepass`` and also the Sentinels' own (``requirepass`` in sentinel.conf): one secret. The database is
always 0 (give another service its own Redis). Any other scheme (``redis://``, ``rediss://``) is a single server.

Pure Python (no redis import): both environments (3.10 Rasa, 3.11 services) use it.
"""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

SCHEME = "redis+sentinel"
DEFAULT_SENTINEL_PORT = 26379
# Every client behind Sentinel retries a command this many times, waiting 0.1 0.2 0.4 0.8 then 1 s (cap
# FAILOVER_BACKOFF_CAP_S): about 11.5 s in all, longer than a failover takes (down-after-milliseconds + election +
# promotion, ~4-6 s in the topology of scripts/topology.py).
FAILOVER_RETRIES = 14
FAILOVER_BACKOFF_CAP_S = 1.0


@dataclass(frozen=True)
class SentinelURL:
    sentinels: tuple[tuple[str, int], ...]
    service: str
    password: str | None = None
    username: str | None = None

    def auth(self) -> dict[str, str]:
        """``password``/``username`` keyword arguments for redis-py (for the data nodes and the Sentinels)."""
        out = {}
        if self.username:
            out["username"] = self.username
        if self.password:
            out["password"] = self.password
        return out


def is_sentinel_url(url: str) -> bool:
    return url.strip().lower().startswith(SCHEME + "://")


def parse_sentinel_url(url: str) -> SentinelURL | None:
    """The Sentinels and service of a ``redis+sentinel://`` URL; None for any other URL. ValueError if malformed."""
    if not is_sentinel_url(url):
        return None
    parts = urlsplit(url.strip())
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    sentinels = []
    for host_port in hosts.split(","):
        host_port = host_port.strip()
        if not host_port:
            continue
        host, sep, port = host_port.rpartition(":")
        if not sep:
            host, port = host_port, str(DEFAULT_SENTINEL_PORT)
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"bad Sentinel address {host_port!r} in REDIS_URL")
        sentinels.append((host.strip("[]"), int(port)))
    service = parts.path.strip("/")
    if not sentinels:
        raise ValueError("REDIS_URL names no Sentinel (redis+sentinel://host:port[,host:port]/service_name)")
    if not service or "/" in service:
        raise ValueError("REDIS_URL must end with the Sentinel service name: redis+sentinel://.../service_name")
    return SentinelURL(tuple(sentinels), service, unquote(password) or None, unquote(username) or None)


def limits_uri(url: str) -> str:
    """The ``limits`` storage URI (asyncio, redis-py) for REDIS_URL."""
    if is_sentinel_url(url):
        return "async+" + url.strip()
    return url.replace("redis://", "async+redis://", 1).replace("rediss://", "async+rediss://", 1)
