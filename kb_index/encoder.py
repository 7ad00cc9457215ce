"""Loading a sentence-transformers model for the KB, with the thread and prompt conventions."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kb_index.errors import KBUnavailable
from kb_index.provision import FINGERPRINT_FILE
from kb_index.settings import KBSettings

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

PROVISION_COMMAND = "python -m kb_index provision-model"
# Small files whose content identifies a local model directory (weights are identified by size,
# hashing hundreds of MB at every start would cost seconds).
_IDENTITY_FILES: tuple[str, ...] = (
    FINGERPRINT_FILE,
    "config.json",
    "modules.json",
    "config_sentence_transformers.json",
    "sentence_bert_config.json",
    "tokenizer_config.json",
)
_WEIGHT_FILES: tuple[str, ...] = ("model.safetensors", "pytorch_model.bin")


def model_identity(location: str) -> str:
    """Stable id of a model: the hub name, or for a directory a hash of its configuration.

    Stored in the index fingerprint so an index is never searched with a different model.
    """
    path = Path(location)
    if not path.is_dir():
        return f"hub:{location}"
    digest = hashlib.sha256()
    for name in _IDENTITY_FILES:
        file = path / name
        if file.is_file():
            digest.update(name.encode())
            digest.update(file.read_bytes())
    for name in _WEIGHT_FILES:
        file = path / name
        if file.is_file():
            digest.update(f"{name}:{file.stat().st_size}".encode())
    return f"dir:{path.name}:{digest.hexdigest()[:16]}"


@dataclass
class Encoder:
    """A loaded sentence-transformers model plus what the KB needs to know about it."""

    model: SentenceTransformer
    identity: str
    location: str
    load_seconds: float

    @property
    def dimension(self) -> int:
        """Embedding size."""
        getter = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        dim = getter()
        if dim is None:
            raise KBUnavailable(f"model {self.location} does not report an embedding dimension")
        return int(dim)

    @property
    def max_seq_length(self) -> int:
        """Tokens the model keeps per text (longer texts are truncated by sentence-transformers)."""
        return int(self.model.max_seq_length or 512)

    def encode_queries(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Unit-length float32 vectors for questions (the model's ``query`` prompt, if it has one)."""
        return self._encode(texts, query=True, batch_size=batch_size)

    def encode_documents(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Unit-length float32 vectors for passages (the model's ``document``/``passage`` prompt)."""
        return self._encode(texts, query=False, batch_size=batch_size)

    def _encode(self, texts: Sequence[str], *, query: bool, batch_size: int) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        method = self.model.encode_query if query else self.model.encode_document
        vectors = method(
            list(texts),
            batch_size=batch_size,
            show_progress_bar=False,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


def set_torch_threads(threads: int) -> None:
    """Pin torch (and FAISS) to ``threads`` intra-op threads; more contend on the shared cores."""
    import faiss
    import torch

    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)


def load_encoder(settings: KBSettings) -> Encoder:
    """Load ``settings.model`` on CPU.

    Raises:
        KBUnavailable: the default model is not provisioned, or the model cannot be loaded.
    """
    location = settings.model_location
    if settings.model_is_default and not (Path(location) / "modules.json").is_file():
        raise KBUnavailable(f"default embedding model not found in {location}; run `{PROVISION_COMMAND}`")
    if Path(location).is_absolute() and not Path(location).is_dir():
        raise KBUnavailable(f"embedding model directory {location} does not exist; check KB_MODEL")
    set_torch_threads(settings.torch_threads)
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    # A service log has no use for "Loading weights" progress bars.
    hf_logging.disable_progress_bar()

    started = time.perf_counter()
    kwargs: dict[str, Any] = {"device": "cpu"}
    if Path(location).is_dir():
        kwargs["local_files_only"] = True
    try:
        model = SentenceTransformer(location, **kwargs)
    except (OSError, ValueError, RuntimeError, json.JSONDecodeError) as exc:
        fix = PROVISION_COMMAND if settings.model_is_default else "check KB_MODEL"
        raise KBUnavailable(f"cannot load embedding model {location!r}: {exc}; {fix}") from exc
    model.eval()
    elapsed = time.perf_counter() - started
    logger.info("loaded model %s in %.2f s", location, elapsed)
    return Encoder(model=model, identity=model_identity(location), location=location, load_seconds=elapsed)
