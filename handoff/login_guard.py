"""Agent login throttling: failures are counted per account and per client address, and either lock.

* **Per account** (``HANDOFF_LOGIN_MAX_FAILURES`` failures within ``HANDOFF_LOGIN_WINDOW_S``, from any address): the
  account is locked for ``HANDOFF_LOGIN_LOCK_S``. Guessing one agent's password from many addresses does not help.
* **Per client address** (``HANDOFF_LOGIN_IP_MAX_FAILURES`` failures, any usernames): the address is locked too.
  Spraying one password over many accounts from one place does not help either. Successful logins do not count,
  so a call centre behind one NAT can log everybody in.

While locked, a login answers 429 with Retry-After *before* the password is looked at: the answer is the same
for a right and a wrong password. A success clears the account's failures (not the address's: a guesser with an
account of their own cannot reset the address counter by logging in to it).

Concurrent guesses: each attempt reserves a slot (an in-flight counter) before its password is checked, and is
refused when the in-flight attempts would exceed what is left of the budget, so 100 parallel guesses get at
most ``max_failures`` checks, not 100. Failure windows are moving windows of the ``limits`` package in Redis
(shared by every gateway process); locks and in-flight counters are plain keys (conversations/keys.py).
Usernames and addresses appear in keys only as keyed hashes.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, RateLimitItemPerSecond
from redis.asyncio import Redis

from conversations import keys
from conversations.redis_client import moving_window

SCOPES = ("account", "ip")
INFLIGHT_TTL_S = 120
LOCKED_DETAIL = "Too many failed logins. Try again later."
BUSY_DETAIL = "Too many logins at the same moment. Try again in a few seconds."


@dataclass(frozen=True)
class LoginLocked:
    """A refused login attempt: which scopes (never shown to the client), when to retry, and whether it was only
    the number of attempts in progress (``busy``: the budget is not used up, nothing is locked)."""

    scopes: list[str]
    retry_after_s: int
    busy: bool = False

    @property
    def detail(self) -> str:
        return BUSY_DETAIL if self.busy else LOCKED_DETAIL


class LoginGuard:
    """One per process; all state in Redis."""

    def __init__(self, redis: Redis, redis_url: str, max_failures: int, ip_max_failures: int, window_s: int,
                 lock_s: int) -> None:
        self._limiter = moving_window(redis_url, keys.rate_limit_prefix())
        self._items: dict[str, RateLimitItem] = {
            "account": RateLimitItemPerSecond(max_failures, window_s),
            "ip": RateLimitItemPerSecond(ip_max_failures, window_s),
        }
        self._redis = redis
        self.lock_s = lock_s

    async def begin(self, account_ref: str, ip_ref: str) -> LoginLocked | None:
        """Before checking a password: None (go ahead, and call :meth:`end` afterwards) or why not.

        Order matters with concurrent attempts (Redis runs the commands of all of them one after the other):
        reserve first, then read the failure windows, then the locks. :meth:`end` counts a failure before it gives
        up its reservation and sets a lock before it clears a window, so every attempt in progress or finished is
        seen here, either as a reservation, as a failure, or as the lock it caused.
        """
        refs = {"account": account_ref, "ip": ip_ref}
        async with self._redis.pipeline(transaction=False) as pipe:
            for scope, ref in refs.items():
                pipe.incr(keys.login_inflight(scope, ref))
                pipe.expire(keys.login_inflight(scope, ref), INFLIGHT_TTL_S)
            results = await pipe.execute()
        inflight = dict(zip(refs, results[0::2]))
        refused: dict[str, int] = {}
        busy = True
        for scope, ref in refs.items():
            stats = await self._limiter.get_window_stats(self._items[scope], f"login_{scope}", ref)
            if int(inflight[scope]) > stats.remaining:
                refused[scope] = 1
                if stats.remaining <= 0:
                    refused[scope], busy = math.ceil(stats.reset_time - time.time()), False
        for scope, ref in refs.items():
            ttl_ms = await self._redis.pttl(keys.login_lock(scope, ref))
            if ttl_ms > 0 or ttl_ms == -1:
                refused[scope], busy = (math.ceil(ttl_ms / 1000) if ttl_ms > 0 else self.lock_s), False
        if refused:
            await self._release(refs)
            return LoginLocked(sorted(refused), max(1, *refused.values()), busy)
        return None

    async def end(self, account_ref: str, ip_ref: str, success: bool) -> list[str]:
        """After the check: count a failure (returns the scopes it locked) or clear the account's failures."""
        refs = {"account": account_ref, "ip": ip_ref}
        newly_locked = []
        try:
            if success:
                await self._limiter.clear(self._items["account"], "login_account", account_ref)
                return []
            for scope, ref in refs.items():
                item = self._items[scope]
                await self._limiter.hit(item, f"login_{scope}", ref)
                stats = await self._limiter.get_window_stats(item, f"login_{scope}", ref)
                if stats.remaining <= 0:
                    if await self._redis.set(keys.login_lock(scope, ref), "1", ex=self.lock_s, nx=True):
                        newly_locked.append(scope)
                    # The lock is the penalty; when it ends, the full budget is there again.
                    await self._limiter.clear(item, f"login_{scope}", ref)
            return newly_locked
        finally:
            await self._release(refs)

    async def _release(self, refs: dict[str, str]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for scope, ref in refs.items():
                pipe.decr(keys.login_inflight(scope, ref))
            await pipe.execute()
