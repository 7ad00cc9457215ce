"""Texts the gateway itself says (when the bot cannot be asked), in both languages."""
from __future__ import annotations

from typing import Optional

from bot.text import EN, ZH, detect_language

TEXTS = {
    "empty": {
        ZH: "您似乎发送了一条空消息，请问有什么可以帮您？",
        EN: "It looks like your message was empty. What can I help you with?",
    },
    "bot_unavailable": {
        ZH: "抱歉，系统暂时繁忙，您的消息已保存。请稍后再试，或输入“人工”联系客服。",
        EN: "Sorry, I'm having a technical problem right now. Your message is saved; please try again in a moment.",
    },
    "agent_owns": {
        ZH: "您的消息已转给正在为您服务的人工客服。",
        EN: "Your message has been passed to the agent helping you.",
    },
}


def say(key: str, text: str = "", ui_lang: Optional[str] = None) -> str:
    """Pick the customer's language: the message's own language, else the page's UI language, else Chinese."""
    language = detect_language(text) or (ui_lang if ui_lang in (ZH, EN) else ZH)
    return TEXTS[key][language]
