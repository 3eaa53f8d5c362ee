"""The web console under ``/ui/``: pages rendered by the daemon, signed in with the master key.

``ui_routes`` are Litestar handlers (never on the API's fast path); ``Console`` is the
per-process state they share (session keys, the live series), kept on the app state.
Templates and static files are package data (``templates/``, ``static/``).
"""

from fkllmproxy.server.ui.console import Console
from fkllmproxy.server.ui.routes import ui_routes

__all__ = ["Console", "ui_routes"]
