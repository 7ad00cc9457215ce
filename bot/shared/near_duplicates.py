"""The near-duplicate rule for NLU example lines (why and how: tests/nlu/splits.py, which applies it to the
evaluation splits; the editors' workbench applies it to a line before adding it to the training data).

1. A line is *normalised*: entity annotations ``[text](entity)`` / ``[text]{...}`` are replaced by their text,
   NFKC folds full-width to half-width, everything is lower-cased, every digit becomes ``0``, and everything that is
   not a letter or digit is dropped. A line that normalises to nothing keeps its stripped raw text as its key.
2. Two lines are *near duplicates* when their normalised forms are identical or when
   ``difflib.SequenceMatcher(None, a, b, autojunk=False).ratio() >= 0.9``, the higher of both directions.

Pure standard library, no I/O (runs on Python 3.10 and 3.11).
"""
from __future__ import annotations

import difflib
import re
import unicodedata

THRESHOLD = 0.9

# [text](entity), [text](entity:value), [text]{"entity": ...}
_ANNOTATION = re.compile(r"\[([^\]]*)\](?:\([^)]*\)|\{[^}]*\})")


def strip_annotations(text: str) -> str:
    return _ANNOTATION.sub(r"\1", text)


def normalise(text: str) -> str:
    """The comparison key of a line (rule 1)."""
    folded = unicodedata.normalize("NFKC", strip_annotations(text)).casefold()
    out = []
    for ch in folded:
        category = unicodedata.category(ch)
        if category[0] == "N":
            out.append("0")
        elif category[0] == "L":
            out.append(ch)
    key = "".join(out)
    return key if key else "".join(folded.split())


def similarity(a: str, b: str) -> float:
    """SequenceMatcher ratio of two normalised lines, the higher of both directions (1.0 when identical)."""
    if a == b:
        return 1.0
    forward = difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()
    backward = difflib.SequenceMatcher(None, b, a, autojunk=False).ratio()
    return max(forward, backward)
