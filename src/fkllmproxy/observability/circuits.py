"""The three states of a provider's circuit, named once for every layer that speaks of them.

The breaker (``routing/breaker.py``) moves between them, the shared state
(``state/base.py``) stores them for every process, and the ``fkllm_circuit_breaker_state``
gauge exports them as the numbers CONTRACT section 6 fixes.
"""

from __future__ import annotations

from typing import Final, Literal

__all__ = ["CIRCUIT_NAMES", "CIRCUIT_VALUES", "CircuitState"]

CircuitState = Literal["closed", "half_open", "open"]
# The gauge's value for each state, and back.
CIRCUIT_VALUES: Final[dict[CircuitState, int]] = {"closed": 0, "half_open": 1, "open": 2}
CIRCUIT_NAMES: Final[dict[int, CircuitState]] = {v: k for k, v in CIRCUIT_VALUES.items()}
