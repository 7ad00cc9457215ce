"""Texts the gateway itself says (when the bot cannot be asked), in both languages."""
from __future__ import annotations

from bot.shared.text import EN, ZH, detect_language

TEXTS = {
    "empty": {
        ZH: "您似乎发送了一条空消息，请问有什么可以帮您？",
        EN: "It looks like your message was empty. What can I help you with?",
    },
    "bot_unavailable": {
        ZH: "抱歉，系统暂时繁忙，您的消息已保存。请稍后再试，或输入“人工”联系客服。",
        EN: "Sorry, I'm having a technical problem right now. Your message is saved; please try again in a moment.",
    },
    "bot_incomplete": {
        ZH: "抱歉，刚才处理您的消息时出了点问题，没能完成回复。您的消息已保存，请稍后再发送一次。",
        EN: "Sorry, something went wrong while I was handling your message and I could not finish my answer. "
            "Your message is saved; please send it again in a moment.",
    },
    "agent_owns": {
        ZH: "您的消息已转给正在为您服务的人工客服。",
        EN: "Your message has been passed to the agent helping you.",
    },
    "queued": {
        ZH: "您的消息已保存，人工客服接入后会看到您发送的全部内容，请稍候。",
        EN: "Your messages are saved; the agent who picks up your conversation will see all of them. Please hold on.",
    },
    "rate_limited": {
        ZH: "您发送得有点快，消息都已保存。请稍等片刻，我们会逐条查看。",
        EN: "You're sending messages very quickly. All of them are saved; please give us a moment to catch up.",
    },
    "client_limited": {
        ZH: "操作过于频繁，请稍后再发送。您的消息没有丢失，稍后点击“重试”即可。",
        EN: "Too many requests from your connection. Your message is not lost: please retry in a little while.",
    },
    "agent_joined": {
        ZH: "客服 {name} 已加入对话，将为您继续服务。",
        EN: "{name} joined the conversation and will help you from here.",
    },
    "handed_back": {
        ZH: "人工客服已将对话交回智能助手，您可以继续提问。",
        EN: "The agent has handed you back to the assistant. Feel free to keep asking.",
    },
    "csat_question": {
        ZH: "本次人工服务已结束。请为本次服务打分（1-5 星）：",
        EN: "This conversation with our agent has ended. How would you rate the service (1-5 stars)?",
    },
    "csat_thanks": {
        ZH: "感谢您的评价！",
        EN: "Thank you for your rating!",
    },
    "csat_reopened": {
        ZH: "很抱歉这次没有让您满意，主管会尽快跟进您的问题。",
        EN: "We're sorry we didn't get this right. A supervisor will follow up on your case.",
    },
    "csat_none": {
        ZH: "这次对话没有待评价的服务，感谢您的反馈。",
        EN: "There is no service waiting for a rating here, but thank you for the feedback.",
    },
}


def say(key: str, text: str = "", ui_lang: str | None = None) -> str:
    """Pick the customer's language: the message's own language, else the page's UI language, else Chinese."""
    language = detect_language(text) or (ui_lang if ui_lang in (ZH, EN) else ZH)
    return TEXTS[key][language]


def say_in(key: str, language: str | None) -> str:
    """A text in a known language (the handoff's), Chinese when unknown."""
    return TEXTS[key][language if language in (ZH, EN) else ZH]
