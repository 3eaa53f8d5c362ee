"""An estimate of the energy each answered request took, from its tokens.

This is an estimate, and a rough one: the proxy cannot see the provider's hardware,
batch sizes, utilisation or data-centre overhead, so it multiplies the tokens the
provider reported by a coefficient per model, in watt-hours per 1,000 prompt tokens
and per 1,000 completion tokens. Expect the true figure to lie anywhere within about
a factor of ten of it; use it to compare models, keys and days with each other, and
to see what the response cache avoided, not as a meter reading.

Where the defaults (``[usage] energy_wh_per_1k_prompt = 0.05``,
``energy_wh_per_1k_completion = 0.5``) come from:

- The ML.ENERGY Leaderboard and Benchmark (Chung et al., University of Michigan; v3.0,
  December 2025: 46 models, 7 tasks, 1,858 configurations measured with Zeus on
  NVIDIA H100 and B200 GPUs) measure GPU energy per generated response and per token.
  They find decoding (generating tokens) dominates the time and energy of a response,
  that energy per token varies 3-5x with GPU utilisation alone, and that chat answers
  of open models in the tens-of-billions-of-parameters range take on the order of
  0.1 to a few joules per output token: 0.5 Wh per 1,000 completion tokens is 1.8 J
  per token, inside that range for a large served model.
- "From Words to Watts" (Samsi et al., 2023) measured about 3-4 J per output token for
  LLaMA-65B on V100 and A100 GPUs, the upper end for an older, less batched setup.
- "Power Hungry Processing: Watts Driving the Cost of AI Deployment?" (Luccioni,
  Jernite and Strubell, 2023) measured 88 models on A100s over 1,000 inferences each:
  text generation averaged 0.047 kWh per 1,000 inferences (about 0.05 Wh each, for
  short outputs of models of up to about 7 billion parameters), the order of magnitude this
  estimate gives a short answer of a small model, and far below what a large model's
  long answer takes.
- Reading the prompt (prefill) is computed in parallel and costs roughly an order of
  magnitude less per token than generating (the ML.ENERGY and MELODI measurements find
  output length, not prompt length, predicts energy), hence a tenth of the completion
  coefficient for prompt tokens.

None of these measure a hosted frontier model, whose providers publish no per-token
figures; set ``energy_wh_per_1k_prompt`` / ``energy_wh_per_1k_completion`` on a
``[[pricing]]`` entry when you have better numbers for a model (e.g. your own
measurements of a self-hosted one).

The coefficients are looked up like prices (provider and upstream model, upstream
model, then the client's model name) in a dict built once per configuration, so an
estimate costs a dict lookup and two multiplications on the request path.
"""

from __future__ import annotations

from collections.abc import Iterable

from fkllmproxy.config.schema import PriceConfig, UsageConfig

__all__ = ["JOULES_PER_WH", "EnergyTable"]

JOULES_PER_WH = 3600.0


class EnergyTable:
    """Wh per 1,000 prompt and completion tokens, per model, with defaults for the rest."""

    __slots__ = ("_coefficients", "_default")

    def __init__(self, usage: UsageConfig, prices: Iterable[PriceConfig] = ()) -> None:
        self._default = (
            usage.energy_wh_per_1k_prompt / 1000.0,
            usage.energy_wh_per_1k_completion / 1000.0,
        )
        self._coefficients: dict[tuple[str | None, str], tuple[float, float]] = {}
        for price in prices:
            if price.energy_wh_per_1k_prompt is None and price.energy_wh_per_1k_completion is None:
                continue
            prompt = price.energy_wh_per_1k_prompt
            completion = price.energy_wh_per_1k_completion
            self._coefficients[(price.provider, price.model)] = (
                self._default[0] if prompt is None else prompt / 1000.0,
                self._default[1] if completion is None else completion / 1000.0,
            )

    def coefficients(
        self, provider: str | None, upstream_model: str | None, model: str | None
    ) -> tuple[float, float]:
        """Wh per prompt token and per completion token for one answer's model."""
        table = self._coefficients
        if table:
            for name in (upstream_model, model):
                if name is not None:
                    found = table.get((provider, name)) or table.get((None, name))
                    if found is not None:
                        return found
        return self._default

    def estimate_wh(
        self,
        provider: str | None,
        upstream_model: str | None,
        model: str | None,
        prompt_tokens: int,
        completion_tokens: int,
    ) -> float:
        """The estimated Wh of one answer (0.0 for an answer without tokens)."""
        per_prompt, per_completion = self.coefficients(provider, upstream_model, model)
        return prompt_tokens * per_prompt + completion_tokens * per_completion
