"""Test support shipped with the package: a fake upstream provider on a real socket.

``fkllmproxy.testing.fake_upstream.FakeUpstream`` is what tests and the benchmark run
against, and what ``fkllm mock-upstream`` serves. Nothing here is imported by the
proxy itself.
"""
