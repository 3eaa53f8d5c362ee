"""The provider tests drive a daemon in front of the fake upstream with the OpenAI SDK."""

from __future__ import annotations

import openai
import pytest

from fkllmproxy.testing.fake_upstream import FakeUpstream
from tests.conftest import MASTER_KEY, RunningDaemon


@pytest.fixture
def client(daemon: RunningDaemon, upstream: FakeUpstream) -> openai.OpenAI:
    """An OpenAI client on the module's ``daemon``; the upstream's record starts empty."""
    upstream.clear()
    return openai.OpenAI(base_url=daemon.url + "/v1", api_key=MASTER_KEY, max_retries=0)
