"""Default locations of the frustration data files, resolved from the repository root (no I/O here)."""
from __future__ import annotations

from pathlib import Path

from bot.shared.paths import REPO_ROOT

DEFAULT_SCORING_PATH = REPO_ROOT / "data" / "frustration" / "scoring.yml"
DEFAULT_TRAIN_PATH = REPO_ROOT / "data" / "frustration" / "train.yml"
DEFAULT_TOPICS_PATH = REPO_ROOT / "data" / "frustration" / "topics.yml"
DEFAULT_ESCALATION_PATH = REPO_ROOT / "data" / "escalation.yml"
DEFAULT_EVAL_PATH = REPO_ROOT / "tests" / "bot" / "shared" / "frustration" / "eval_conversations.yml"


def resolve_data_path(path: str | Path) -> Path:
    """Resolve a configured path: as given (relative to the working directory) or else from the repository root.

    Why: ``rasa train`` runs in the project root, tests and scripts may not; both must find the same file.
    """
    candidate = Path(path)
    if candidate.is_absolute() or candidate.exists():
        return candidate
    return REPO_ROOT / candidate
