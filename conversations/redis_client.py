"""Redis clients for the gateway that survive a Redis restart.

``Redis.from_url`` in redis-py 8 (asyncio) builds its connection pool without the retry policy the ``Redis``
constructor has by default: connections get ``Retry(NoBackoff(), 0)``. After Redis restarts, every pooled
connection is dead and the first command on each fails with ``ConnectionError: Connection closed by server``
(HTTP 500 for the customer whose request drew it). These clients retry a command after a broken connection or a
timeout (reconnecting first) a few times with a short exponential backoff. A command whose connection was found
dead did not run. One that Redis ran just before dying may run again: the customer-message append is guarded by
its client message id (the repeat finds the marker and waits for the lease like any retry), counters and marks
are windows or overwrites; a bot reply appended in that instant could be stored twice.
"""
from __future__ import annotations

from typing import Any

from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

RETRIES = 3
BACKOFF_BASE_S = 0.05  # waits 0.1, 0.2, 0.4 s: a stale connection needs one, a restarting Redis about a second
BACKOFF_CAP_S = 0.5


def redis_options() -> dict[str, Any]:
    """Keyword arguments for an asyncio client (``Redis.from_url``, or a ``limits`` ``RedisStorage``)."""
    return {"retry": Retry(ExponentialBackoff(cap=BACKOFF_CAP_S, base=BACKOFF_BASE_S), RETRIES),
            "retry_on_error": [RedisConnectionError, RedisTimeoutError]}


def connect(url: str, **kwargs: Any) -> Redis:
    """The gateway's Redis client for ``url``."""
    return Redis.from_url(url, **redis_options(), **kwargs)


def moving_window(url: str, key_prefix: str) -> MovingWindowRateLimiter:
    """A ``limits`` moving-window limiter on the Redis at ``url`` (redis-py, with the same retry policy)."""
    uri = url.replace("redis://", "async+redis://", 1).replace("rediss://", "async+rediss://", 1)
    return MovingWindowRateLimiter(RedisStorage(uri, implementation="redispy", key_prefix=key_prefix,
                                                **redis_options()))
