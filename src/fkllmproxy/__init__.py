"""fkllmproxy: a self-hosted LLM gateway speaking OpenAI's and Anthropic's APIs."""

__version__ = "0.1.0"

__all__ = ["__version__"]
