"""Maximum likelihood for neural energies by contrastive divergence with short-run Langevin MCMC.

The log-likelihood gradient of p(x) = exp(-E(x)) / Z is (lectures 001 part 3 and 003)

    grad_theta mean log p(x_data) = -E_data[grad_theta E(x)] + E_model[grad_theta E(x)],

so the surrogate loss mean E(x+) - mean E(x-), with x- model samples (detached), has the
maximum-likelihood gradient. The samples come from a few Langevin steps
x <- x - eps grad_x E(x) + noise_scale xi started from

  * ``chains="buffer"`` (default): a replay buffer (Du & Mordatch 2019, IGEBM; JEM): a minibatch
    of past negatives drawn at random, of which a fraction ``reinit_fraction`` (5%) is restarted
    from uniform noise; the moved samples are written back. The buffer is a registered buffer, so
    checkpoints keep it and a resumed run goes on with the same chains.
  * ``chains="persistent"``: ``n_chains`` persistent chains all advanced at every update
    (persistent CD, Tieleman 2008), with the same reinitialization.
  * ``chains="noise"``: short-run chains from noise at every update (Nijkamp et al. 2019).

Mode jumping (``jump_steps``, off by default). Langevin chains do not cross the low-density gaps
between modes, so a buffer whose chains sit in the wrong proportions between modes never tells
the model that one mode is too heavy: the learned density can put its mass on one ring of
``rings`` while its short-run samples still show all four. Before the Langevin steps, each chain
can make ``jump_steps`` independence Metropolis-Hastings moves with a uniform proposal x' on the
noise box, accepted with probability min(1, exp(E(x) - E(x'))): a valid MCMC move for exp(-E)
on the box that carries chains between modes. In two dimensions about a third of such proposals
land in the data's support; in image dimensions they are never accepted (and cost one energy
evaluation each), so use them for low-dimensional data only.

Regularization and stability:
  * ``alpha``: the energy-magnitude (L2 energy) penalty alpha (mean E(x+)^2 + mean E(x-)^2) of
    Du & Mordatch; it keeps the energies near 0, where the Langevin step is calibrated.
  * ``sampler_grad_clip``: clamp each entry of grad_x E in the sampler (IGEBM); the parameter
    gradient is clipped by the training loop (``TrainConfig.max_grad_norm``).
  * ``energy_bound``: an energy of the data or of a negative with |E| above the bound raises
    ``TrainingDiverged`` naming the step; the run keeps its last good checkpoint.

Divergence remedies (the advice of the JEM maintainers; ``ebmlab.training.train_with_restarts``
applies them automatically after a ``TrainingDiverged``):
  * energies grow without bound / samples saturate: raise ``alpha`` (L2 energy penalty, e.g.
    0.1 -> 1);
  * negatives far from the model (the loss swings, E(x-) << E(x+)): more Langevin steps
    (``n_steps`` 20 -> 40 or 60), or a smaller ``step_size`` with more steps;
  * the loss oscillates with growing amplitude: a lower learning rate (halve it);
  * a sudden NaN after long stable training: restart from the last good checkpoint with a new
    seed (the divergence is often a rare sampler excursion that a different noise path avoids).

Temperature. With ``noise_scale=None`` the sampler runs at temperature 1 (noise sqrt(2 eps)),
so the model learns the data density itself: this is what the grid KL of the toy densities
measures. JEM/IGEBM settings (step 1, noise 0.01) sample exp(-E / T) with T = 5e-5: the energy
then learns the data density at that temperature (fine for images, where only samples matter).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from torch import nn

from ..samplers.langevin import energy_gradient, langevin_chain
from ..validation import check_positive, check_positive_int
from .guards import StepCounter, check_energy

Chains = Literal["buffer", "persistent", "noise"]


def data_box(x_train: torch.Tensor, margin: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-coordinate [min - margin * range, max + margin * range] of the data."""
    lo, hi = x_train.min(0).values, x_train.max(0).values
    spread = (hi - lo).clamp_min(1e-6)  # a constant coordinate still gets a non-empty box
    return lo - margin * spread, hi + margin * spread


class ContrastiveLangevin(StepCounter):
    """Contrastive divergence with Langevin negatives (see the module docstring).

    Args:
        n_steps: Langevin steps per update.
        step_size: eps of the Langevin step.
        noise_scale: noise standard deviation; None for sqrt(2 eps) (temperature 1).
        chains: "buffer" (replay buffer), "persistent" (PCD chains) or "noise" (short-run).
        buffer_size: replay-buffer size (chains="buffer").
        n_chains: number of negatives per update for "persistent" and "noise" (None: the
            minibatch size); the buffer mode draws one negative per data point.
        reinit_fraction: fraction of the drawn chains restarted from noise at each update.
        jump_steps: independence Metropolis moves (uniform proposals on the noise box) per chain
            and update, before the Langevin steps; for low-dimensional data.
        alpha: L2 energy penalty alpha (E(x+)^2 + E(x-)^2).
        sampler_grad_clip: clamp of grad_x E entries in the sampler (None: off).
        clamp: keep negatives inside the noise box (images in [0, 1]).
        box_margin: the noise box is the data's bounding box widened by this fraction.
        energy_bound: |E| beyond which training is declared diverged.
        seed: seeds the initial buffer in ``setup``.
    """

    requires: ClassVar[str | None] = "energy"

    def __init__(
        self,
        n_steps: int = 20,
        step_size: float = 0.01,
        noise_scale: float | None = None,
        chains: Chains = "buffer",
        buffer_size: int = 10_000,
        n_chains: int | None = None,
        reinit_fraction: float = 0.05,
        jump_steps: int = 0,
        alpha: float = 0.1,
        sampler_grad_clip: float | None = None,
        clamp: bool = False,
        box_margin: float = 0.1,
        energy_bound: float = 1e4,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if chains not in ("buffer", "persistent", "noise"):
            raise ValueError(f"chains: expected 'buffer', 'persistent' or 'noise', got {chains!r}")
        for name, value in (("n_steps", n_steps), ("buffer_size", buffer_size)):
            check_positive_int(value, name)
        if isinstance(jump_steps, bool) or not isinstance(jump_steps, int) or jump_steps < 0:
            raise ValueError(f"jump_steps: expected an integer >= 0, got {jump_steps!r}")
        if n_chains is not None and (not isinstance(n_chains, int) or n_chains < 1):
            raise ValueError(f"n_chains: expected None or a positive integer, got {n_chains!r}")
        check_positive(step_size, "step_size")
        if noise_scale is not None and not noise_scale >= 0:
            raise ValueError(f"noise_scale: expected None or a number >= 0, got {noise_scale}")
        if not 0.0 <= reinit_fraction <= 1.0:
            raise ValueError(
                f"reinit_fraction: expected a fraction in [0, 1], got {reinit_fraction}"
            )
        if not alpha >= 0:
            raise ValueError(f"alpha: expected a number >= 0, got {alpha}")
        check_positive(energy_bound, "energy_bound")
        self.n_steps = n_steps
        self.step_size = float(step_size)
        self.noise_scale = None if noise_scale is None else float(noise_scale)
        self.chains = chains
        self.buffer_size = buffer_size
        self.n_chains = n_chains
        self.reinit_fraction = float(reinit_fraction)
        self.jump_steps = jump_steps
        self.alpha = float(alpha)
        self.sampler_grad_clip = sampler_grad_clip
        self.clamp = bool(clamp)
        self.box_margin = float(box_margin)
        self.energy_bound = float(energy_bound)
        self.seed = int(seed)
        # allocated in setup (shapes depend on the data); checkpoints replace them
        self.register_buffer("buffer", torch.zeros(0))
        self.register_buffer("box_low", torch.zeros(0))
        self.register_buffer("box_high", torch.zeros(0))

    # ----- state ------------------------------------------------------------------------------
    def setup(self, model: nn.Module, x_train: torch.Tensor) -> None:
        """Fix the noise box from the data and fill the buffer (or persistent chains) with
        uniform noise; a buffer already filled (a restart from a checkpoint) is kept."""
        low, high = data_box(x_train.detach().flatten(1), self.box_margin)
        self.box_low, self.box_high = low, high
        size = {"buffer": self.buffer_size, "persistent": self.n_chains or 100, "noise": 0}[
            self.chains
        ]
        if self.buffer.dim() == 2 and self.buffer.shape == (size, low.numel()):
            return
        g = torch.Generator(device="cpu").manual_seed(self.seed)
        self.buffer = self.noise(size, g).to(x_train.device)

    def noise(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        """n points uniform on the noise box."""
        if self.box_low.numel() == 0:
            raise RuntimeError("ContrastiveLangevin.setup(model, x_train) must run first")
        device = generator.device if generator is not None else self.box_low.device
        u = torch.rand(
            n, self.box_low.numel(), generator=generator, device=device, dtype=self.box_low.dtype
        ).to(self.box_low.device)
        return self.box_low + (self.box_high - self.box_low) * u

    def _reinitialize(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.reinit_fraction == 0.0:
            return x
        fresh = torch.rand(x.shape[0], generator=generator, device=generator.device)
        fresh = (fresh < self.reinit_fraction).to(x.device).unsqueeze(-1)
        return torch.where(fresh, self.noise(x.shape[0], generator).to(x), x)

    @torch.no_grad()
    def jump(self, model: nn.Module, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One independence Metropolis move per chain: x' uniform on the noise box, accepted
        with probability min(1, exp(E(x) - E(x'))) (the uniform proposal density cancels)."""
        proposal = self.noise(x.shape[0], generator).to(x)
        log_ratio = model.energy(x) - model.energy(proposal)
        u = torch.rand(x.shape[0], generator=generator, device=generator.device, dtype=x.dtype).to(
            x.device
        )
        # log(1 - U) with U in [0, 1) is finite; a NaN ratio compares False: rejected
        accept = (torch.log1p(-u) < log_ratio).unsqueeze(-1)
        return torch.where(accept, proposal, x)

    def negatives(
        self, model: nn.Module, batch_size: int, generator: torch.Generator
    ) -> torch.Tensor:
        """Draw (and write back) the negative samples of one update."""
        if self.box_low.numel() == 0:
            raise RuntimeError("ContrastiveLangevin.setup(model, x_train) must run first")
        index: torch.Tensor | None = None
        if self.chains == "noise":
            start = self.noise(self.n_chains or batch_size, generator)
        elif self.chains == "persistent":
            start = self._reinitialize(self.buffer, generator)
        else:
            index = torch.randint(
                0, self.buffer.shape[0], (batch_size,), generator=generator, device=generator.device
            ).to(self.buffer.device)
            start = self._reinitialize(self.buffer[index], generator)
        for _ in range(self.jump_steps):
            start = self.jump(model, start, generator)
        x = self.sample(model, start, generator)
        if self.chains == "persistent":
            self.buffer.copy_(x)
        elif index is not None:
            self.buffer[index] = x
        return x

    def sample(
        self, model: nn.Module, start: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        """``n_steps`` Langevin steps from ``start`` under the model's energy."""
        clamp = (float(self.box_low.min()), float(self.box_high.max())) if self.clamp else None
        requires = [p.requires_grad for p in model.parameters()]
        for p in model.parameters():  # the sampler needs grad_x only
            p.requires_grad_(False)
        try:
            return langevin_chain(
                model.energy,
                start,
                self.n_steps,
                self.step_size,
                self.noise_scale,
                generator,
                clamp=clamp,
                grad_clip=self.sampler_grad_clip,
            )
        finally:
            for p, flag in zip(model.parameters(), requires):
                p.requires_grad_(flag)

    # ----- loss -------------------------------------------------------------------------------
    def loss(
        self, model: nn.Module, batch: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        x_neg = self.negatives(model, batch.shape[0], generator)
        energy_pos = model.energy(batch)
        energy_neg = model.energy(x_neg)
        step = self.current_step
        check_energy(energy_pos.detach(), self.energy_bound, step, "data")
        check_energy(energy_neg.detach(), self.energy_bound, step, "Langevin samples")
        contrast = energy_pos.mean() - energy_neg.mean()
        penalty = energy_pos.square().mean() + energy_neg.square().mean()
        loss = contrast + self.alpha * penalty
        metrics = {
            "energy_data": float(energy_pos.detach().mean()),
            "energy_samples": float(energy_neg.detach().mean()),
            "contrast": float(contrast.detach()),
        }
        return loss, metrics

    def apply_remedies(self, attempt: int) -> dict[str, Any]:
        """Strengthen the sampler and the penalty after a divergence (attempt = 1, 2, ...):
        twice the Langevin steps and a larger L2 energy penalty; returns what changed."""
        self.n_steps *= 2
        self.alpha = max(2.0 * self.alpha, 0.1)
        changed = {"n_steps": self.n_steps, "alpha": self.alpha}
        self.config.update(changed)  # checkpoints rebuild the strengthened objective
        return changed


__all__ = ["ContrastiveLangevin", "StepCounter", "check_energy", "data_box", "energy_gradient"]
