"""Macros: reply templates agents insert into the reply box (issue 17), apart from the knowledge-base "canned
answers" (handoff/canned.py).

A macro has a title and a text per language (zh, en; at least one) and may use variables filled from the open
conversation when it is inserted (:func:`fill`): ``{customer_name}``, ``{order_number}``, ``{tracking_number}``,
``{agent_name}``. A variable without a value in that conversation stays in the text as written (``{order_number}``)
and is reported as missing, so the agent sees what to fill in before sending; an unknown variable is refused when the
macro is saved. Text is stored as typed (control characters dropped) and the console shows it as text, never HTML.

Scopes: ``shared`` macros are written by supervisors and used by everyone; ``personal`` macros belong to the agent
who wrote them and nobody else sees or changes them. Stored durably in Redis (AOF) without expiry, one hash per
scope (conversations/keys.py: ``macros_shared``, ``macros_personal``), field = macro id, value = JSON.
"""
from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from bot.shared.text import clean_text
from conversations import keys
from handoff.agents import Agent

LANGUAGES = ("zh", "en")
VARIABLES = ("customer_name", "order_number", "tracking_number", "agent_name")
TITLE_MAX_CHARS = 120
TEXT_MAX_CHARS = 2000
MAX_SHARED = 500
MAX_PERSONAL = 100
_VARIABLE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


class MacroError(ValueError):
    """A macro that cannot be saved or used; ``status`` is the HTTP answer."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class MacroInput:
    title: dict[str, str]
    text: dict[str, str]


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _clean_text_block(text: str) -> str:
    """Like clean_text, but keeping line breaks (a macro may have paragraphs)."""
    lines = [clean_text(line, max_chars=TEXT_MAX_CHARS) for line in str(text).replace("\r\n", "\n").split("\n")]
    return "\n".join(lines).strip("\n")[:TEXT_MAX_CHARS]


def validate(body: MacroInput) -> tuple[dict[str, str], dict[str, str]]:
    """Cleaned (title, text) per language; a language needs both a title and a text. Raises MacroError (422)."""
    titles: dict[str, str] = {}
    texts: dict[str, str] = {}
    for lang in LANGUAGES:
        raw_title, raw_text = str(body.title.get(lang) or ""), str(body.text.get(lang) or "")
        if len(raw_title) > TITLE_MAX_CHARS or len(raw_text) > TEXT_MAX_CHARS:
            raise MacroError(413, f"Too long: titles up to {TITLE_MAX_CHARS}, texts up to {TEXT_MAX_CHARS} characters.")
        title, text = clean_text(raw_title, max_chars=TITLE_MAX_CHARS), _clean_text_block(raw_text)
        if bool(title) != bool(text):
            raise MacroError(422, f"Language '{lang}' needs both a title and a text.")
        if title:
            titles[lang], texts[lang] = title, text
    if not titles:
        raise MacroError(422, "A macro needs a title and a text in at least one language (zh or en).")
    unknown = sorted({name for text in texts.values() for name in _VARIABLE.findall(text)} - set(VARIABLES))
    if unknown:
        raise MacroError(422, "Unknown variable(s): " + ", ".join("{" + u + "}" for u in unknown)
                         + ". Allowed: " + ", ".join("{" + v + "}" for v in VARIABLES) + ".")
    return titles, texts


def values_for(agent: Agent, context: dict[str, Any]) -> dict[str, str]:
    """What the variables stand for in one conversation (empty when the conversation does not say)."""
    identifiers = context.get("identifiers") or {}
    customer = context.get("customer") or {}

    def last(name: str) -> str:
        found = identifiers.get(name) or []
        return str(found[-1]) if found else ""

    return {"customer_name": str(customer.get("name") or ""), "order_number": last("order_numbers"),
            "tracking_number": last("tracking_numbers"), "agent_name": agent.display_name}


def fill(text: str, values: dict[str, str]) -> tuple[str, list[str]]:
    """The text with its variables replaced; a variable without a value stays as written and is listed."""
    missing: list[str] = []

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        value = values.get(name, "")
        if not value:
            if name not in missing:
                missing.append(name)
            return match.group(0)
        return value

    return _VARIABLE.sub(one, text), missing


class Macros:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    @staticmethod
    def _key(scope: str, agent: Agent) -> str:
        return keys.macros_shared() if scope == "shared" else keys.macros_personal(agent.id)

    async def list(self, agent: Agent, query: str = "", language: str | None = None) -> list[dict[str, Any]]:
        """Shared and this agent's personal macros whose title or text contains ``query`` (any language); titles
        that match come first, then the rest; within that personal first, newest first. With ``language``, macros
        that have that language come before those that only have the other one."""
        shared = await self.redis.hvals(keys.macros_shared())
        personal = await self.redis.hvals(keys.macros_personal(agent.id))
        macros = [json.loads(_s(v)) for v in [*personal, *shared]]
        needle = query.strip().lower()
        out = []
        for macro in macros:
            titles = " ".join(macro["title"].values()).lower()
            texts = " ".join(macro["text"].values()).lower()
            if needle and needle not in titles and needle not in texts:
                continue
            rank = (0 if not needle or needle in titles else 1,
                    0 if not language or language in macro["text"] else 1,
                    0 if macro["scope"] == "personal" else 1, -float(macro.get("updated_at") or 0))
            out.append((rank, macro))
        return [self.public(m, agent) for _, m in sorted(out, key=lambda pair: pair[0])]

    @staticmethod
    def public(macro: dict[str, Any], agent: Agent) -> dict[str, Any]:
        editable = macro["owner_id"] == agent.id if macro["scope"] == "personal" else agent.is_supervisor
        return {**macro, "editable": editable}

    async def get(self, agent: Agent, macro_id: str) -> dict[str, Any]:
        """One macro this agent may use: their own personal one or a shared one (404 otherwise: another agent's
        personal macro is not told apart from one that does not exist)."""
        if not _ID.match(macro_id):
            raise MacroError(404, "No such macro.")
        for key in (keys.macros_personal(agent.id), keys.macros_shared()):
            raw = await self.redis.hget(key, macro_id)
            if raw is not None:
                return json.loads(_s(raw))
        raise MacroError(404, "No such macro.")

    async def create(self, agent: Agent, scope: str, body: MacroInput) -> dict[str, Any]:
        if scope == "shared" and not agent.is_supervisor:
            raise MacroError(403, "Only supervisors write shared macros; save it as a personal one.")
        titles, texts = validate(body)
        key = self._key(scope, agent)
        cap = MAX_SHARED if scope == "shared" else MAX_PERSONAL
        if await self.redis.hlen(key) >= cap:
            raise MacroError(409, f"At most {cap} {scope} macros; delete one first.")
        now = time.time()
        macro = {"id": secrets.token_urlsafe(9), "scope": scope, "owner_id": agent.id if scope == "personal" else "",
                 "title": titles, "text": texts, "created_at": now, "updated_at": now, "updated_by": agent.id}
        await self.redis.hset(key, macro["id"], json.dumps(macro, ensure_ascii=False))
        return self.public(macro, agent)

    async def _editable(self, agent: Agent, macro_id: str) -> dict[str, Any]:
        macro = await self.get(agent, macro_id)
        if macro["scope"] == "shared" and not agent.is_supervisor:
            raise MacroError(403, "Only supervisors change shared macros.")
        return macro

    async def update(self, agent: Agent, macro_id: str, body: MacroInput) -> dict[str, Any]:
        macro = await self._editable(agent, macro_id)
        titles, texts = validate(body)
        macro = {**macro, "title": titles, "text": texts, "updated_at": time.time(), "updated_by": agent.id}
        await self.redis.hset(self._key(macro["scope"], agent), macro_id, json.dumps(macro, ensure_ascii=False))
        return self.public(macro, agent)

    async def delete(self, agent: Agent, macro_id: str) -> dict[str, Any]:
        macro = await self._editable(agent, macro_id)
        await self.redis.hdel(self._key(macro["scope"], agent), macro_id)
        return macro

    async def render(self, agent: Agent, macro_id: str, context: dict[str, Any], language: str | None
                     ) -> dict[str, Any]:
        """The macro's text for one conversation: in ``language`` when it has it (else its other language), the
        variables filled from the conversation; ``missing`` lists those without a value (left as written)."""
        macro = await self.get(agent, macro_id)
        lang = language if language in macro["text"] else next(iter(macro["text"]))
        text, missing = fill(macro["text"][lang], values_for(agent, context))
        return {"id": macro_id, "language": lang, "title": macro["title"][lang], "text": text, "missing": missing}
