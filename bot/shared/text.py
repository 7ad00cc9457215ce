"""Pure-Python text helpers shared by the Rasa side (3.10) and the services (3.11).

Nothing here imports Rasa, so the action server and the gateway use the very same rules as the NLU pipeline.
"""
from __future__ import annotations

import re
import unicodedata

ZH = "zh"
EN = "en"
SUPPORTED_LANGUAGES = (ZH, EN)

# CJK Unified Ideographs (+ extension A and compatibility ideographs): what a Simplified Chinese message is made of.
_CJK_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
# A Latin word of 2+ letters that is not glued to digits, so "DM2026110512" or "SF123..." do not count as English.
_LATIN_WORD_RE = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2,}(?![A-Za-z0-9])")
# C0/C1 control characters except tab and newline.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Invisible characters that change how text reads without being seen: bidi embeddings/overrides/isolates and marks
# (a reversed "moc.live" in the agent's console), zero-width spaces/joiners splitting words past filters, BOM.
# The zero-width joiner stays inside emoji sequences (family, flags), where it is visible as one picture.
_INVISIBLE_RE = re.compile(
    "[\u061c\u200b\u200c\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\u180e]"
    "|\u200d(?![\U0001F000-\U0001FAFF\u2600-\u27BF])"
)
_FULLWIDTH = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)}
_FULLWIDTH[0x3000] = 0x20  # ideographic space


def to_halfwidth(text: str) -> str:
    """Map full-width ASCII (typed by Chinese IMEs, e.g. "ＤＭ２０２６") to ASCII, keeping string length."""
    return text.translate(_FULLWIDTH)


def clean_text(text: str, max_chars: int = 2000) -> str:
    """Normalise a customer message: drop control and invisible characters, unify whitespace, truncate."""
    text = _INVISIBLE_RE.sub("", unicodedata.normalize("NFC", text))
    text = _CONTROL_RE.sub(" ", text)
    text = re.sub(r"[ \t\u00a0]+", " ", text).strip()
    return text[:max_chars]


def detect_language(text: str) -> str | None:
    """Return "zh" or "en" for the message, or None when it carries no language (emoji, digits, empty).

    A Chinese character carries roughly half a word, so mixed messages are decided by comparing
    ``cjk_chars / 2`` with the number of Latin words: "我的order到哪了" is Chinese, "where is my 订单" English.
    """
    cjk = len(_CJK_RE.findall(text))
    latin = len(_LATIN_WORD_RE.findall(to_halfwidth(text)))
    if cjk == 0 and latin == 0:
        return None
    return ZH if cjk / 2 >= latin else EN
