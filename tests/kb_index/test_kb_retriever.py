"""Retriever: answers in the question's language, confidence levels, odd input, errors, hot reload."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from kb_fixtures import FIXTURE_ARTICLES, write_kb

from kb_index.builder import META_FILE, build_index
from kb_index.dense import PASSAGES_FILE, QUESTIONS_FILE
from kb_index.errors import KBUnavailable
from kb_index.layout import BUILDS_DIR, FINGERPRINT_FILE
from kb_index.retriever import Retriever, query_words
from kb_index.schema import ArticleText, Confidence, Hit

ZH_TITLES = {a["id"]: a["title"]["zh"] for arts in FIXTURE_ARTICLES.values() for a in arts}
EN_TITLES = {a["id"]: a["title"]["en"] for arts in FIXTURE_ARTICLES.values() for a in arts}
EN_ANSWERS = {a["id"]: a["answer"]["en"] for arts in FIXTURE_ARTICLES.values() for a in arts}


@pytest.mark.parametrize(
    ("question", "expected_id"),
    [
        ("退回去的快递费要我自己付吗", "returns-shipping-fee"),
        ("钱退到银行卡要几天", "refund-bank-card"),
        ("I need a VAT receipt, how do I get one?", "invoice-request"),
        ("what time do your agents start work", "service-hours"),
        ("can I send back a jacket I bought 5 days ago", "returns-window"),
    ],
)
def test_paraphrased_question_finds_its_article_first(retriever: Retriever, question: str, expected_id: str) -> None:
    hits = retriever.search(question, k=3)
    assert hits[0].id == expected_id
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_chinese_question_gets_chinese_title_and_answer(retriever: Retriever) -> None:
    hit = retriever.search("发票怎么开", k=1)[0]
    assert hit == Hit(
        id="invoice-request",
        title="如何申请发票",
        score=hit.score,
        answer="签收后 30 天内可在订单页申请电子发票，3 个工作日内开具。",
    )


def test_english_question_gets_english_answer(retriever: Retriever) -> None:
    hit = retriever.search("How do I request an invoice?", k=1)[0]
    assert (hit.title, hit.answer) == ("How to request an invoice", EN_ANSWERS["invoice-request"])


def test_explicit_language_overrides_detection(retriever: Retriever) -> None:
    hit = retriever.search("发票怎么开", k=1, lang="en")[0]
    assert (hit.id, hit.title) == ("invoice-request", "How to request an invoice")


def test_article_lookup_by_id_in_a_language(retriever: Retriever) -> None:
    article = retriever.article("service-hours", "zh")
    assert article == ArticleText(
        id="service-hours", title="人工客服服务时间", answer="人工客服每天 9:00-21:00（北京时间）在线。"
    )
    assert retriever.article("no-such-article", "en") is None
    assert "service-hours" in retriever.article_ids


def test_mixed_question_is_answered_in_the_language_the_bot_detects(retriever: Retriever) -> None:
    # One language rule (bot.shared.text.detect_language): two ideographs in an English sentence stay English
    # (the KB's own rule answered this in Chinese before); a Chinese sentence with an English word stays Chinese.
    hit = retriever.search("my refund 银行 card when?", k=1)[0]
    assert hit.id == "refund-bank-card"
    assert hit.title == EN_TITLES["refund-bank-card"]
    hit = retriever.search("我的refund退到银行卡要多久", k=1)[0]
    assert hit.id == "refund-bank-card"
    assert hit.title == ZH_TITLES["refund-bank-card"]


def test_k_limits_hits_and_never_exceeds_the_article_count(retriever: Retriever) -> None:
    assert len(retriever.search("退货", k=1)) == 1
    assert len(retriever.search("退货", k=50)) == 5
    assert retriever.search("退货", k=0) == []


@pytest.mark.parametrize("question", ["", "   \n\t", "😀😀🙏", "？？！！", "<p>&nbsp;</p>"])
def test_question_without_words_returns_no_hits(retriever: Retriever, question: str) -> None:
    assert retriever.search(question) == []


def test_html_question_is_searched_by_its_text(retriever: Retriever) -> None:
    html_hits = retriever.search("<div><b>退货运费</b>谁出？<br/><script>x()</script></div>", k=1)
    plain_hits = retriever.search("退货运费 谁出？", k=1)
    assert html_hits[0].id == plain_hits[0].id == "returns-shipping-fee"
    assert html_hits[0].score == pytest.approx(plain_hits[0].score, abs=1e-3)


def test_ten_thousand_character_question_is_truncated_not_rejected(retriever: Retriever) -> None:
    question = "退款到银行卡要多久？" + "啊" * 9_990
    started = time.perf_counter()
    hits = retriever.search(question, k=2)
    assert len(hits) == 2
    assert time.perf_counter() - started < 10.0


def test_emoji_and_text_question_still_searches(retriever: Retriever) -> None:
    assert retriever.search("人工客服几点上班 😡😡", k=1)[0].id == "service-hours"


def test_classify_uses_the_configured_thresholds(retriever: Retriever) -> None:
    settings = retriever.settings
    assert retriever.classify(settings.confident_threshold) is Confidence.CONFIDENT
    assert retriever.classify(settings.confident_threshold - 1e-6) is Confidence.MIDDLING
    assert retriever.classify(settings.middling_threshold) is Confidence.MIDDLING
    assert retriever.classify(settings.middling_threshold - 1e-6) is Confidence.NONE


def test_a_long_message_needs_less_score_than_a_short_one(retriever: Retriever) -> None:
    settings = retriever.settings
    short = "refund to my card?"
    long = ("I paid for the lamp with my bank card two weeks ago and sent it back last Monday because the switch "
            "was broken; the shop confirmed the return. How many days until the refund reaches my card?")
    below = settings.confident_threshold - 0.01
    assert query_words(long) > 4 * settings.long_query_words
    assert retriever.classify(below, short) is Confidence.MIDDLING
    assert retriever.classify(below, long) is Confidence.CONFIDENT
    # Chinese length counts characters / 2: 40 characters are 20 words
    assert query_words("我" * 40) == 20
    assert retriever.classify(below) is Confidence.MIDDLING  # without the question: the plain thresholds


def test_in_scope_question_scores_above_unrelated_question(retriever: Retriever) -> None:
    in_scope = retriever.search("退货运费谁承担", k=1)[0].score
    unrelated = retriever.search("明天北京会下雨吗", k=1)[0].score
    assert in_scope > unrelated
    assert retriever.classify(in_scope) is Confidence.CONFIDENT
    assert retriever.classify(unrelated) is Confidence.NONE


def test_bm25_fusion_can_be_switched_off(settings: Any, encoder: Any, built: Any) -> None:
    dense_only = Retriever.from_settings(settings.model_copy(update={"use_bm25": False}), encoder=encoder)
    fused = Retriever.from_settings(settings, encoder=encoder)
    question = "退款到银行卡要多久"
    assert dense_only.search(question, k=1)[0].id == fused.search(question, k=1)[0].id == "refund-bank-card"
    assert dense_only.search(question, k=1)[0].score != fused.search(question, k=1)[0].score


# ----------------------------------------------------------------------------------------- errors


def test_missing_index_raises_kb_unavailable_naming_the_build_command(settings: Any, encoder: Any) -> None:
    with pytest.raises(KBUnavailable, match=r"python -m kb_index build"):
        Retriever.from_settings(settings, encoder=encoder)


def test_corrupt_vectors_file_raises_kb_unavailable(settings: Any, encoder: Any, built: Any) -> None:
    (built.build_dir / PASSAGES_FILE).write_bytes(b"not a faiss index")
    with pytest.raises(KBUnavailable, match=r"corrupt.*python -m kb_index build --force"):
        Retriever.from_settings(settings, encoder=encoder)


def test_truncated_metadata_raises_kb_unavailable(settings: Any, encoder: Any, built: Any) -> None:
    meta_path = built.build_dir / META_FILE
    meta_path.write_text(meta_path.read_text()[:100])
    with pytest.raises(KBUnavailable, match="corrupt"):
        Retriever.from_settings(settings, encoder=encoder)


def test_missing_build_folder_raises_kb_unavailable(settings: Any, encoder: Any, built: Any) -> None:
    shutil.rmtree(built.build_dir)
    with pytest.raises(KBUnavailable, match="python -m kb_index build"):
        Retriever.from_settings(settings, encoder=encoder)


def test_index_built_with_another_model_raises_kb_unavailable(settings: Any, encoder: Any, built: Any) -> None:
    path = settings.index_path / FINGERPRINT_FILE
    fingerprint = json.loads(path.read_text())
    fingerprint["model"] = "hub:sentence-transformers/all-MiniLM-L6-v2"
    path.write_text(json.dumps(fingerprint))
    with pytest.raises(KBUnavailable, match=r"built with model .*all-MiniLM.*python -m kb_index build"):
        Retriever.from_settings(settings, encoder=encoder)


def test_missing_model_directory_raises_kb_unavailable(tmp_path: Path) -> None:
    from kb_index.encoder import load_encoder
    from kb_index.settings import KBSettings

    settings = KBSettings(model=str(tmp_path / "nowhere"))
    with pytest.raises(KBUnavailable, match="nowhere does not exist; check KB_MODEL"):
        load_encoder(settings)


def test_unprovisioned_default_model_names_the_provision_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from kb_index import encoder as encoder_module
    from kb_index.settings import KBSettings

    settings = KBSettings()
    monkeypatch.setattr(KBSettings, "model_location", property(lambda self: "/nonexistent/e5"))
    with pytest.raises(KBUnavailable, match="python -m kb_index provision-model"):
        encoder_module.load_encoder(settings)


# ----------------------------------------------------------------------------------------- reload


def test_reload_swaps_in_a_new_build(settings: Any, encoder: Any, retriever: Retriever, kb_dir: Path) -> None:
    old_build = retriever.fingerprint["build_id"]
    new_article = {
        "id": "membership-perks",
        "title": {"zh": "金卡会员权益", "en": "Gold member benefits"},
        "answer": {"zh": "金卡会员人工排队优先。", "en": "Gold members get priority in the agent queue."},
        "questions": {"zh": ["金卡会员有什么好处"], "en": ["What do gold members get?"]},
        "tags": ["membership"],
    }
    write_kb(kb_dir, {"membership.yml": [new_article]})
    assert retriever.index_changed() is False
    build_index(settings, encoder=encoder)
    assert retriever.index_changed() is True

    assert retriever.reload() is True
    assert retriever.fingerprint["build_id"] != old_build
    assert retriever.article_count == 6
    assert retriever.search("金卡会员有哪些权益", k=1)[0].id == "membership-perks"
    assert retriever.reload() is False


def test_failed_reload_keeps_serving_the_old_index(settings: Any, encoder: Any, retriever: Retriever) -> None:
    old_build = retriever.fingerprint["build_id"]
    forced = build_index(settings, encoder=encoder, force=True)
    (forced.build_dir / QUESTIONS_FILE).write_bytes(b"garbage")
    with pytest.raises(KBUnavailable):
        retriever.reload()
    assert retriever.fingerprint["build_id"] == old_build
    assert retriever.search("发票怎么开", k=1)[0].id == "invoice-request"


def test_reload_is_consistent_while_searches_run(settings: Any, encoder: Any, retriever: Retriever) -> None:
    from concurrent.futures import ThreadPoolExecutor

    build_index(settings, encoder=encoder, force=True)
    with ThreadPoolExecutor(max_workers=2) as pool:
        searches = [pool.submit(retriever.search, "退货运费谁出", 1) for _ in range(4)]
        reloaded = pool.submit(retriever.reload)
        results = [f.result()[0].id for f in searches]
    assert reloaded.result() is True
    assert results == ["returns-shipping-fee"] * 4


def test_builds_folder_has_the_loaded_build(settings: Any, retriever: Retriever) -> None:
    assert (settings.index_path / BUILDS_DIR / retriever.fingerprint["build_id"]).is_dir()
