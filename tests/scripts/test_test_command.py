"""The test command runs every test directory: a directory the command does not name is tests nobody runs."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Directories of data, not tests: stories are run by `rasa test core`, fakes and answers are inputs of other tests.
NOT_PYTEST = {"tests/stories", "tests/fakes", "tests/answers", "tests/bot"}


def _named_in_the_command() -> set[str]:
    script = (ROOT / "scripts" / "test.sh").read_text(encoding="utf-8")
    return set(re.findall(r"\btests/[\w/.]+", script))


def test_every_test_directory_is_run_by_the_test_command() -> None:
    named = _named_in_the_command()
    missing = []
    for path in sorted(ROOT.glob("tests/**/test_*.py")):
        relative = path.relative_to(ROOT).as_posix()
        parents = [relative] + ["/".join(relative.split("/")[:n]) for n in range(2, relative.count("/") + 1)]
        if not any(parent in named for parent in parents):
            missing.append(relative)
    assert not missing, f"test files the test command never runs (add their directory to scripts/test.sh): {missing}"


def test_the_command_names_only_what_exists() -> None:
    gone = sorted(name for name in _named_in_the_command() - NOT_PYTEST if not (ROOT / name.rstrip("/.")).exists())
    assert not gone, f"scripts/test.sh names paths that do not exist: {gone}"
