"""``python -m kb_index`` as the lead and the action server's operators run it (real subprocesses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from kb_index.settings import PROJECT_ROOT


def run_cli(args: list[str], settings: Any) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "KB_MODEL": str(settings.model_location),
        "KB_DATA_DIR": str(settings.data_path),
        "KB_INDEX_DIR": str(settings.index_path),
        "HF_HUB_OFFLINE": "1",
    }
    return subprocess.run(
        [sys.executable, "-m", "kb_index", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_build_then_search_json_prints_hits_in_the_question_language(settings: Any) -> None:
    build = run_cli(["build"], settings)
    assert build.returncode == 0, build.stderr
    assert "built (5 articles, 40 vectors" in build.stdout

    again = run_cli(["build"], settings)
    assert again.returncode == 0 and "up to date, skipped" in again.stdout

    result = run_cli(["search", "退款到银行卡要几天？", "--json", "-k", "2"], settings)
    assert result.returncode == 0, result.stderr
    hits = json.loads(result.stdout)
    assert len(hits) == 2
    assert all(set(hit) == {"id", "title", "score", "answer"} for hit in hits)
    assert hits[0]["id"] == "refund-bank-card"
    assert hits[0]["title"] == "退款到银行卡的时间"
    assert hits[0]["answer"] == "退款原路退回银行卡，审核通过后 3-7 个工作日到账。"
    assert isinstance(hits[0]["score"], float) and hits[0]["score"] >= hits[1]["score"]


def test_search_without_index_exits_2_and_names_the_fix(settings: Any) -> None:
    result = run_cli(["search", "hello", "--json"], settings)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "python -m kb_index build" in result.stderr


def test_search_of_emoji_only_prints_an_empty_json_list(settings: Any, built: Any) -> None:
    result = run_cli(["search", "😀😀", "--json"], settings)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_provision_model_reports_up_to_date_for_an_existing_model(settings: Any, model_dir: Path) -> None:
    result = run_cli(["provision-model", "--out", str(model_dir)], settings)
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout and "parity cosines" in result.stdout
