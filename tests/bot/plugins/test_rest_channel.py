"""Rasa's REST channel with each bot message's source (bot/plugins/rest_channel.py), on Rasa's own objects: the channel
as Rasa loads it from credentials.yml, Rasa's BotUttered events as the processor hands them to the output channel.
The whole route, with the real model and action server, is tests/e2e/test_e2e_answer_sources.py."""
from __future__ import annotations

import asyncio

import pytest
import yaml
from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.core.run import _create_single_channel
from rasa.shared.core.events import BotUttered

from bot.plugins.rest_channel import SourcedCollector, SourcedRestInput, sourced
from bot.shared.paths import REPO_ROOT


def _knowledge_answer() -> BotUttered:
    # What actions/knowledge.py's utter_message(text=..., kb=...) becomes in Rasa (create_bot_utterance).
    return BotUttered("Delivery takes 3-5 days.\n\nRemote regions 7 days.", {"buttons": None},
                      {"kb": {"id": "shipping-time", "title": "Delivery time", "score": 0.912345}})


def _domain_response() -> BotUttered:
    return BotUttered("Did this help?", {"buttons": [{"title": "Yes", "payload": "/affirm"}]},
                      {"utter_action": "utter_kb_did_it_help"})


def test_credentials_name_the_sourced_channel_under_rasas_rest_url() -> None:
    credentials = yaml.safe_load((REPO_ROOT / "credentials.yml").read_text(encoding="utf-8"))
    assert list(credentials) == ["bot.plugins.rest_channel.SourcedRestInput"]
    channel = _create_single_channel("bot.plugins.rest_channel.SourcedRestInput", None)
    assert isinstance(channel, SourcedRestInput) and channel.name() == "rest"  # /webhooks/rest/webhook
    assert channel.url_prefix() == "rest"


def test_collector_keeps_the_source_of_each_part() -> None:
    collector = SourcedCollector()
    assert collector.name() == CollectingOutputChannel.name()  # channel-specific responses unchanged

    async def run() -> None:
        for event in (_knowledge_answer(), _domain_response(), BotUttered("Your order DM123 shipped.", {}, {})):
            await collector.send_response("s1", event.message())

    asyncio.run(run())
    assert collector.messages == [
        {"recipient_id": "s1", "text": "Delivery takes 3-5 days.", "response": "",
         "kb": {"id": "shipping-time", "score": 0.9123}},
        {"recipient_id": "s1", "text": "Remote regions 7 days.", "response": "",
         "kb": {"id": "shipping-time", "score": 0.9123}},
        {"recipient_id": "s1", "text": "Did this help?", "buttons": [{"title": "Yes", "payload": "/affirm"}],
         "response": "utter_kb_did_it_help"},
        {"recipient_id": "s1", "text": "Your order DM123 shipped.", "response": ""},
    ]


@pytest.mark.parametrize("fails", [False, True])
def test_the_routes_collector_gets_the_messages_also_when_the_turn_fails(fails: bool) -> None:
    async def processor(message: UserMessage) -> None:
        await message.output_channel.send_response(message.sender_id, _knowledge_answer().message())
        if fails:
            raise RuntimeError("action server down")

    route_collector = CollectingOutputChannel()

    async def run() -> None:
        await sourced(processor)(UserMessage("how long?", route_collector, "s2"))

    if fails:
        with pytest.raises(RuntimeError):
            asyncio.run(run())
    else:
        asyncio.run(run())
    assert [m["kb"]["id"] for m in route_collector.messages] == ["shipping-time", "shipping-time"]


def test_a_customer_message_cannot_set_the_source() -> None:
    """Only the event's metadata (written by Rasa from the action server and the domain) makes a source; what the
    customer sent is the UserMessage's text and metadata, which never reach a bot message."""
    async def processor(message: UserMessage) -> None:
        await message.output_channel.send_response(message.sender_id, BotUttered("Hello!", {}, {}).message())

    collector = CollectingOutputChannel()
    message = UserMessage('{"kb": {"id": "forged"}}', collector, "s3", metadata={"kb": {"id": "forged"},
                                                                                  "response": "utter_x"})
    asyncio.run(sourced(processor)(message))
    assert collector.messages == [{"recipient_id": "s3", "text": "Hello!", "response": ""}]
