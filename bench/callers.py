"""Who calls fkllm in the benchmark: the master key, a client key, a budgeted key, a JWT.

Shared by ``bench.inproc --caller`` and the ``fkllm-key`` / ``fkllm-budget`` /
``fkllm-jwt`` targets of ``bench.run``, so both measure the same identities: a client key
from ``[[auth.keys]]``, the same key with a budget far larger than a run spends (each
request reserves and settles, none is refused), and a JWT from ``bench/issuer.py``; all
three with the same ``[[pricing]]``.
"""

from __future__ import annotations

import hashlib

from bench.issuer import AUDIENCE, BenchIssuer
from bench.upstream import Nginx

__all__ = ["BENCH_KEY", "CALLERS", "caller_config"]

BENCH_KEY = "sk-bench-client-key-0123456789abcdef"
CALLERS = ("master", "key", "budget", "jwt")


def caller_config(caller: str, upstream: Nginx, issuer: BenchIssuer | None) -> str:
    """What ``[auth]`` (and ``[[pricing]]``) the caller needs, appended to the config."""
    if caller == "master":
        return ""
    if caller == "jwt":
        assert issuer is not None
        text = (
            f'\n[auth.oidc]\nissuer = "{issuer.url}"\naudience = "{AUDIENCE}"\n'
            f'jwks_url = "{issuer.url}/jwks"\n'
        )
    else:
        digest = hashlib.sha256(BENCH_KEY.encode()).hexdigest()
        text = f'\n[[auth.keys]]\nname = "bench-key"\nkey_sha256 = "{digest}"\n'
        if caller == "budget":
            text += 'budget_usd = 1000000.0\nbudget_period = "month"\n'
    # Every identity's run prices its requests the same way, so the budgeted key's
    # figure differs from the plain key's by the budget alone, not by the ledger's cost.
    for kind in upstream.ports:
        text += f'\n[[pricing]]\nmodel = "bench-{kind}"\ninput_per_mtok = 1.0\n'
        text += "output_per_mtok = 2.0\n"
    return text
