"""Translation between API formats, as pure functions: no I/O, no web layer.

The proxy's canonical format is OpenAI Chat Completions. Each module here turns one
API's requests, answers and streams into another's, raising ``BadRequest`` (naming the
field and the provider) for what cannot be carried across, and ``UpstreamUnavailable``
for an answer that cannot be read.
"""
