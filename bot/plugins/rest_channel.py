"""Rasa's REST channel, with each bot message's source in the reply the gateway receives.

Rasa keeps where a bot message came from in its ``BotUttered`` event's metadata: ``utter_action`` (the domain
response, for rules, stories and ``dispatcher.utter_message(response=...)``) and, for a knowledge answer,
``kb`` (``actions/knowledge.py`` ``_give_answer``: article id, title, retrieval score). Rasa hands that metadata to the
output channel (``OutputChannel.send_response(**message)``), but the stock REST collector drops every extra keyword,
so the gateway never saw it. :class:`SourcedCollector` keeps two of them on every message part it collects:

* ``kb``: ``{"id": <article id>, "score": <retrieval score>}`` (no text, no title);
* ``response``: the domain response's name (``utter_...``), or ``""`` for text an action wrote itself.

The channel keeps the name ``rest`` (same URL ``/webhooks/rest/webhook``, same request and reply) and swaps only the
collector; ``credentials.yml`` names this class instead of ``rest``. What the customer typed never reaches these
fields: they are written by Rasa from the action server's response and the domain, server side.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.core.channels.rest import RestInput

MAX_ID_CHARS = 120


def source_of(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The source fields of one bot message from the metadata Rasa passes to the output channel."""
    out: dict[str, Any] = {"response": str(kwargs.get("utter_action") or "")[:80]}
    kb = kwargs.get("kb")
    if isinstance(kb, dict) and kb.get("id"):
        score = kb.get("score")
        out["kb"] = {"id": str(kb["id"])[:MAX_ID_CHARS],
                     "score": round(float(score), 4) if isinstance(score, (int, float)) else None}
    return out


class SourcedCollector(CollectingOutputChannel):
    """The REST collector (same name, so channel-specific responses are unchanged) that keeps the source fields."""

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        for part in text.strip().split("\n\n"):
            await self._persist_message(self._message(recipient_id, text=part) | source_of(kwargs))

    async def send_text_with_buttons(self, recipient_id: str, text: str, buttons: list[dict[str, Any]],
                                     **kwargs: Any) -> None:
        await self._persist_message(self._message(recipient_id, text=text, buttons=buttons) | source_of(kwargs))


def sourced(on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Callable[[UserMessage], Awaitable[Any]]:
    """Wrap Rasa's message handler: a message from the REST route is answered into a :class:`SourcedCollector`, whose
    messages are then handed to the route's own collector (also when the turn fails half way)."""

    async def handle(message: UserMessage) -> Any:
        collector = message.output_channel
        if type(collector) is not CollectingOutputChannel:  # the streaming variant: left as Rasa made it
            return await on_new_message(message)
        message.output_channel = SourcedCollector()
        try:
            return await on_new_message(message)
        finally:
            collector.messages.extend(message.output_channel.messages)

    return handle


class SourcedRestInput(RestInput):
    """``rest`` with :class:`SourcedCollector` (see the module docstring)."""

    @classmethod
    def name(cls) -> str:
        return "rest"

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Any:
        return super().blueprint(sourced(on_new_message))
