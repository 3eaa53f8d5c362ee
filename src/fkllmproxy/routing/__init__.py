"""Routing: model names to targets, fallback order, retries, circuit breakers, affinity."""

from fkllmproxy.routing.router import Attempted, Router

__all__ = ["Attempted", "Router"]
