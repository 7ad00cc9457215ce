"""Fixtures of the unit tests: the order-flow database fixture lives in order_fixtures.py."""

from tests.actions.order_fixtures import env  # noqa: F401 - re-exported as a fixture
