"""Intent examples edited from the workbench: the Rasa NLU files (``data/nlu/<language>.yml``) stay the training
input, a line is added in place (the rest of the file byte for byte as it was), and every change is a version in
SQL like an article's (author, time, kind, unified diff; any version can be restored).

Before a line is added it is checked with the split rule of the NLU evaluation (bot/shared/near_duplicates.py,
tests/nlu/splits.py): a line that is a near duplicate of a held-out evaluation line (``tests/nlu/heldout_*.yml``)
is refused - training on it would make the held-out score a lie - and the reason names the held-out file and line
only (editors stay blind to the evaluation text); a near duplicate of a training line of another intent is a
warning, one of the same intent is refused (it adds nothing).

A line that came from a customer (workbench/masking.py) has its identifier placeholders replaced by made-up,
annotated numbers (``[DM2026010101](order_number)``), so the entity extractors keep learning from it; a line that
still holds ``{name}``, ``{email}`` or ``{number}`` is refused until the editor rewrites it.
"""
from __future__ import annotations

import bisect
import difflib
import json
import os
import re
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Engine, func, insert, select, update

from bot.shared.near_duplicates import THRESHOLD, normalise, similarity
from workbench import db
from workbench.masking import IDENTIFIER_PLACEHOLDERS, PERSONAL_PLACEHOLDERS

LANGUAGES = ("en", "zh")
MAX_LINE_CHARS = 200
# Made-up identifiers in the policy's formats (checked against bot/shared/patterns.py in tests/workbench).
EXAMPLE_VALUES = {"order_number": "DM2026010101", "tracking_number": "SF123456789012", "phone": "13800000000"}
_INTENT_HEADER = re.compile(r"^- intent:\s*(\S+)\s*$")
_EXAMPLE_LINE = re.compile(r"^(\s+)- (.*)$")
_ANNOTATED = re.compile(r"\[[^\]]*\]\([a-z_]+\)")


class NluProblem(Exception):
    """A line that cannot be added (the message says why; nothing written)."""

    def __init__(self, message: str, status: int = 422, findings: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.findings = findings or []


@dataclass(frozen=True)
class Line:
    text: str
    intent: str
    where: str
    key: str


def training_line(text: str) -> str:
    """A (masked) customer message as an NLU example line: one line, identifier placeholders as annotated made-up
    values; raises NluProblem for what must not go into the training data."""
    line = " ".join(str(text or "").split())
    if not line:
        raise NluProblem("The example is empty.")
    for placeholder in PERSONAL_PLACEHOLDERS:
        if placeholder in line:
            raise NluProblem(f"Rewrite the example without {placeholder} first: personal data never goes into the "
                             "training data.")
    for entity, placeholder in IDENTIFIER_PLACEHOLDERS.items():
        line = line.replace(placeholder, f"[{EXAMPLE_VALUES[entity]}]({entity})")
    if re.search(r"[\[\]{}]", _ANNOTATED.sub("", line)):
        raise NluProblem("Brackets and braces mean entity annotations in Rasa's format; remove them from the example.")
    if line.startswith(("- ", "#")) or len(line) > MAX_LINE_CHARS:
        raise NluProblem(f"An example is one line of at most {MAX_LINE_CHARS} characters, not starting with '-' or "
                         "'#'.")
    return line


def _examples_of(raw: str) -> dict[str, list[str]]:
    data = yaml.safe_load(raw) or {}
    out: dict[str, list[str]] = {}
    for block in data.get("nlu") or []:
        if isinstance(block, dict) and "intent" in block:
            items = block.get("examples") or ""
            texts = [ln.strip()[2:].strip() for ln in str(items).splitlines() if ln.strip().startswith("- ")]
            out.setdefault(str(block["intent"]), []).extend(texts)
    return out


def count_examples(nlu_dir: Path) -> dict[str, int]:
    """Training examples per NLU file of ``nlu_dir`` (a release's snapshot says what it was trained on)."""
    return {path.name: sum(len(v) for v in _examples_of(path.read_text(encoding="utf-8")).values())
            for path in sorted(nlu_dir.glob("*.yml"))}


def _load_lines(path: Path) -> list[Line]:
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    out, intent = [], ""
    for number, raw in enumerate(lines, start=1):
        header = _INTENT_HEADER.match(raw)
        if header:
            intent = header.group(1)
            continue
        example = _EXAMPLE_LINE.match(raw)
        if intent and example and len(example.group(1)) >= 4:
            text = example.group(2).strip()
            out.append(Line(text, intent, f"{path.parent.name}/{path.name}:{number}", normalise(text)))
    return out


def _best(key: str, lines: list[Line], lengths: list[int]) -> tuple[Line, float] | None:
    """The most similar line reaching the threshold (length band and quick_ratio prune exactly, as in splits.py)."""
    n = len(key)
    if not n:
        return None
    t = THRESHOLD
    lo = bisect.bisect_left(lengths, n * t / (2 - t) - 1e-9)
    hi = bisect.bisect_right(lengths, n * (2 - t) / t + 1e-9)
    best: tuple[Line, float] | None = None
    matcher = difflib.SequenceMatcher(None, autojunk=False)
    matcher.set_seq2(key)
    for line in lines[lo:hi]:
        if line.key != key:
            matcher.set_seq1(line.key)
            if matcher.quick_ratio() < t:
                continue
        score = similarity(line.key, key)
        if score >= t and (best is None or score > best[1]):
            best = (line, score)
    return best


class NluFiles:
    """The NLU training files of one folder, their versions in SQL, and the held-out lines they must not copy."""

    def __init__(self, engine: Engine, nlu_dir: Path, heldout_dir: Path) -> None:
        self.engine = engine
        self.nlu_dir = nlu_dir
        self.heldout_dir = heldout_dir
        self._lock = threading.Lock()
        self._heldout: tuple[tuple[float, ...], list[Line], list[int]] | None = None

    def path(self, language: str) -> Path:
        if language not in LANGUAGES:
            raise NluProblem(f"Unknown language {language!r}.", 404)
        return self.nlu_dir / f"{language}.yml"

    def intents(self) -> dict[str, list[str]]:
        out = {}
        for language in LANGUAGES:
            path = self.path(language)
            out[language] = list(_examples_of(path.read_text(encoding="utf-8"))) if path.exists() else []
        return out

    def _sorted(self, lines: list[Line]) -> tuple[list[Line], list[int]]:
        ordered = sorted(lines, key=lambda line: len(line.key))
        return ordered, [len(line.key) for line in ordered]

    def _heldout_lines(self) -> tuple[list[Line], list[int]]:
        files = sorted(self.heldout_dir.glob("heldout_*.yml"))
        stamp = tuple(f.stat().st_mtime for f in files)
        if self._heldout is None or self._heldout[0] != stamp:
            lines = [line for f in files for line in _load_lines(f)]
            self._heldout = (stamp, *self._sorted(lines))
        return self._heldout[1], self._heldout[2]

    def check(self, language: str, intent: str, text: str) -> dict[str, Any]:
        """What adding ``text`` to ``intent`` would meet: the line as it would be written, whether it is refused
        (held-out near duplicate, already an example of the intent) and warnings (near duplicate of another
        intent's example)."""
        line = training_line(text)
        examples = _examples_of(self.path(language).read_text(encoding="utf-8"))
        if intent not in examples:
            raise NluProblem(f"There is no intent {intent!r} in data/nlu/{language}.yml.", 404)
        key = normalise(line)
        refusals, warnings = [], []
        heldout, lengths = self._heldout_lines()
        hit = _best(key, heldout, lengths)
        if hit is not None:
            refusals.append({"kind": "heldout", "where": hit[0].where, "similarity": round(hit[1], 3),
                             "message": f"Refused: a near duplicate (similarity {hit[1]:.2f}) of held-out evaluation "
                                        f"line {hit[0].where}; training on it would inflate the held-out score."})
        training, tlengths = self._sorted([ln for path in sorted(self.nlu_dir.glob("*.yml"))
                                           for ln in _load_lines(path)])
        hit = _best(key, training, tlengths)
        if hit is not None and hit[0].intent == intent:
            refusals.append({"kind": "same_intent", "where": hit[0].where, "similarity": round(hit[1], 3),
                             "message": f"Already there: a near duplicate of {hit[0].where} in {intent}."})
        elif hit is not None:
            warnings.append({"kind": "other_intent", "where": hit[0].where, "intent": hit[0].intent,
                             "text": hit[0].text, "similarity": round(hit[1], 3),
                             "message": f"Near duplicate (similarity {hit[1]:.2f}) of an example of "
                                        f"{hit[0].intent} ({hit[0].where}): the two intents will compete."})
        return {"line": line, "refused": bool(refusals), "refusals": refusals, "warnings": warnings}

    # ------------------------------------------------------------------------------------------------ writing

    def add(self, language: str, intent: str, text: str, author: str, role: str) -> dict[str, Any]:
        """Append the line to the intent's examples in the file (nothing else changes), record the version."""
        with self._lock:
            checked = self.check(language, intent, text)
            if checked["refused"]:
                raise NluProblem(" ".join(r["message"] for r in checked["refusals"]), 422, checked["refusals"])
            path = self.path(language)
            raw = path.read_text(encoding="utf-8")
            before = _examples_of(raw)
            new_raw = _insert_line(raw, intent, checked["line"])
            self._verify(new_raw, before, intent, [*before[intent], checked["line"]])
            version = self._record(language, intent, before[intent], [*before[intent], checked["line"]], author,
                                   role, "edit")
            _atomic_write(path, new_raw)
        return {**checked, "language": language, "intent": intent, "version": version}

    def restore(self, language: str, intent: str, version: int, author: str, role: str) -> dict[str, Any]:
        """A new version whose examples are those of ``version`` (the intent's block rewritten, the rest kept)."""
        with self._lock:
            old = self.version(language, intent, version)["examples"]
            path = self.path(language)
            raw = path.read_text(encoding="utf-8")
            before = _examples_of(raw)
            if intent not in before:
                raise NluProblem(f"There is no intent {intent!r} in data/nlu/{language}.yml.", 404)
            new_raw = _replace_block(raw, intent, old)
            self._verify(new_raw, before, intent, old)
            number = self._record(language, intent, before[intent], old, author, role, "restore", version)
            _atomic_write(path, new_raw)
        return {"language": language, "intent": intent, "version": number, "restored_from": version,
                "examples": old}

    @staticmethod
    def _verify(new_raw: str, before: dict[str, list[str]], intent: str, expected: list[str]) -> None:
        after = _examples_of(new_raw)
        if after.get(intent) != expected or {k: v for k, v in after.items() if k != intent} != \
                {k: v for k, v in before.items() if k != intent}:
            raise NluProblem("The file would not read back as intended; nothing was written.", 500)

    def _record(self, language: str, intent: str, current: list[str], new: list[str], author: str, role: str,
                kind: str, restored_from: int | None = None) -> int:
        """Store the new state as the next version; the file's state is recorded first when no version has it
        (the first touch: ``import``; a hand edit since the last version: ``files``)."""
        now = time.time()
        file = f"{language}.yml"
        with self.engine.begin() as conn:
            lock = conn.execute(update(db.files).where(db.files.c.category == "nlu:" + file)
                                .values(writes=db.files.c.writes + 1))
            if not lock.rowcount:  # first write of this file: its row, which later writers lock
                conn.execute(insert(db.files).values(category="nlu:" + file, writes=1))
            last = conn.execute(select(db.nlu_versions).where(db.nlu_versions.c.file == file,
                                                              db.nlu_versions.c.intent == intent)
                                .order_by(db.nlu_versions.c.version.desc()).limit(1)).mappings().first()
            number = last["version"] if last else 0
            previous = json.loads(last["examples"]) if last else None
            if previous != current:
                number += 1
                conn.execute(insert(db.nlu_versions).values(
                    file=file, intent=intent, version=number, examples=json.dumps(current, ensure_ascii=False),
                    author="files", author_role="", created_at=now, kind="import" if last is None else "files",
                    restored_from=None, diff=_diff(previous or [], current, intent)))
            number += 1
            conn.execute(insert(db.nlu_versions).values(
                file=file, intent=intent, version=number, examples=json.dumps(new, ensure_ascii=False),
                author=author, author_role=role, created_at=now, kind=kind, restored_from=restored_from,
                diff=_diff(current, new, intent)))
        return number

    def versions(self, language: str, intent: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(db.nlu_versions).where(db.nlu_versions.c.file == f"{language}.yml",
                                                              db.nlu_versions.c.intent == intent)
                                .order_by(db.nlu_versions.c.version.desc())).mappings().all()
        return [{"version": r["version"], "author": r["author"], "author_role": r["author_role"],
                 "created_at": r["created_at"], "kind": r["kind"], "restored_from": r["restored_from"],
                 "diff": r["diff"], "count": len(json.loads(r["examples"]))} for r in rows]

    def version(self, language: str, intent: str, version: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(select(db.nlu_versions).where(db.nlu_versions.c.file == f"{language}.yml",
                                                             db.nlu_versions.c.intent == intent,
                                                             db.nlu_versions.c.version == version)
                               ).mappings().first()
        if row is None:
            raise NluProblem(f"No version {version} of {intent} ({language}).", 404)
        return {"version": version, "examples": json.loads(row["examples"])}

    def version_count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(db.nlu_versions)).scalar() or 0)


def _diff(old: list[str], new: list[str], intent: str) -> str:
    return "".join(difflib.unified_diff([f"- {t}\n" for t in old], [f"- {t}\n" for t in new],
                                        fromfile=f"{intent} (before)", tofile=f"{intent} (after)", lineterm="\n"))


def _block(lines: list[str], intent: str) -> tuple[int, int, str]:
    """(first example line index, index after the last example line, indentation) of the intent's block."""
    start = next((i for i, ln in enumerate(lines) if (m := _INTENT_HEADER.match(ln.rstrip("\n")))
                  and m.group(1) == intent), None)
    if start is None:
        raise NluProblem(f"There is no intent {intent!r} in the file.", 404)
    first = last = None
    indent = "    "
    for i in range(start + 1, len(lines)):
        text = lines[i].rstrip("\n")
        if text.startswith("- ") or (text and not text.startswith((" ", "#"))):
            break
        m = _EXAMPLE_LINE.match(text)
        if m and len(m.group(1)) >= 4:
            indent = m.group(1)
            first = i if first is None else first
            last = i
    if first is None or last is None:
        raise NluProblem(f"The intent {intent!r} has no example block to add to.", 409)
    return first, last + 1, indent


def _insert_line(raw: str, intent: str, line: str) -> str:
    lines = raw.splitlines(keepends=True)
    _, end, indent = _block(lines, intent)
    if not lines[end - 1].endswith("\n"):
        lines[end - 1] += "\n"
    lines.insert(end, f"{indent}- {line}\n")
    return "".join(lines)


def _replace_block(raw: str, intent: str, examples: list[str]) -> str:
    lines = raw.splitlines(keepends=True)
    first, end, indent = _block(lines, intent)
    kept = [ln for ln in lines[first:end] if not (_EXAMPLE_LINE.match(ln.rstrip("\n")))]  # comments in the block
    return "".join(lines[:first] + kept + [f"{indent}- {t}\n" for t in examples] + lines[end:])


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
