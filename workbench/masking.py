"""What the inbox shows of a customer's message: personal data replaced by placeholders, before anything is stored.

* order numbers, tracking numbers and mobile phones (the policy's formats, bot/shared/patterns.py) become
  ``{order_number}``, ``{tracking_number}``, ``{phone}``; a phone written another way is still masked by the desk's
  redactor (bot/shared/redact.py), and any other run of 6+ digits becomes ``{number}``;
* e-mail addresses become ``{email}``;
* a name the customer gives ("my name is Wang Lei", "this is Anna", "我叫王磊", "收件人是李娜", "我姓王") becomes
  ``{name}``; in an agent's reply (:func:`mask_reply`) also the name the agent greets ("Hi Wang Lei", "王先生").

Adding a masked message to the training data (workbench/nlu.py) turns the identifier placeholders into made-up,
annotated examples and refuses a text that still holds ``{name}``, ``{email}`` or ``{number}``. Pure, no I/O.
"""
from __future__ import annotations

import re

from bot.shared.patterns import find_identifiers
from bot.shared.redact import GENERIC
from bot.shared.text import to_halfwidth

IDENTIFIER_PLACEHOLDERS = {"order_number": "{order_number}", "tracking_number": "{tracking_number}",
                           "phone": "{phone}"}
PERSONAL_PLACEHOLDERS = ("{name}", "{email}", "{number}")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_DIGITS = re.compile(r"(?<![0-9])[0-9][0-9 -]{4,}[0-9](?![0-9])")
_NAME_EN = re.compile(r"(?i:\b(?:my name is|my name's|my names|i am called|i'm called|this is|name is|name:|"
                      r"recipient is|signed))\s+([A-Z][a-z]+(?:\s+[A-Z][a-z]+)?)")
_NAME_ZH = re.compile(r"(我叫|我的名字是|我的名字叫|名字是|名字叫|姓名是?[:：]?\s*|收件人是?[:：]?\s*|"
                      r"收货人是?[:：]?\s*|联系人是?[:：]?\s*)([\u4e00-\u9fff]{2,3})")
_SURNAME_ZH = re.compile(r"(我姓)([\u4e00-\u9fff])")
_MASKED_PHONE = re.compile(r"(?:(?:\+|00)?86[\s-]?)?[0-9]{3}\*{8}")  # the desk redactor's 138********
_STARS = re.compile(r"\*{3,}")
MAX_CHARS = 300
REPLY_MAX_CHARS = 2000  # an agent's reply drafted into an article answer (workbench/articles.py MAX_TEXT_CHARS)
# How agents address the customer in a reply: "Hi Wang Lei,", "Dear Anna", "Mr. Chen", "王先生", "李女士".
_SALUTATION_EN = re.compile(r"(?i:\b(?:hi|hello|hey|dear|thanks|thank you|mr|mrs|ms|miss)\.?),?\s+"
                            r"([A-Z][a-z]+(?:\s+[A-Z][a-z]+)?)")
_SALUTATION_ZH = re.compile(r"([\u4e00-\u9fff]{1,2})(先生|女士|小姐)")


def mask(text: str, max_chars: int = MAX_CHARS) -> str:
    """``text`` as the inbox may store and show it (half-width, one line, at most ``max_chars`` characters)."""
    text = " ".join(to_halfwidth(str(text or "")).split())
    out, last = [], 0
    for m in find_identifiers(text):
        out.append(text[last:m.start])
        out.append(IDENTIFIER_PLACEHOLDERS.get(m.entity, "{number}"))
        last = m.end
    out.append(text[last:])
    text = GENERIC.text("".join(out), customer=True)
    text = _MASKED_PHONE.sub("{phone}", text)
    text = _STARS.sub("{number}", text)
    text = _EMAIL.sub("{email}", text)
    text = _DIGITS.sub("{number}", text)
    text = _NAME_EN.sub(lambda m: m.group(0)[: m.start(1) - m.start(0)] + "{name}", text)
    text = _NAME_ZH.sub(lambda m: m.group(1) + "{name}", text)
    text = _SURNAME_ZH.sub(lambda m: m.group(1) + "{name}", text)
    return text[:max_chars]


def mask_reply(text: str) -> str:
    """An agent's reply as the inbox may store it and a draft article may start from it: :func:`mask` (up to 2000
    characters) and, since agents address customers by name, the name after a greeting or a title ("Hi {name},",
    "{name}先生")."""
    text = mask(text, REPLY_MAX_CHARS)
    text = _SALUTATION_EN.sub(lambda m: m.group(0)[: m.start(1) - m.start(0)] + "{name}", text)
    return _SALUTATION_ZH.sub(lambda m: "{name}" + m.group(2), text)
