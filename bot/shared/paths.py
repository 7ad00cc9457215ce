"""The repository root, the one place it is computed (pure; imported on Python 3.10 and 3.11, no I/O)."""
from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
