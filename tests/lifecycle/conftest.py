"""Fixtures for the lifecycle tests: CNCF Distribution on a root, as the interop tests start it."""

from tests.interop.conftest import start_distribution

__all__ = ["start_distribution"]
