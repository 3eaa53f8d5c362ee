"""One codec per wire API, each between its API's bytes and ``translate/canonical.py``.

``chat`` (OpenAI Chat Completions), ``messages`` (Anthropic Messages), ``responses``
(OpenAI Responses, inbound only), ``gemini`` (Google's ``generateContent``, inbound and
to the Gemini and Vertex providers) and ``cohere`` (Cohere v2, to the provider only).
What each module offers is listed in ``translate/canonical.py``'s docstring.
"""
