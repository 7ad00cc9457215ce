"""Language detection and text cleaning shared by NLU, actions and gateway."""
import pytest

from bot.shared.text import clean_text, detect_language, to_halfwidth


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("where is my order", "en"),
        ("我的订单到哪了", "zh"),
        ("我的order到哪了", "zh"),
        ("能不能cancel订单", "zh"),
        ("where is my 订单 please", "en"),
        ("DM2026110512", None),
        ("😡😡😡", None),
        ("", None),
        ("   ", None),
        ("订单DM2026110512", "zh"),
        ("refund 退款", "zh"),
        ("ＷＨＥＲＥ ＩＳ ＭＹ ＯＲＤＥＲ", "en"),
        # Mixed text: one rule for the conversation and the knowledge base (kb_index.text.detect_lang uses it).
        ("ok", "en"),
        ("iPhone 退货", "zh"),  # a brand name in a Chinese request
        ("我的order呢", "zh"),
        ("do you ship with 顺丰?", "en"),  # an English question naming a Chinese carrier
        ("is 退 possible for this order", "en"),
        ("退", "zh"),
    ],
)
def test_detect_language(text: str, expected: str) -> None:
    assert detect_language(text) == expected


def test_halfwidth_keeps_length_and_maps_digits() -> None:
    assert to_halfwidth("ＤＭ２０２６１１０５１２") == "DM2026110512"
    assert len(to_halfwidth("我的ＤＭ２０")) == len("我的ＤＭ２０")


def test_clean_text_strips_bidi_and_zero_width_characters() -> None:
    assert clean_text("pay to \u202egnp.exe\u202c now") == "pay to gnp.exe now"
    assert clean_text("re\u200bfund\u2066 \ufeffnow\u200f") == "refund now"
    assert clean_text("\u2067转\u200d人\u200c工\u2069") == "转人工"
    family = "\U0001F468\u200d\U0001F469\u200d\U0001F467"  # one emoji built with zero-width joiners
    assert clean_text(f"hi {family}") == f"hi {family}"


def test_clean_text_strips_control_characters_and_truncates() -> None:
    assert clean_text("hi\x00\x07 there\x1b") == "hi there"
    assert clean_text("  \t ") == ""
    assert clean_text("a" * 5000, max_chars=100) == "a" * 100
    assert clean_text("line1\nline2") == "line1\nline2"
