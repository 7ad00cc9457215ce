"""Redis clients for the gateway that survive a Redis restart.

``Redis.from_url`` in redis-py 8 (asyncio) builds its connection pool without the retry policy the ``Redis``
constructor has by default: connections get ``Retry(NoBackoff(), 0)``. After Redis restarts, every pooled
connection is dead and the first command on each fails with ``ConnectionError: Connection closed by server``
(HTTP 500 for the customer whose request drew it). These clients retry a command after a broken connection or a
timeout (reconnecting first) a few times with a short exponential backoff. A command whose connection was found
dead did not run. One that Redis ran just before dying may run again: the customer-message append is guarded by
its client message id (the repeat finds the marker and waits for the lease like any retry), counters and marks
are windows or overwrites; a bot reply appended in that instant could be stored twice.

With a ``redis+sentinel://`` REDIS_URL (``bot/shared/redis_url.py``) the clients ask the Sentinels for the current
primary at every (re)connection and retry longer (``FAILOVER_RETRIES``), so a command issued while the primary is
dead waits for the Sentinels to promote a replica (docs/DEPLOY.md) instead of failing.
"""
from __future__ import annotations

import asyncio
from typing import Any

from limits.aio.storage import RedisSentinelStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bot.shared.redis_url import FAILOVER_BACKOFF_CAP_S, FAILOVER_RETRIES, limits_uri, parse_sentinel_url

RETRIES = 3
BACKOFF_BASE_S = 0.05  # waits 0.1, 0.2, 0.4 s: a stale connection needs one, a restarting Redis about a second
BACKOFF_CAP_S = 0.5
SENTINEL_TIMEOUT_S = 1.0


def stopping() -> bool:
    """True once the running task is being cancelled: the condition of every background loop that talks to Redis
    (``while not stopping():``). redis-py can swallow a CancelledError that arrives during a command, so a loop that
    relied on the exception alone kept running after its cancel and held up the process's shutdown."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def redis_options(failover: bool = False) -> dict[str, Any]:
    """Keyword arguments for an asyncio client (``Redis.from_url``, or a ``limits`` ``RedisStorage``)."""
    if failover:
        return {"retry": Retry(ExponentialBackoff(cap=FAILOVER_BACKOFF_CAP_S, base=BACKOFF_BASE_S), FAILOVER_RETRIES),
                "retry_on_error": [RedisConnectionError, RedisTimeoutError]}
    return {"retry": Retry(ExponentialBackoff(cap=BACKOFF_CAP_S, base=BACKOFF_BASE_S), RETRIES),
            "retry_on_error": [RedisConnectionError, RedisTimeoutError]}


def connect(url: str, **kwargs: Any) -> Redis:
    """The gateway's Redis client for ``url`` (one server, or the primary the Sentinels name)."""
    sentinel = parse_sentinel_url(url)
    if sentinel is None:
        return Redis.from_url(url, **redis_options(), **kwargs)
    sentinels = Sentinel(list(sentinel.sentinels),
                         sentinel_kwargs={**sentinel.auth(), "socket_timeout": SENTINEL_TIMEOUT_S})
    return sentinels.master_for(sentinel.service, **sentinel.auth(), **redis_options(failover=True), **kwargs)


def moving_window(url: str, key_prefix: str) -> MovingWindowRateLimiter:
    """A ``limits`` moving-window limiter on the Redis at ``url`` (redis-py, with the same retry policy)."""
    uri = limits_uri(url)
    if parse_sentinel_url(url) is None:
        return MovingWindowRateLimiter(RedisStorage(uri, implementation="redispy", key_prefix=key_prefix,
                                                    **redis_options()))
    # Counted on the primary only (a replica may lag behind the window it would read).
    return MovingWindowRateLimiter(RedisSentinelStorage(
        uri, use_replicas=False, implementation="redispy", key_prefix=key_prefix,
        sentinel_kwargs={"socket_timeout": SENTINEL_TIMEOUT_S}, **redis_options(failover=True)))
