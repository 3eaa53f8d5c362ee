"""fkllmproxy: a self-hosted LLM gateway speaking OpenAI's and Anthropic's APIs."""

import sys

__version__ = "0.1.0"

__all__ = ["__version__"]

# httpx imports its own command-line client (click, rich.console, pygments) whenever
# those happen to be installed, and Typer installs them: about 4 MiB of resident memory
# and some 50 ms of start-up in every fkllm process, daemon included, for a tool we never
# run. A None entry makes that optional import fail the way httpx expects when the
# extras are missing; the ``httpx`` program itself runs in its own process, unaffected.
if "httpx" not in sys.modules:
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
