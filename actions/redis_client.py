"""Redis clients for the action server that survive a Redis restart.

``Redis.from_url`` in redis-py 8 (asyncio) builds its connection pool without the retry policy the ``Redis``
constructor has by default: connections get ``Retry(NoBackoff(), 0)``. After Redis restarts, every pooled
connection is dead, and the first command on each fails with ``ConnectionError: Connection closed by server``
(the fault test saw a form's verification lookup fail this way, so Rasa dropped the action). These clients retry
a command after a broken connection or a timeout (reconnecting first) a few times with a short exponential
backoff. The commands retried are the action server's own (GET/SET/GETEX/DEL, XADD, the ``limits`` Lua scripts):
a command whose connection was found dead did not run; one that Redis ran just before dying may run twice,
which for these (overwrites, expiries, window counts, append-only logs) costs at most one extra entry.
"""
from __future__ import annotations

from typing import Any

import redis
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

RETRIES = 3
BACKOFF_BASE_S = 0.05  # waits 0.1, 0.2, 0.4 s: a stale connection needs one, a restarting Redis about a second
BACKOFF_CAP_S = 0.5
RETRY_ON = [RedisConnectionError, RedisTimeoutError]


def async_options() -> dict[str, Any]:
    """Keyword arguments for an asyncio client (``redis.asyncio.Redis.from_url``, or the ``limits`` storage)."""
    return {"retry": AsyncRetry(ExponentialBackoff(cap=BACKOFF_CAP_S, base=BACKOFF_BASE_S), RETRIES),
            "retry_on_error": list(RETRY_ON)}


def async_redis(url: str, **kwargs: Any) -> AsyncRedis:
    return AsyncRedis.from_url(url, **async_options(), **kwargs)


def sync_redis(url: str, **kwargs: Any) -> redis.Redis:
    return redis.Redis.from_url(url, retry=Retry(ExponentialBackoff(cap=BACKOFF_CAP_S, base=BACKOFF_BASE_S), RETRIES),
                                retry_on_error=list(RETRY_ON), **kwargs)


def moving_window(url: str, key_prefix: str) -> MovingWindowRateLimiter:
    """A ``limits`` moving-window limiter on the Redis at ``url`` (redis-py, with the same retry policy)."""
    uri = url.replace("redis://", "async+redis://", 1).replace("rediss://", "async+rediss://", 1)
    return MovingWindowRateLimiter(RedisStorage(uri, implementation="redispy", key_prefix=key_prefix,
                                                **async_options()))
