"""Rasa's tracker and lock stores on a Redis primary found through Sentinel (the ``redis+sentinel://`` REDIS_URL).

Rasa 3.6's Redis stores connect to one host. These subclasses keep everything else (keys, format, expiry, the
linear-time save of :mod:`bot.plugins.tracker_store`) and only replace the client with one that asks the Sentinels
for the current primary at every (re)connection and retries a command long enough to outlast a failover (redis-py
4.6 also turns a write answered ``READONLY`` by a demoted primary into a reconnection). Used by
``deploy/topology/endpoints-sentinel.yml``::

    tracker_store:
      type: bot.plugins.redis_ha.SentinelTrackerStore
      url: ${REDIS_URL}
    lock_store:
      type: bot.plugins.redis_ha.SentinelLockStore
      url: ${REDIS_URL}
"""
from __future__ import annotations

from typing import Any

from rasa.core.lock_store import RedisLockStore
from rasa.utils.endpoints import EndpointConfig

from bot.plugins.tracker_store import LinearRedisTrackerStore
from bot.shared.redis_url import FAILOVER_BACKOFF_CAP_S, FAILOVER_RETRIES, parse_sentinel_url

SOCKET_TIMEOUT_S = 5.0
SENTINEL_TIMEOUT_S = 1.0


def sentinel_master(url: str) -> Any:
    """A redis-py client of the primary the Sentinels of ``url`` name (db 0)."""
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
    from redis.retry import Retry
    from redis.sentinel import Sentinel

    parsed = parse_sentinel_url(url)
    if parsed is None:
        raise ValueError("the Sentinel stores need REDIS_URL=redis+sentinel://host:port[,host:port]/service_name")
    sentinels = Sentinel(list(parsed.sentinels),
                         sentinel_kwargs={**parsed.auth(), "socket_timeout": SENTINEL_TIMEOUT_S})
    return sentinels.master_for(
        parsed.service, socket_timeout=SOCKET_TIMEOUT_S, **parsed.auth(),
        retry=Retry(ExponentialBackoff(cap=FAILOVER_BACKOFF_CAP_S, base=0.05), FAILOVER_RETRIES),
        retry_on_error=[RedisConnectionError, RedisTimeoutError])


class SentinelTrackerStore(LinearRedisTrackerStore):
    """``LinearRedisTrackerStore`` whose client follows the Sentinels' primary."""

    def __init__(self, domain: Any, host: str, event_broker: Any = None, record_exp: Any = None,
                 key_prefix: str | None = None, **kwargs: Any) -> None:
        for name in ("port", "db", "password", "username"):  # they belong to a single-server URL
            kwargs.pop(name, None)
        super().__init__(domain=domain, host="localhost", event_broker=event_broker,
                         record_exp=int(record_exp) if record_exp else None, key_prefix=key_prefix, **kwargs)
        self.red = sentinel_master(host)


class SentinelLockStore(RedisLockStore):
    """Rasa's ``RedisLockStore`` (same keys) whose client follows the Sentinels' primary."""

    def __init__(self, endpoint_config: EndpointConfig) -> None:
        super().__init__(key_prefix=endpoint_config.kwargs.get("key_prefix"))
        self.red = sentinel_master(str(endpoint_config.url))
