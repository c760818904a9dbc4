"""Maximum likelihood for neural energies of binary data by persistent contrastive divergence with
gradient-informed discrete samplers.

The gradient and the loss are those of ``ContrastiveLangevin`` (lectures 001 part 3 and 003):
mean E(x+) - mean E(x-) with detached negatives x-, plus the L2 energy penalty alpha
(E(x+)^2 + E(x-)^2), so that grad_theta of the loss is the maximum-likelihood gradient
-E_data[grad E] + E_model[grad E] when x- follows the model. Only the chains differ: binary
states moved by ``n_steps`` steps of a kernel of ``ebmlab.samplers.discrete_gradient``

  * ``sampler="gwg"``: Gibbs-with-gradients (Grathwohl et al. 2021), one flip per step (or
    ``n_flips`` draws);
  * ``sampler="dmala"``: the discrete Langevin proposal with its Metropolis-Hastings correction
    (Zhang, Liu & Liu 2022), step size ``step_size``;
  * ``sampler="dula"``: the same proposal uncorrected (biased, cheaper by nothing but the
    accept test);

run through the one chain runner (``ebmlab.samplers.sample``). The chains are persistent: a
replay buffer of ``buffer_size`` states of which each update draws one per data point
(``chains="buffer"``, the setting of both papers: buffer 10,000, 40 steps per update), or
``n_chains`` chains all advanced at every update (``chains="persistent"``, PCD, Tieleman 2008),
or fresh chains per update (``chains="noise"``). New chains start from the independent-Bernoulli
model of the data marginals (the papers' "mean" initialization; ``reinit_fraction`` of the drawn
chains restart there at each update), which is also the model's base when it has one
(``EnergyNetwork(bernoulli_base=True)``).

References: Tieleman (2008); Du & Mordatch (2019) for the replay buffer; Grathwohl, Swersky,
Hashemi, Duvenaud & Maddison, "Oops I took a gradient" (ICML 2021); Zhang, Liu & Liu, "A
Langevin-like sampler for discrete distributions" (ICML 2022).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from ..estimators.paths import base_rate_bias
from ..samplers import sample
from ..samplers.base import Kernel
from ..samplers.discrete_gradient import DULA, DiscreteLangevin, GibbsWithGradients
from ..samplers.elementary import bernoulli_draw
from ..validation import check_binary, check_positive_int
from .contrastive_langevin import Chains, ContrastiveLangevin

Sampler = Literal["gwg", "dmala", "dula"]
SAMPLERS = ("gwg", "dmala", "dula")


def make_discrete_kernel(sampler: str, step_size: float, n_flips: int = 1) -> Kernel:
    """The kernel named by ``sampler`` ("gwg", "dmala" or "dula") on {0, 1} states."""
    spins = (0.0, 1.0)
    if sampler == "gwg":
        return GibbsWithGradients(n_flips=n_flips, spin_values=spins)
    if sampler == "dmala":
        return DiscreteLangevin(step_size, adjusted=True, spin_values=spins)
    if sampler == "dula":
        return DULA(step_size, spin_values=spins)
    raise ValueError(f"sampler: expected one of {', '.join(SAMPLERS)}, got {sampler!r}")


class ContrastiveDiscrete(ContrastiveLangevin):
    """Persistent contrastive divergence on binary data with a gradient-informed discrete kernel
    (see the module docstring).

    Args:
        sampler: "gwg", "dmala" or "dula".
        n_steps: kernel steps per update.
        step_size: alpha of the discrete Langevin proposal (dmala, dula).
        n_flips: GWG draws per proposal.
        chains, buffer_size, n_chains, reinit_fraction, alpha, energy_bound, seed: as in
            ``ContrastiveLangevin``.
    """

    def __init__(
        self,
        sampler: Sampler = "dmala",
        n_steps: int = 40,
        step_size: float = 0.2,
        n_flips: int = 1,
        chains: Chains = "buffer",
        buffer_size: int = 10_000,
        n_chains: int | None = None,
        reinit_fraction: float = 0.0,
        alpha: float = 0.0,
        energy_bound: float = 1e4,
        seed: int = 0,
    ) -> None:
        kernel = make_discrete_kernel(sampler, step_size, check_positive_int(n_flips, "n_flips"))
        super().__init__(
            n_steps=n_steps,
            step_size=step_size,
            chains=chains,
            buffer_size=buffer_size,
            n_chains=n_chains,
            reinit_fraction=reinit_fraction,
            alpha=alpha,
            energy_bound=energy_bound,
            seed=seed,
        )
        self.sampler = sampler
        self.n_flips = int(n_flips)
        self.kernel = kernel
        self.last_accept = float("nan")
        # the probabilities of the independent-Bernoulli start (set in setup)
        self.register_buffer("base_probs", torch.zeros(0))

    def setup(self, model: nn.Module, x_train: torch.Tensor) -> None:
        """Fit the start distribution to the data marginals (Salakhutdinov & Murray's smoothed
        base rates) and fill the buffer from it; a buffer already filled (a restart) is kept."""
        x = check_binary(x_train.detach().flatten(1), "x_train")
        self.base_probs = torch.sigmoid(base_rate_bias(x)).to(x.dtype).to(x.device)
        super().setup(model, x)

    def noise(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        """n binary states from the independent-Bernoulli model of the data marginals."""
        if self.base_probs.numel() == 0:
            raise RuntimeError("ContrastiveDiscrete.setup(model, x_train) must run first")
        probs = self.base_probs.to(generator.device if generator is not None else "cpu")
        return bernoulli_draw(probs.expand(n, -1), generator).to(self.base_probs.device)

    def sample(
        self, model: nn.Module, start: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        """``n_steps`` kernel steps from ``start`` under the model's energy (the chain runner,
        keeping only the last state)."""
        requires = [p.requires_grad for p in model.parameters()]
        for p in model.parameters():  # the sampler needs grad_x only
            p.requires_grad_(False)
        try:
            result = sample(
                self.kernel,
                model.energy,
                start,
                self.n_steps,
                thin=self.n_steps,
                progress=False,
                generator=generator,
                diagnostics=False,
            )
        finally:
            for p, flag in zip(model.parameters(), requires):
                p.requires_grad_(flag)
        self.last_accept = result.acceptance_rate
        assert result.final_state is not None
        return result.final_state

    def loss(
        self, model: nn.Module, batch: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        loss, metrics = super().loss(model, batch, generator)
        metrics["accept_rate"] = self.last_accept
        return loss, metrics


__all__ = ["SAMPLERS", "ContrastiveDiscrete", "make_discrete_kernel"]
