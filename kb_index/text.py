"""Text helpers: question cleaning, language detection and lexical tokens for BM25."""

from __future__ import annotations

import hashlib
import html
import re
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from bot.shared.text import EN, ZH, detect_language
from kb_index.schema import Lang
from kb_index.settings import PROJECT_ROOT

if TYPE_CHECKING:
    import jieba

# E-commerce words jieba does not know (退换货, 次日达 ...), shared with the Rasa NLU pipeline
# (config.yml: JiebaTokenizer dictionary_path), so both sides segment Chinese the same way.
JIEBA_DICT_DIR: Path = PROJECT_ROOT / "data" / "jieba"

# CJK Unified Ideographs (+ extension A and compatibility ideographs): what makes a question Chinese.
_CJK_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_TAG_RE = re.compile(r"<[^>]{0,500}>")
_SCRIPT_RE = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_SPACE_RE = re.compile(r"\s+")
# A question worth encoding holds at least one letter, digit or ideograph (emoji-only does not).
_WORDLIKE_RE = re.compile(r"[^\W_]")
_CJK_RUN_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_EN_WORD_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")

# Function words that match almost every article; dropping them keeps BM25 on content words.
_ZH_STOPWORDS: frozenset[str] = frozenset(
    (  # noqa: SIM905 - a word list reads better as one string
        "的 了 吗 呢 吧 啊 呀 我 你 您 他 她 它 们 是 在 有 和 与 或 就 都 也 还 要 会 能 可以 怎么 怎样 "
        "什么 请问 一下 这个 那个 这 那 个 么 嘛 哪 哪里 为什么 如何 多少 几 把 被 给 让 对 从 到"
    ).split()
)
_EN_STOPWORDS: frozenset[str] = frozenset(
    (  # noqa: SIM905
        "a an the is are was were be been am do does did i me my you your we our it its to of in on at "
        "for from with and or can could would should will how what when where why which who this that "
        "there please hi hello it's i'm"
    ).split()
)


def count_cjk(text: str) -> int:
    """Number of CJK ideographs in ``text``."""
    return len(_CJK_RE.findall(text))


def detect_lang(text: str, default: Lang = "zh") -> Lang:
    """Language to answer in: the one language rule of the bot (:func:`bot.shared.text.detect_language`, also
    used for the conversation's language), or ``default`` when the text carries no language (emoji, digits)."""
    lang = detect_language(text)
    if lang == ZH:
        return "zh"
    if lang == EN:
        return "en"
    return default


def clean_question(text: str, max_chars: int) -> str:
    """Strip HTML (tags, scripts, entities), collapse whitespace and cut to ``max_chars``.

    Customers paste HTML from web pages and e-mails; markup carries no meaning for retrieval.
    """
    text = _SCRIPT_RE.sub(" ", text)
    text = _TAG_RE.sub(" ", text)
    text = html.unescape(text)
    text = _SPACE_RE.sub(" ", text).strip()
    return text[:max_chars].strip()


def is_searchable(text: str) -> bool:
    """True when ``text`` holds a letter, digit or ideograph (emoji or punctuation alone do not)."""
    return bool(_WORDLIKE_RE.search(text))


def jieba_user_dicts() -> list[Path]:
    """The project's jieba user dictionaries (``data/jieba/*.txt``), in load order."""
    return sorted(JIEBA_DICT_DIR.glob("*.txt")) if JIEBA_DICT_DIR.is_dir() else []


def tokenizer_fingerprint() -> str:
    """Hash of the user dictionaries: the BM25 index must be rebuilt when they change."""
    digest = hashlib.sha256()
    for path in jieba_user_dicts():
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@lru_cache(maxsize=1)
def _jieba() -> jieba.Tokenizer:
    """A quiet jieba tokenizer with the user dictionaries, created on first use (~1 s)."""
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    tokenizer = jieba.Tokenizer()
    tokenizer.initialize()
    for path in jieba_user_dicts():
        tokenizer.load_userdict(str(path))
    return tokenizer


def lexical_tokens(text: str) -> list[str]:
    """Tokens for BM25: jieba words for Chinese runs, lower-cased word tokens for the rest."""
    tokens: list[str] = []
    lowered = text.lower()
    position = 0
    for match in _CJK_RUN_RE.finditer(lowered):
        tokens.extend(_en_tokens(lowered[position : match.start()]))
        tokens.extend(
            word for word in _jieba().lcut_for_search(match.group()) if word.strip() and word not in _ZH_STOPWORDS
        )
        position = match.end()
    tokens.extend(_en_tokens(lowered[position:]))
    return tokens


def _en_tokens(text: str) -> list[str]:
    return [word for word in _EN_WORD_RE.findall(text) if word not in _EN_STOPWORDS]
