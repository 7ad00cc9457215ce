"""Fixtures of the frustration tests: one trained scoring context per session and a clean Redis database."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bot.shared.frustration.escalation import EscalationEngine
from bot.shared.frustration.scorer import ScoringContext, build_scoring_context

# A database of its own on the session's throw-away server (tests/conftest.py::redis_url), flushed around
# every test, so the assertions on raw key state see only what the test wrote.
COMPLAINTS_DB = 9


@pytest.fixture(scope="session")
def scoring_context() -> ScoringContext:
    """Wording + classifier trained on data/frustration/train.yml (and the NLU background), as in production."""
    return build_scoring_context()


@pytest.fixture(scope="session")
def engine() -> EscalationEngine:
    return EscalationEngine.from_yaml()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[Any]:
    import redis  # fails (not skips) when the client is missing: these tests must run

    base = redis_url.rsplit("/", 1)[0]
    client = redis.Redis.from_url(f"{base}/{COMPLAINTS_DB}", decode_responses=True)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()
