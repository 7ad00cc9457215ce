"""Pinyin-typed Chinese words are read back into the vocabulary's characters; English words never are."""

from __future__ import annotations

import re

from bot.shared.pinyin import PinyinReader

CHINESE = [
    "退货的运费由谁承担",
    "发货后还能取消订单吗",
    "满99元包邮",
    "价保怎么申请",
    "退款到支付宝要多久",
    "七天无理由退货",
    "质量问题怎么换货",
    "我们的人工客服",
    "银行卡退款",
]
ENGLISH = ["the men and women", "change", "who pays", "how long"]


def reader() -> PinyinReader:
    return PinyinReader(CHINESE, ENGLISH)


def _joined(text: str) -> str:
    """Words of Chinese side by side written together: how jieba cut the vocabulary ("取消订单" or "取消" + "订单")
    depends on the dictionary the process has (the Rasa plugins add the store's words to it)."""
    return re.sub(r"(?<=[\u4e00-\u9fff]) (?=[\u4e00-\u9fff])", "", text)


def test_pinyin_words_become_the_vocabularys_chinese_words() -> None:
    r = reader()
    assert _joined(r.read("tuihuo yunfei who pays")) == "退货运费 who pays"
    assert _joined(r.read("quxiao dingdan before fahuo, possible?")) == "取消订单 before 发货, possible?"
    assert r.read("baoyou门槛是多少") == "包邮门槛是多少"
    assert r.read("TuiKuan to zhifubao how long") == "退款 to 支付宝 how long"


def test_syllables_typed_apart_are_joined_into_one_word() -> None:
    assert _joined(reader().read("qi tian tui huo ok? yin hang ka")) == "七天退货 ok? 银行卡"


def test_english_words_stay_english_alone_and_inside_a_run() -> None:
    r = reader()
    assert "women" not in r.table and r.read("the men and women") == "the men and women"
    assert r.read("can I change my order") == "can I change my order"
    assert r.read("where is my parcel DM2026110512?") == "where is my parcel DM2026110512?"


def test_text_without_pinyin_is_returned_unchanged() -> None:
    r = reader()
    for text in ("", "退货运费谁出", "ok", "12345", "😀"):
        assert r.read(text) == text
    assert PinyinReader([]).read("tuihuo") == "tuihuo"  # no vocabulary, no rewriting
