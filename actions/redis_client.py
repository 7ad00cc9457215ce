"""Redis clients for the action server that survive a Redis restart.

``Redis.from_url`` in redis-py 8 (asyncio) builds its connection pool without the retry policy the ``Redis``
constructor has by default: connections get ``Retry(NoBackoff(), 0)``. After Redis restarts, every pooled
connection is dead, and the first command on each fails with ``ConnectionError: Connection closed by server``
(the fault test saw a form's verification lookup fail this way, so Rasa dropped the action). These clients retry
a command after a broken connection or a timeout (reconnecting first) a few times with a short exponential
backoff. The commands retried are the action server's own (GET/SET/GETEX/DEL, XADD, the ``limits`` Lua scripts):
a command whose connection was found dead did not run; one that Redis ran just before dying may run twice,
which for these (overwrites, expiries, window counts, append-only logs) costs at most one extra entry.

A ``redis+sentinel://`` REDIS_URL (``bot/shared/redis_url.py``) gives clients of the primary the Sentinels name,
with the longer retry of ``conversations/redis_client.py`` (a command waits out a failover).
"""
from __future__ import annotations

from typing import Any

import redis
from limits.aio.storage import RedisSentinelStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry
from redis.sentinel import Sentinel

from bot.shared.redis_url import FAILOVER_BACKOFF_CAP_S, FAILOVER_RETRIES, limits_uri, parse_sentinel_url

RETRIES = 3
BACKOFF_BASE_S = 0.05  # waits 0.1, 0.2, 0.4 s: a stale connection needs one, a restarting Redis about a second
BACKOFF_CAP_S = 0.5
RETRY_ON = [RedisConnectionError, RedisTimeoutError]
SENTINEL_TIMEOUT_S = 1.0


def _backoff(failover: bool) -> tuple[ExponentialBackoff, int]:
    if failover:
        return ExponentialBackoff(cap=FAILOVER_BACKOFF_CAP_S, base=BACKOFF_BASE_S), FAILOVER_RETRIES
    return ExponentialBackoff(cap=BACKOFF_CAP_S, base=BACKOFF_BASE_S), RETRIES


def async_options(failover: bool = False) -> dict[str, Any]:
    """Keyword arguments for an asyncio client (``redis.asyncio.Redis.from_url``, or the ``limits`` storage)."""
    return {"retry": AsyncRetry(*_backoff(failover)), "retry_on_error": list(RETRY_ON)}


def async_redis(url: str, **kwargs: Any) -> AsyncRedis:
    sentinel = parse_sentinel_url(url)
    if sentinel is None:
        return AsyncRedis.from_url(url, **async_options(), **kwargs)
    sentinels = AsyncSentinel(list(sentinel.sentinels),
                              sentinel_kwargs={**sentinel.auth(), "socket_timeout": SENTINEL_TIMEOUT_S})
    return sentinels.master_for(sentinel.service, **sentinel.auth(), **async_options(failover=True), **kwargs)


def sync_redis(url: str, **kwargs: Any) -> redis.Redis:
    sentinel = parse_sentinel_url(url)
    if sentinel is None:
        return redis.Redis.from_url(url, retry=Retry(*_backoff(False)), retry_on_error=list(RETRY_ON), **kwargs)
    sentinels = Sentinel(list(sentinel.sentinels),
                         sentinel_kwargs={**sentinel.auth(), "socket_timeout": SENTINEL_TIMEOUT_S})
    return sentinels.master_for(sentinel.service, **sentinel.auth(), retry=Retry(*_backoff(True)),
                                retry_on_error=list(RETRY_ON), **kwargs)


def moving_window(url: str, key_prefix: str) -> MovingWindowRateLimiter:
    """A ``limits`` moving-window limiter on the Redis at ``url`` (redis-py, with the same retry policy)."""
    uri = limits_uri(url)
    if parse_sentinel_url(url) is None:
        return MovingWindowRateLimiter(RedisStorage(uri, implementation="redispy", key_prefix=key_prefix,
                                                    **async_options()))
    return MovingWindowRateLimiter(RedisSentinelStorage(
        uri, use_replicas=False, implementation="redispy", key_prefix=key_prefix,
        sentinel_kwargs={"socket_timeout": SENTINEL_TIMEOUT_S}, **async_options(failover=True)))
