"""Fixtures for the kb_index tests: a small bilingual KB in a temp dir and the offline e5 model.

The model is the real offline default (``var/models/multilingual-e5-small``); it is provisioned from
the installed packages on first use (about a minute, then skipped by its fingerprint) and loaded
once per test session.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kb_fixtures import FIXTURE_ARTICLES, write_kb


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The offline default model, provisioned if this machine does not have it yet."""
    from kb_index.provision import provision_model
    from kb_index.settings import DEFAULT_MODEL_DIR, resolve_path

    path = resolve_path(DEFAULT_MODEL_DIR)
    provision_model(path)
    return path


@pytest.fixture(scope="session")
def encoder(model_dir: Path) -> Any:
    """One loaded model for the whole session (loading costs seconds)."""
    from kb_index.encoder import load_encoder
    from kb_index.settings import KBSettings

    return load_encoder(KBSettings(model=str(model_dir)))


@pytest.fixture
def kb_dir(tmp_path: Path) -> Path:
    """A fresh copy of the fixture KB."""
    return write_kb(tmp_path / "kb", FIXTURE_ARTICLES)


@pytest.fixture
def settings(kb_dir: Path, tmp_path: Path, model_dir: Path) -> Any:
    """Settings pointing at the fixture KB and a temp index folder (defaults otherwise)."""
    from kb_index.settings import KBSettings

    return KBSettings(model=str(model_dir), data_dir=kb_dir, index_dir=tmp_path / "index")


@pytest.fixture
def built(settings: Any, encoder: Any) -> Any:
    """The fixture KB, indexed."""
    from kb_index.builder import build_index

    return build_index(settings, encoder=encoder)


@pytest.fixture
def retriever(settings: Any, encoder: Any, built: Any) -> Iterator[Any]:
    """A retriever over the built fixture KB."""
    from kb_index.retriever import Retriever

    yield Retriever.from_settings(settings, encoder=encoder)
