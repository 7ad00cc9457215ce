"""The pure core must import without Rasa (the action server on Python 3.11 uses it) and without I/O."""
from __future__ import annotations

import subprocess
import sys

from bot.shared.frustration.paths import REPO_ROOT

MODULES = [
    "bot.shared.frustration",
    "bot.shared.frustration.scorer",
    "bot.shared.frustration.conversation",
    "bot.shared.frustration.escalation",
    "bot.shared.frustration.complaints",
    "tools.evaluate_frustration",
    "tools.bench_frustration",
    "tools.calibrate_frustration",
]


def test_core_modules_import_without_rasa_or_tensorflow() -> None:
    code = (
        "import sys\n"
        f"for name in {MODULES!r}:\n"
        "    __import__(name)\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in {'rasa', 'rasa_sdk', 'tensorflow', 'redis'})\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "", f"imported at module load: {out.stdout}"
