"""The one path every customer message takes, whatever channel it came in on (web chat, Telegram, WhatsApp, ...).

A channel finds the conversation (the browser's, or the one mapped to a platform user) and hands the message here:

1. it is stored first, together with its idempotency marker (a retry of the same client / platform message id is
   never stored twice, nor lost) - :meth:`ConversationStore.append_customer_once`;
2. the owner key decides who answers: the bot (Rasa) only while the owner is ``bot``; a conversation that waits for
   or belongs to an agent gets at most one "an agent will answer" notice;
3. a silent bot turn is checked (``channels/turns.py``): a failed custom action is apologised for and undone;
4. the answers are stored in the conversation's stream, and the reply is remembered for the message id, so a retry
   is answered with the same reply instead of asking the bot twice.

Channels differ only in how the answer reaches the customer: web chat returns it in the HTTP response, the
asynchronous channels hand the new entries of the stream to the outbox (``channels/outbox.py``).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import RedisError

from channels.turns import RetryableNotice, check_silent_turn
from conversations import canary, metrics
from conversations.customers import CustomerLinks
from conversations.messages import say, say_in
from conversations.rasa_client import RasaClient, RasaError
from conversations.settings import GatewaySettings
from conversations.store import BOT, PENDING, QUEUE, ChatMessage, ConversationStore
from handoff.handoffs import HandoffService

logger = logging.getLogger(__name__)
DUPLICATE_WAIT_S = 25.0
LEASE_MARGIN_S = 5.0
CSAT_RE = re.compile(r'^/csat\{"stars":\s*([1-5])\}$')


@dataclass
class Gateway:
    """What answering needs: the conversation store, the bot, the desk and the settings (one per process)."""

    store: ConversationStore
    rasa: RasaClient
    settings: GatewaySettings
    desk: HandoffService
    customers: CustomerLinks | None = None  # one customer across channels (conversations/customers.py)

    @classmethod
    def of(cls, state: Any) -> Gateway:
        """From ``app.state`` (read per request: tests replace ``app.state.rasa`` after start-up)."""
        return cls(state.store, state.rasa, state.settings, state.desk, getattr(state, "customers", None))

    @property
    def lease_s(self) -> float:
        """How long one attempt may take to answer before a retry of the same message takes over."""
        return self.settings.rasa_timeout_s + LEASE_MARGIN_S


@dataclass
class CustomerMessage:
    """A customer message on its way in. ``message_id`` is the idempotency key: the web page's client id, or the
    platform's delivery id (Telegram update_id, WhatsApp message id, WeChat MsgId) so a platform's retry is
    answered once. ``text`` is already cleaned (``bot.shared.text.clean_text``)."""

    conversation_id: str
    message_id: str
    text: str
    channel: str
    client: str = ""
    ui_lang: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)  # extra metadata for Rasa (e.g. customer_token)

    def rasa_metadata(self) -> dict[str, Any]:
        return {**self.metadata, "ui_lang": self.ui_lang, "channel": self.channel, "client": self.client}


async def receive(gw: Gateway, message: CustomerMessage, *, wait_s: float = DUPLICATE_WAIT_S
                  ) -> list[dict[str, Any]] | None:
    """Store and answer a customer message; returns the stored replies (as dicts). A repeated message id returns
    the reply already given; None when its first attempt is still being answered after ``wait_s``."""
    started = time.perf_counter()
    previous = await gw.store.append_customer_once(
        message.conversation_id, message.message_id, ChatMessage(role="customer", text=message.text), gw.lease_s
    )
    if previous is not None:
        return await replay(gw, message, previous, wait_s)  # a retry: not a turn of its own
    try:
        return await answer_stored(gw, message)
    except RedisError:
        metrics.error("gateway", "redis")
        raise
    finally:
        metrics.TURN_SECONDS.labels(channel=message.channel).observe(time.perf_counter() - started)


async def answer_stored(gw: Gateway, message: CustomerMessage) -> list[dict[str, Any]]:
    """Answer a message that is stored and leased to this attempt."""
    try:
        return await answer_and_store(gw, message)
    except RedisError:
        # Stored but not answered (Redis went away meanwhile): let the client's retry answer at once.
        with contextlib.suppress(RedisError, OSError):
            await gw.store.expire_lease(message.conversation_id, message.message_id)
        raise


async def answer_and_store(gw: Gateway, message: CustomerMessage) -> list[dict[str, Any]]:
    replies = await answer(gw, message)
    stored = [await gw.store.append(message.conversation_id, m) for m in replies]
    payload = [m.to_dict() for m in stored]
    if any(isinstance(m, RetryableNotice) for m in replies):
        await gw.store.expire_lease(message.conversation_id, message.message_id)  # a retry is answered afresh
    else:
        await gw.store.store_reply(message.conversation_id, message.message_id, payload)
    return payload


async def answer(gw: Gateway, message: CustomerMessage) -> list[ChatMessage]:
    """Ask whoever owns the conversation. The bot never answers a conversation that waits for or has an agent."""
    store, settings, conversation_id, ui_lang = gw.store, gw.settings, message.conversation_id, message.ui_lang
    text = message.text
    if not text:
        return [ChatMessage(role="system", text=say("empty", text, ui_lang))]
    text, offered = await as_customer_text(store, conversation_id, text, settings.web_button_fresh_s)
    if not text:
        return [ChatMessage(role="system", text=say("empty", text, ui_lang))]
    csat = CSAT_RE.match(text)
    if csat and offered:
        return await record_csat(gw.desk, conversation_id, int(csat.group(1)), ui_lang)
    over, first_over = await store.over_rate_limit(
        conversation_id, settings.web_rate_limit_messages, settings.web_rate_limit_window_s
    )
    if over:
        # Stored (agents see it in the transcript) but not answered; one polite notice per window.
        return [ChatMessage(role="system", text=say("rate_limited", text, ui_lang))] if first_over else []
    owner = await store.owner(conversation_id)
    if owner != BOT:
        handoff_id = await gw.desk.open_for(conversation_id) or ""
        if await store.notice_once(conversation_id, f"{handoff_id}:{owner}"):
            key = "queued" if owner == QUEUE else "agent_owns"
            return [ChatMessage(role="system", text=say(key, text, ui_lang))]
        return []
    bot_text = text[: settings.web_nlu_chars]
    await tell_bot_the_customer(gw, conversation_id)
    arm = await canary_arm(gw, conversation_id)
    try:
        rasa_messages = await gw.rasa.send_message(conversation_id, bot_text, message.rasa_metadata(),
                                                   canary=canary.is_canary(arm))
    except RasaError as exc:
        logger.warning("bot unavailable for %s: %s", conversation_id, exc)
        # No worker received it: a retry of this message may ask again. A worker that did receive it may still
        # answer into the tracker, so that apology is final (a retry replays it instead of asking twice).
        notice = ChatMessage if exc.delivered else RetryableNotice
        return [notice(role="system", text=say("bot_unavailable", text, ui_lang))]
    replies = bot_messages(rasa_messages, arm)
    if gw.customers is not None:
        await gw.customers.link_if_verified(conversation_id)  # verified in this turn: link the channel identity
    # Nothing said: an action that failed (action server down) or a turn that needs no answer (handoff, listen)?
    if not replies and await store.owner(conversation_id) == BOT and await check_silent_turn(
        gw.rasa, conversation_id, bot_text
    ):
        return [RetryableNotice(role="system", text=say("bot_incomplete", text, ui_lang))]
    return replies


async def tell_bot_the_customer(gw: Gateway, conversation_id: str) -> None:
    """A conversation of a channel identity that an earlier conversation verified is that customer's from its first
    message: the bot gets the customer's id and tier as slots (tier thresholds, VIP lane) before it reads the
    message. The action server reads the same server-side record, never the slots, for anything it vouches for."""
    if gw.customers is None:
        return
    customer, new = await gw.customers.prime(conversation_id)
    if not (customer and new):
        return
    events = [{"event": "slot", "name": "customer_id", "value": customer["id"], "timestamp": time.time()},
              {"event": "slot", "name": "customer_tier", "value": customer["tier"], "timestamp": time.time()}]
    try:
        await gw.rasa.append_events(conversation_id, events)
    except RasaError as exc:  # the handoff still finds the customer (server-side record); thresholds stay regular
        logger.warning("could not tell the bot the linked customer of %s: %s", conversation_id, exc)


async def canary_arm(gw: Gateway, conversation_id: str) -> str | None:
    """The conversation's arm while a canary runs (conversations/canary.py); None without one (no Redis read)."""
    running = gw.rasa.canary
    if running is None:
        return None
    return canary.arm(running, conversation_id, await gw.store.created_at(conversation_id))


def bot_messages(rasa_messages: list[dict[str, Any]], arm: str | None = None) -> list[ChatMessage]:
    """The bot's messages to store; ``arm``: the canary arm that answered (kept with each for the record)."""
    out = []
    for m in rasa_messages:
        text = m.get("text") or ""
        buttons = [
            {"title": str(b.get("title", "")), "payload": str(b.get("payload", ""))}
            for b in m.get("buttons") or []
            if isinstance(b, dict)
        ]
        if text or buttons:
            source = bot_source(m)
            if arm:
                source["arm"] = arm
            out.append(ChatMessage(role="bot", text=text, buttons=buttons, source=source))
    return out


def bot_source(rasa_message: dict[str, Any]) -> dict[str, Any]:
    """Where a bot message came from, as Rasa's sourced REST channel reports it (bot/plugins/rest_channel.py):
    ``response`` and, for a knowledge answer, ``kb`` {id, score}. Rasa's reply is server side (loopback, the
    customer's words never become these fields); a reply without them (another channel class) gives {}."""
    if "response" not in rasa_message:
        return {}
    out: dict[str, Any] = {"response": str(rasa_message.get("response") or "")[:80]}
    kb = rasa_message.get("kb")
    if isinstance(kb, dict) and isinstance(kb.get("id"), str) and kb["id"]:
        score = kb.get("score")
        out["kb"] = {"id": kb["id"][:120],
                     "score": float(score) if isinstance(score, (int, float)) and not isinstance(score, bool) else None}
    return out


async def as_customer_text(store: ConversationStore, conversation_id: str, text: str, fresh_s: float
                           ) -> tuple[str, bool]:
    """What Rasa may read. A leading "/" makes Rasa treat a message as a command (an intent with entities, or
    /restart, /back, /session_start). Only the payload of a button the bot showed in this conversation, within
    WEB_BUTTON_FRESH_S, passes as a command; an older button is read as its title (what the customer saw); anything
    else typed with a slash is read as plain words. Returns (text for the bot, whether it is an offered payload)."""
    if not text.startswith("/"):
        return text, False
    state, title = await store.offered_payload(conversation_id, text, fresh_s)
    if state == "fresh":
        return text, True
    if state == "stale" and title:
        return title.lstrip("/ "), True
    return text.lstrip("/ "), False


async def record_csat(desk: HandoffService, conversation_id: str, stars: int, ui_lang: str | None
                      ) -> list[ChatMessage]:
    result = await desk.record_csat(conversation_id, stars)
    if result is None:
        return [ChatMessage(role="system", text=say("csat_none", "", ui_lang))]
    handoff_id, reopened = result
    handoff = await desk.get(handoff_id) or {}
    language = handoff.get("language") or ui_lang
    return [ChatMessage(role="system", text=say_in("csat_reopened" if reopened else "csat_thanks", language))]


async def replay(gw: Gateway, message: CustomerMessage, previous: str, wait_s: float
                 ) -> list[dict[str, Any]] | None:
    """A retried message: return the reply already given instead of answering twice. If the first attempt died
    before answering (its lease ran out), answer now; the message itself is stored exactly once either way.
    None when the first attempt is still answering after ``wait_s``."""
    store, conversation_id = gw.store, message.conversation_id
    waited = 0.0
    while previous.startswith(PENDING):
        lease_over = float(previous[len(PENDING):]) < time.time()
        if lease_over and await store.take_over(conversation_id, message.message_id, gw.lease_s):
            return await answer_stored(gw, message)
        if waited >= wait_s:
            return None
        await asyncio.sleep(0.2)
        waited += 0.2
        previous = await store.client_message_state(conversation_id, message.message_id) or previous
    return json.loads(previous)
