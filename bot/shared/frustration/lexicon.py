"""Wording lists of ``data/frustration/scoring.yml`` compiled into matchers.

Why one compiled alternation per list: a message is scored on every turn, so matching must stay well under a
millisecond; every plain term goes through ``re.escape`` (terms come from a data file, not from code).
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot.shared.text import to_halfwidth

REGEX_PREFIX = "re:"
_ASCII_ALNUM = re.compile(r"[a-z0-9]")
_PUNCT_BREAK = re.compile(r"[.,!?;:，。！？；：、~\n]")
_ZH_DEGREE_ADVERBS = ("", "很", "太", "那么", "怎么", "特别", "是很", "是")
_NT_WITHOUT_APOSTROPHE = frozenset({"dont", "didnt", "isnt", "wasnt", "arent", "doesnt", "wont", "cant", "aint"})
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})


def normalize(text: str) -> str:
    """Half-width, lower-case, straight apostrophes; keeps the string length so offsets stay valid."""
    return to_halfwidth(text).translate(_APOSTROPHES).lower()


def _term_regex(term: str) -> str:
    """Regex for one configured term: raw for ``re:``, else escaped with token boundaries on ASCII ends."""
    if term.startswith(REGEX_PREFIX):
        return f"(?:{term[len(REGEX_PREFIX):]})"
    term = normalize(term.strip())
    body = r"\s+".join(re.escape(part) for part in term.split())
    body = body.replace("'", "'?")  # customers type "dont" as often as "don't"
    left = r"(?<![a-z0-9])" if _ASCII_ALNUM.match(term[0]) else ""
    right = r"(?![a-z0-9])" if _ASCII_ALNUM.match(term[-1]) else ""
    return f"{left}{body}{right}"


_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_ANY_ASCII_ALNUM = re.compile(r"[a-z0-9]")


class TermMatcher:
    """Compiled term list, split by script so a Chinese message never runs the English alternation and back.

    Why: Python's regex engine tries every alternative at every position; splitting halves the work for the
    usual single-language message, which keeps scoring far below the 5 ms budget.
    """

    def __init__(self, terms: Sequence[str]) -> None:
        groups: dict[str, list[str]] = {"cjk": [], "ascii": [], "other": []}
        for term in sorted(terms, key=len, reverse=True):  # longest first: "fucking" wins over "fuck"
            body = term[len(REGEX_PREFIX):] if term.startswith(REGEX_PREFIX) else normalize(term)
            if _CJK.search(body):
                groups["cjk"].append(term)
            elif body.isascii():
                groups["ascii"].append(term)
            else:
                groups["other"].append(term)
        self._cjk = _compile(groups["cjk"])
        self._ascii = _compile(groups["ascii"])
        self._other = _compile(groups["other"])

    def _patterns(self, text: str) -> list[re.Pattern[str]]:
        patterns = []
        if self._cjk is not None and _CJK.search(text):
            patterns.append(self._cjk)
        if self._ascii is not None and _ANY_ASCII_ALNUM.search(text):
            patterns.append(self._ascii)
        if self._other is not None:
            patterns.append(self._other)
        return patterns

    def finditer(self, text: str) -> Iterator[re.Match[str]]:
        """Matches of every script group (each group non-overlapping, groups may overlap each other)."""
        for pattern in self._patterns(text):
            yield from pattern.finditer(text)

    def sub(self, repl: Callable[[re.Match[str]], str], text: str) -> str:
        for pattern in self._patterns(text):
            text = pattern.sub(repl, text)
        return text


def _compile(terms: Sequence[str]) -> re.Pattern[str] | None:
    return re.compile("|".join(_term_regex(t) for t in terms)) if terms else None


def compile_terms(terms: Sequence[Any]) -> TermMatcher | None:
    """Matcher for a configured term list (None for an empty list)."""
    cleaned = [t for t in (str(x) for x in terms) if t.strip()]
    return TermMatcher(cleaned) if cleaned else None


@dataclass(frozen=True)
class Negation:
    """Decides whether a hit is negated by the words right before it ("not angry", "不生气")."""

    zh: tuple[str, ...]
    en: tuple[str, ...]
    window_words: int

    def negates(self, text: str, start: int) -> bool:
        """True when a negator directly precedes ``text[start:]`` within the same clause."""
        prefix = text[:start]
        breaks = list(_PUNCT_BREAK.finditer(prefix))
        if breaks:
            prefix = prefix[breaks[-1].end():]
        if not prefix.strip():
            return False
        # Chinese: the negator sits right before the hit, optionally with one degree adverb ("不太生气").
        tail = prefix[-5:]
        if any(tail.endswith(neg + adverb) for neg in self.zh for adverb in _ZH_DEGREE_ADVERBS):
            return True
        words = re.findall(r"[a-z']+", prefix)[-self.window_words:]
        return any(self._is_english_negator(word) for word in words)

    def _is_english_negator(self, word: str) -> bool:
        if word in self.en:
            return True
        return "n't" in self.en and (word.endswith("n't") or word in _NT_WITHOUT_APOSTROPHE)


@dataclass(frozen=True)
class Hit:
    """One matched term: category, the matched text and its offset."""

    category: str
    term: str
    start: int


@dataclass(frozen=True)
class Lexicon:
    """Compiled wording of scoring.yml plus the raw dict (persisted with a trained model)."""

    raw: Mapping[str, Any]
    category_weights: Mapping[str, float]
    category_patterns: Mapping[str, TermMatcher]
    positive: TermMatcher | None
    sarcasm_markers: TermMatcher | None
    sarcasm_praise: TermMatcher | None
    sarcasm_failures: TermMatcher | None
    sarcasm_resolved: TermMatcher | None
    protected: TermMatcher | None
    negation: Negation
    intensity: Mapping[str, Any]
    combine: Mapping[str, float]
    caps_ignore: frozenset[str] = field(default_factory=frozenset)
    # Categories marked ``mild: true`` ("seriously", "到底"): praise next to them reads as excitement, not anger.
    mild_categories: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Lexicon:
        """Compile a parsed scoring.yml; raises ``ValueError`` on a malformed file instead of scoring wrongly."""
        categories = raw.get("categories")
        if not isinstance(categories, Mapping) or not categories:
            raise ValueError("scoring config needs a non-empty 'categories' mapping")
        weights: dict[str, float] = {}
        patterns: dict[str, TermMatcher] = {}
        for name, spec in categories.items():
            weight = float(spec["weight"])
            if not 0 < weight <= 100:
                raise ValueError(f"category {name}: weight must be in (0, 100], got {weight}")
            pattern = compile_terms(spec.get("terms") or [])
            if pattern is None:
                raise ValueError(f"category {name} has no terms")
            weights[name] = weight
            patterns[name] = pattern
        sarcasm = raw.get("sarcasm") or {}
        negators = raw.get("negators") or {}
        intensity = dict(raw.get("intensity") or {})
        return cls(
            raw=dict(raw),
            category_weights=weights,
            category_patterns=patterns,
            positive=compile_terms(raw.get("positive") or []),
            sarcasm_markers=compile_terms(sarcasm.get("markers") or []),
            sarcasm_praise=compile_terms(sarcasm.get("praise") or []),
            sarcasm_failures=compile_terms(sarcasm.get("failures") or []),
            sarcasm_resolved=compile_terms(sarcasm.get("resolved") or []),
            protected=compile_terms(raw.get("protected") or []),
            negation=Negation(
                zh=tuple(str(n) for n in negators.get("zh", [])),
                en=tuple(str(n).lower() for n in negators.get("en", [])),
                window_words=int(negators.get("window_words", 2)),
            ),
            intensity=intensity,
            combine={k: float(v) for k, v in (raw.get("combine") or {}).items()},
            caps_ignore=frozenset(str(w).upper() for w in intensity.get("caps_ignore", [])),
            mild_categories=frozenset(name for name, spec in categories.items() if spec.get("mild")),
        )

    @classmethod
    def from_yaml(cls, path: Path) -> Lexicon:
        """Read and compile a scoring.yml file."""
        with open(path, encoding="utf-8") as handle:
            return cls.from_dict(yaml.safe_load(handle))

    def mask_protected(self, text: str) -> tuple[str, list[str]]:
        """Blank out protected names ("傻瓜相机", "Scunthorpe") in normalised text, keeping offsets."""
        if self.protected is None:
            return text, []
        found: list[str] = []

        def blank(match: re.Match[str]) -> str:
            found.append(match.group(0))
            return " " * len(match.group(0))

        return self.protected.sub(blank, text), found

    def scan(self, text: str) -> tuple[list[Hit], list[tuple[int, int]]]:
        """Category hits in normalised, masked text, and the spans of negated hits ("不是骗子", "not angry")."""
        hits: list[Hit] = []
        negated: list[tuple[int, int]] = []
        for category, pattern in self.category_patterns.items():
            for match in pattern.finditer(text):
                if self.negation.negates(text, match.start()):
                    negated.append(match.span())
                else:
                    hits.append(Hit(category, match.group(0), match.start()))
        return hits, negated

    def any_match(self, pattern: TermMatcher | None, text: str, *, negatable: bool = True) -> list[str]:
        """Matched strings of an auxiliary list (praise, failures...), skipping negated ones when asked."""
        if pattern is None:
            return []
        return [
            m.group(0)
            for m in pattern.finditer(text)
            if not (negatable and self.negation.negates(text, m.start()))
        ]
