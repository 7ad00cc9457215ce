"""Fixtures of the unit tests: the order-flow database fixture lives in order_fixtures.py."""
from collections.abc import Iterator

import pytest

from actions import kb_feedback
from tests.actions.order_fixtures import env  # noqa: F401 - re-exported as a fixture


@pytest.fixture(autouse=True)
def _fresh_feedback_store() -> Iterator[None]:
    """The feedback store's asyncio Redis client belongs to the event loop it first ran on (one per process in
    the action server); every test has its own loop, so each starts without one."""
    kb_feedback._store = None
    yield
    kb_feedback._store = None
