"""Language detection, question cleaning and BM25 tokens (kb_index.text) - no model needed."""

from __future__ import annotations

import pytest

from bot.shared.text import detect_language
from kb_index.text import JIEBA_DICT_DIR, clean_question, count_cjk, detect_lang, is_searchable, lexical_tokens


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("退货运费谁出？", "zh"),
        ("Who pays return shipping?", "en"),
        ("我的refund什么时候到", "zh"),  # mixed, >= 2 CJK characters -> zh
        ("do you ship with 顺丰?", "en"),  # mostly English (was "zh" by a rule of its own; one rule now)
        ("is 退 possible for this order", "en"),  # one ideograph among English words -> en
        ("退", "zh"),  # a lone ideograph
        ("😀😀", "zh"),  # nothing to go by -> the configured default
        ("", "zh"),
    ],
)
def test_detect_lang_follows_cjk_count_rule(text: str, expected: str) -> None:
    assert detect_lang(text, default="zh") == expected


def test_detect_lang_uses_the_given_default_when_no_script_decides() -> None:
    assert detect_lang("👍 ??", default="en") == "en"


@pytest.mark.parametrize(
    "text",
    ["ok", "iPhone 退货", "我的order呢", "where is my 订单 please", "refund 退款", "my refund 银行 card when?",
     "订单DM2026110512", "DM2026110512", "ＷＨＥＲＥ ＩＳ ＭＹ ＯＲＤＥＲ", "😀😀", ""],
)
def test_knowledge_base_and_conversation_use_one_language_rule(text: str) -> None:
    """The KB answers in the language the bot detects for the conversation (bot.shared.text.detect_language)."""
    for default in ("zh", "en"):
        assert detect_lang(text, default=default) == (detect_language(text) or default)


def test_count_cjk_counts_ideographs_only() -> None:
    assert count_cjk("订单DM2026110512到哪了？") == 5


def test_clean_question_strips_html_scripts_entities_and_spaces() -> None:
    raw = "<p>退货<b>运费</b>&nbsp;谁出？</p><script>alert('x')</script>\n\n  "
    assert clean_question(raw, max_chars=1000) == "退货 运费 谁出？"


def test_clean_question_cuts_to_max_chars() -> None:
    assert clean_question("a" * 10_000, max_chars=50) == "a" * 50


@pytest.mark.parametrize(
    ("text", "searchable"),
    [("", False), ("   ", False), ("🙂🙃", False), ("?!", False), ("a", True), ("退", True), ("7", True)],
)
def test_is_searchable_needs_a_letter_digit_or_ideograph(text: str, searchable: bool) -> None:
    assert is_searchable(text) is searchable


def test_lexical_tokens_segment_chinese_and_lowercase_english_without_stopwords() -> None:
    tokens = lexical_tokens("我的退款Refund什么时候到？The bank card")
    assert "退款" in tokens
    assert "refund" in tokens and "bank" in tokens and "card" in tokens
    assert "the" not in tokens and "的" not in tokens and "我" not in tokens and "什么" not in tokens


def test_lexical_tokens_use_the_project_jieba_dictionary() -> None:
    # "次日达" is not in jieba's own dictionary; data/jieba/ecommerce.txt (shared with Rasa) adds it.
    assert "次日达" in (JIEBA_DICT_DIR / "ecommerce.txt").read_text(encoding="utf-8")
    assert "次日达" in lexical_tokens("能次日达吗")


def test_lexical_tokens_of_emoji_and_punctuation_are_empty() -> None:
    assert lexical_tokens("😀 ？！...") == []
