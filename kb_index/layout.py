"""Where an index lives on disk, and how a finished build is made the one the action servers serve.

``KB_INDEX_DIR`` holds ``builds/<build id>/`` (complete builds, each written under a temporary name and renamed) and
``fingerprint.json``, which names the build in service; every action server reloads when it names another
(actions/knowledge.py). Light on purpose (no numpy, FAISS or model): the gateway's workbench installs the builds of
the releases it deploys or rolls back to (workbench/releases.py).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

FINGERPRINT_FILE = "fingerprint.json"
BUILDS_DIR = "builds"


def read_current_fingerprint(index_dir: Path) -> dict[str, Any] | None:
    """The current ``fingerprint.json``, or None when absent or unreadable."""
    try:
        data = json.loads((index_dir / FINGERPRINT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_fingerprint(index_dir: Path, fingerprint: dict[str, Any]) -> None:
    """Point ``index_dir`` at the build ``fingerprint`` names (atomic replace: a reader sees the old or the new)."""
    tmp = index_dir / f".{FINGERPRINT_FILE}.tmp"
    tmp.write_text(json.dumps(fingerprint, indent=2, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, index_dir / FINGERPRINT_FILE)


def install_build(source_dir: Path, index_dir: Path) -> dict[str, Any]:
    """Serve, from ``index_dir``, the build that ``source_dir`` (another index folder) serves: its build folder is
    copied in when missing (under a temporary name, then renamed), then ``fingerprint.json`` switched. Returns the
    fingerprint. Raises FileNotFoundError when ``source_dir`` has no complete build."""
    fingerprint = read_current_fingerprint(source_dir)
    if fingerprint is None:
        raise FileNotFoundError(f"no {FINGERPRINT_FILE} in {source_dir}")
    build_id = str(fingerprint.get("build_id"))
    source = source_dir / BUILDS_DIR / build_id
    if not source.is_dir():
        raise FileNotFoundError(f"build {build_id} is missing from {source_dir}")
    builds = index_dir / BUILDS_DIR
    builds.mkdir(parents=True, exist_ok=True)
    target = builds / build_id
    if not target.is_dir():
        staging = builds / f".{build_id}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(source, staging)
        os.replace(staging, target)
    write_fingerprint(index_dir, fingerprint)
    return fingerprint
