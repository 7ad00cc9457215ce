"""Agent accounts, passwords, login sessions and presence, all in Redis.

Passwords are stored as salted scrypt hashes; a session is an opaque random token whose SHA-256 is the Redis key
(a copy of the database does not hand out live sessions), sliding-expiring after HANDOFF_SESSION_TTL_S.

A login costs exactly one scrypt computation whether the username exists or not (an unknown name is checked
against a dummy hash with the same parameters), so response times do not tell which accounts exist. Hashing runs
in worker threads (scrypt releases the GIL), at most ``hash_workers`` at once, never on the event loop: a burst of
logins does not stall the chats served by the same process. Throttling lives in handoff/login_guard.py.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from redis.asyncio import Redis

from conversations import keys

T = TypeVar("T")
ROLES = ("agent", "supervisor", "editor")
DESK_ROLES = ("agent", "supervisor")  # work conversations in the console; an editor does not (no queue, no presence)
CONTENT_ROLES = ("editor", "supervisor")  # edit the bot's content in the workbench (/workbench)
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}
MIN_PASSWORD_CHARS = 8
USERNAME_PATTERN = r"^[A-Za-z0-9_.-]{2,40}$"
# Same parameters as a real hash, a digest no password produces in practice: what an unknown username is checked
# against, so it costs the same one scrypt computation as a known one.
_DUMMY_HASH = f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${'00' * 16}${'00' * _SCRYPT['dklen']}"


class AccountError(ValueError):
    """An account cannot be created (duplicate username, weak password, unknown role)."""


class UsernameTaken(AccountError):
    """The username belongs to another account."""


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt_hex, digest_hex = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    digest = hashlib.scrypt(
        password.encode(), salt=bytes.fromhex(salt_hex), n=int(n), r=int(r), p=int(p), dklen=len(digest_hex) // 2
    )
    return hmac.compare_digest(digest.hex(), digest_hex)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


LANGUAGES = ("zh", "en")


@dataclass
class Agent:
    id: str
    username: str
    display_name: str
    role: str
    max_concurrent: int
    skills: tuple[str, ...] = ()  # reason codes this person takes (empty: every reason)
    languages: tuple[str, ...] = ()  # customer languages this person answers (empty: every language)
    disabled: bool = False

    def matches(self, handoff: dict[str, Any]) -> bool:
        """Whether routing should offer this handoff to this person: its language and reason are in theirs."""
        language = str(handoff.get("language") or "")
        reason = str(handoff.get("reason_code") or "")
        return ((not self.languages or not language or language in self.languages)
                and (not self.skills or not reason or reason in self.skills))

    @property
    def is_supervisor(self) -> bool:
        return self.role == "supervisor"

    @property
    def works_desk(self) -> bool:
        """Agents and supervisors; an editor's session is refused by the desk (handoff.deps.current_agent)."""
        return self.role in DESK_ROLES

    @property
    def edits_content(self) -> bool:
        return self.role in CONTENT_ROLES

    def public(self) -> dict[str, object]:
        return {"id": self.id, "username": self.username, "display_name": self.display_name, "role": self.role,
                "max_concurrent": self.max_concurrent, "skills": list(self.skills), "languages": list(self.languages),
                "disabled": self.disabled}


def _listed(value: str | None) -> tuple[str, ...]:
    return tuple(v for v in (value or "").split(",") if v)


def _decode(raw: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in raw.items()}


class AgentStore:
    """Accounts and sessions; one instance per process."""

    def __init__(self, redis: Redis, session_ttl_s: int, presence_ttl_s: int, default_max_concurrent: int,
                 hash_workers: int = 2) -> None:
        self._redis = redis
        self._session_ttl_s = session_ttl_s
        self._presence_ttl_s = presence_ttl_s
        self._default_max = default_max_concurrent
        self._hash_slots = asyncio.Semaphore(max(1, hash_workers))

    async def _off_loop(self, func: Callable[..., T], *args: Any) -> T:
        """Run a password hash in a worker thread; at most ``hash_workers`` at once (each scrypt holds 16 MB)."""
        async with self._hash_slots:
            return await asyncio.to_thread(func, *args)

    async def create(self, username: str, password: str, role: str, display_name: str | None = None,
                     max_concurrent: int | None = None) -> Agent:
        if role not in ROLES:
            raise AccountError(f"role must be one of {ROLES}")
        if not re.match(USERNAME_PATTERN, username):
            raise AccountError("username must be 2-40 letters, digits, '.', '_' or '-'")
        if len(password) < MIN_PASSWORD_CHARS:
            raise AccountError(f"password must have at least {MIN_PASSWORD_CHARS} characters")
        password_hash = await self._off_loop(hash_password, password)
        agent_id = uuid.uuid4().hex[:12]
        if not await self._redis.hsetnx(keys.agent_usernames(), username, agent_id):
            raise UsernameTaken(f"username {username!r} is taken")
        await self._redis.hset(keys.agent(agent_id), mapping={
            "username": username, "display_name": display_name or username, "role": role,
            "password": password_hash, "max_concurrent": max_concurrent or self._default_max,
            "created_at": time.time(),
        })
        agent = await self.get(agent_id)
        assert agent is not None
        return agent

    async def get(self, agent_id: str) -> Agent | None:
        raw = _decode(await self._redis.hgetall(keys.agent(agent_id)))
        if not raw:
            return None
        return Agent(id=agent_id, username=raw["username"], display_name=raw.get("display_name", raw["username"]),
                     role=raw["role"], max_concurrent=int(raw.get("max_concurrent") or self._default_max),
                     skills=_listed(raw.get("skills")), languages=_listed(raw.get("languages")),
                     disabled=raw.get("disabled") == "1")

    async def update(self, agent_id: str, *, max_concurrent: int | None = None, skills: list[str] | None = None,
                     languages: list[str] | None = None, display_name: str | None = None) -> Agent | None:
        """Change an account's concurrency, skills (reason codes), languages or display name."""
        fields: dict[str, Any] = {}
        if max_concurrent is not None:
            fields["max_concurrent"] = max_concurrent
        if skills is not None:
            fields["skills"] = ",".join(dict.fromkeys(skills))
        if languages is not None:
            fields["languages"] = ",".join(dict.fromkeys(languages))
        if display_name:
            fields["display_name"] = display_name
        if not await self._redis.exists(keys.agent(agent_id)):
            return None
        if fields:
            await self._redis.hset(keys.agent(agent_id), mapping=fields)
        return await self.get(agent_id)

    async def set_disabled(self, agent_id: str, disabled: bool) -> Agent | None:
        """Disable (no login, every session ends at its next request, out of the presence) or enable again."""
        if not await self._redis.exists(keys.agent(agent_id)):
            return None
        await self._redis.hset(keys.agent(agent_id), mapping={"disabled": "1" if disabled else "0",
                                                              "sessions_after": repr(time.time())})
        if disabled:
            await self._redis.zrem(keys.agents_online(), agent_id)
        return await self.get(agent_id)

    async def reset_password(self, agent_id: str, password: str) -> Agent | None:
        """A new initial passphrase set by a supervisor; every existing session of the account ends."""
        if len(password) < MIN_PASSWORD_CHARS:
            raise AccountError(f"password must have at least {MIN_PASSWORD_CHARS} characters")
        if not await self._redis.exists(keys.agent(agent_id)):
            return None
        password_hash = await self._off_loop(hash_password, password)
        await self._redis.hset(keys.agent(agent_id), mapping={"password": password_hash,
                                                              "sessions_after": repr(time.time())})
        return await self.get(agent_id)

    async def all(self) -> list[Agent]:
        ids = [v.decode() for v in (await self._redis.hgetall(keys.agent_usernames())).values()]
        agents = [await self.get(i) for i in ids]
        return sorted((a for a in agents if a), key=lambda a: a.username)

    async def id_for(self, username: str) -> str | None:
        agent_id = await self._redis.hget(keys.agent_usernames(), username)
        return agent_id.decode() if agent_id else None

    async def login(self, username: str, password: str) -> str | None:
        """Returns a new session token, or None (same answer, same work for unknown user and wrong password:
        the same two Redis reads and one scrypt computation in a worker thread)."""
        agent_id = await self._redis.hget(keys.agent_usernames(), username)
        stored = await self._redis.hget(keys.agent(agent_id.decode() if agent_id else ""), "password")
        known = agent_id is not None and stored is not None
        matches = await self._off_loop(verify_password, password, stored.decode() if known else _DUMMY_HASH)
        if not (matches and known):
            return None
        assert agent_id is not None
        if await self._redis.hget(keys.agent(agent_id.decode()), "disabled") == b"1":
            return None
        token = secrets.token_urlsafe(32)
        # The session names its account and when it began: a password reset or a disabling ends older ones.
        await self._redis.set(keys.session(_token_hash(token)), f"{agent_id.decode()}|{time.time()!r}",
                              ex=self._session_ttl_s)
        role = await self._redis.hget(keys.agent(agent_id.decode()), "role")
        if role is not None and role.decode() in DESK_ROLES:  # presence counts people who can take conversations
            await self.touch(agent_id.decode())
        return token

    async def authenticate(self, token: str) -> Agent | None:
        """The agent behind a token; slides the expiry. Forged, expired and logged-out tokens give None."""
        if not token or len(token) > 200:
            return None
        key = keys.session(_token_hash(token))
        value = await self._redis.getex(key, ex=self._session_ttl_s)
        if not value:
            return None
        agent_id, _, began = value.decode().partition("|")
        after = await self._redis.hget(keys.agent(agent_id), "sessions_after")
        if after is not None and float(began or 0) <= float(after):
            await self._redis.delete(key)
            return None
        agent = await self.get(agent_id)
        if agent is not None and agent.disabled:
            await self._redis.delete(key)
            return None
        if agent is not None and agent.works_desk:
            await self.touch(agent.id)
        return agent

    async def logout(self, token: str, agent_id: str) -> None:
        await self._redis.delete(keys.session(_token_hash(token)))
        await self._redis.zrem(keys.agents_online(), agent_id)

    async def touch(self, agent_id: str) -> None:
        await self._redis.zadd(keys.agents_online(), {agent_id: time.time()})

    async def online_ids(self) -> list[str]:
        since = time.time() - self._presence_ttl_s
        return [v.decode() for v in await self._redis.zrangebyscore(keys.agents_online(), since, "+inf")]

    async def active_count(self, agent_id: str) -> int:
        return int(await self._redis.scard(keys.agent_active(agent_id)))
