"""Fixtures the server tests borrow: a real redis-server (tests/state/conftest.py)."""

from tests.state.conftest import redis_server

__all__ = ["redis_server"]
