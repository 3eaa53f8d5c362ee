"""Routing: model names to targets, fallback order, and (later) breakers and retries."""

from fkllmproxy.routing.router import Attempted, Router

__all__ = ["Attempted", "Router"]
