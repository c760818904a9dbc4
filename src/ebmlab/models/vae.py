"""Variational autoencoder with importance-weighted bounds.

Model (Kingma & Welling 2014, "Auto-Encoding Variational Bayes", ICLR):

    p(z) = N(0, I),    p(x | z) = prod_d Bernoulli(x_d; sigmoid(f(z)_d))   (binary data)
                                or N(x; f(z), diag sigma^2)                  (real data),
    q(z | x) = N(z; mu(x), diag exp(log_var(x)))                              (the encoder),

with f, mu, log_var multilayer perceptrons (tanh units, as in Burda et al.). log p(x) is
intractable; two lower bounds are computed instead.

ELBO. log p(x) = L(x) + KL(q(z|x) || p(z|x)) >= L(x), where

    L(x) = E_q[log p(x | z)] - KL(q(z|x) || p(z)),
    KL(N(mu, diag v) || N(0, I)) = 1/2 sum_j (mu_j^2 + v_j - log v_j - 1)        (closed form).

The expectation is estimated with reparameterized draws z = mu + exp(log_var / 2) * eps,
eps ~ N(0, I), so its gradient reaches the encoder (the "reparameterization trick").

IWAE (Burda, Grosse & Salakhutdinov 2016, "Importance Weighted Autoencoders", ICLR). With
z_1..z_k ~ q(z|x) i.i.d. and importance weights w_i = p(x, z_i) / q(z_i | x),

    L_k(x) = E[log (1/k) sum_i w_i],    L_1 = L <= L_k <= L_{k+1} <= log p(x),

and L_k -> log p(x) as k -> infinity (their Theorem 1). Burda et al. report test log-likelihoods
as L_5000; ``iwae_bound`` computes it with a running logsumexp over chunks of draws, so memory
stays bounded for any k.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn

from ..validation import (
    Boolean,
    Integral,
    OneOf,
    Real,
    SequenceOf,
    as_generator,
    as_tensor,
    check_binary,
    check_nonempty,
    check_positive_int,
    validate,
)
from .base import Model
from .rbm import bernoulli_log_prob

LOG_2PI = math.log(2.0 * math.pi)
LIKELIHOODS = ("bernoulli", "gaussian")
ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "softplus": nn.Softplus}


# ----- closed forms ------------------------------------------------------------------------------
def gaussian_kl_to_standard_normal(mu: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag exp(log_var)) || N(0, I)), summed over the last dimension.

    = 1/2 sum_j (mu_j^2 + exp(log_var_j) - log_var_j - 1)
    """
    return 0.5 * (mu.square() + log_var.exp() - log_var - 1.0).sum(-1)


def log_standard_normal(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I), summed over the last dimension."""
    return -0.5 * (z.square().sum(-1) + z.shape[-1] * LOG_2PI)


def log_normal_diag(x: torch.Tensor, mean: torch.Tensor, log_sigma: torch.Tensor) -> torch.Tensor:
    """log N(x; mean, diag exp(2 log_sigma)), summed over the last dimension."""
    u = (x - mean) * torch.exp(-log_sigma)
    return -0.5 * (u.square() + 2.0 * log_sigma + LOG_2PI).sum(-1)


class ImportanceDraws(NamedTuple):
    """k reparameterized draws z ~ q(z | x) for each example and their log-density terms.

    ``log_px_given_z`` and ``log_prior_ratio`` (= log p(z) - log q(z | x)) have shape (k, batch);
    the log importance weight is their sum. ``mu`` and ``log_var`` (batch, latent) are q's.
    """

    z: torch.Tensor
    log_px_given_z: torch.Tensor
    log_prior_ratio: torch.Tensor
    mu: torch.Tensor
    log_var: torch.Tensor

    @property
    def log_weights(self) -> torch.Tensor:
        """log w = log p(x | z) + log p(z) - log q(z | x), shape (k, batch)."""
        return self.log_px_given_z + self.log_prior_ratio


class Bounds(NamedTuple):
    """Per-example results of ``VAE.bounds``: the IWAE-k bound, the ELBO estimated from the same
    k draws (the mean log weight), and the effective sample size of the normalized weights."""

    iwae: torch.Tensor
    elbo: torch.Tensor
    ess: torch.Tensor


def _mlp(sizes: list[int], activation: str, generator: torch.Generator | None) -> nn.Sequential:
    """Linear layers with an activation after each, Glorot-uniform weights and zero biases (the
    initialization of Burda et al.'s code)."""
    layers: list[nn.Module] = []
    for n_in, n_out in itertools.pairwise(sizes):
        layers += [_glorot_linear(n_in, n_out, generator), ACTIVATIONS[activation]()]
    return nn.Sequential(*layers)


def _glorot_linear(n_in: int, n_out: int, generator: torch.Generator | None) -> nn.Linear:
    layer = nn.Linear(n_in, n_out)
    bound = math.sqrt(6.0 / (n_in + n_out))
    with torch.no_grad():
        layer.weight.copy_(torch.rand(n_out, n_in, generator=generator) * 2 * bound - bound)
        layer.bias.zero_()
    return layer


# ----- the model ---------------------------------------------------------------------------------
class VAE(Model):
    """Variational autoencoder with a diagonal-Gaussian encoder and a standard-normal prior.

    Args:
        n_visible: data dimension D.
        hidden: sizes of the encoder's hidden layers; the decoder mirrors them (Burda et al.'s
            one-stochastic-layer MNIST model: [200, 200] with 50 latent units). ``[]`` makes both
            maps linear (the decoder is then a factor-analysis model for ``gaussian``).
        latent: latent dimension.
        likelihood: ``"bernoulli"`` (decoder outputs logits; binary data) or ``"gaussian"``
            (decoder outputs means; one learned standard deviation per dimension).
        activation: hidden-unit nonlinearity, ``"tanh"`` (Burda et al.), ``"relu"``, ``"softplus"``.
        min_sigma: floor on the Gaussian decoder's standard deviations (a density on data that
            sits on a few values, like blank pixels, grows without bound as sigma -> 0).
        seed: seed for the initial weights (None: torch's global generator).

    Example:
        >>> vae = VAE(6, hidden=[8], latent=2, seed=0)
        >>> x = (torch.rand(4, 6, generator=torch.Generator().manual_seed(0)) < 0.5).float()
        >>> g = torch.Generator().manual_seed(1)
        >>> bool((vae.elbo(x, g) <= vae.iwae_bound(x, k=1000, generator=g) + 1.0).all())
        True
    """

    likelihood_kind = "iwae-K"

    @validate(
        n_visible=Integral(1),
        hidden=SequenceOf(Integral(1), description="a list of layer sizes (positive integers)"),
        latent=Integral(1),
        likelihood=OneOf(*LIKELIHOODS),
        activation=OneOf(*ACTIVATIONS),
        min_sigma=Real(0, closed="neither"),
        seed=Integral() | None,
    )
    def __init__(
        self,
        n_visible: int,
        hidden: list[int] | tuple[int, ...] = (200, 200),
        latent: int = 50,
        likelihood: str = "bernoulli",
        activation: str = "tanh",
        min_sigma: float = 1e-3,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        generator = as_generator(seed, "cpu", "seed")
        self.n_visible = n_visible
        self.hidden = list(hidden)
        self.latent = latent
        self.likelihood = likelihood
        self.min_sigma = min_sigma
        widths = [n_visible, *self.hidden]
        self.encoder_trunk = _mlp(widths, activation, generator)
        self.encoder_mu = _glorot_linear(widths[-1], latent, generator)
        self.encoder_log_var = _glorot_linear(widths[-1], latent, generator)
        back = [latent, *reversed(self.hidden)]
        self.decoder_trunk = _mlp(back, activation, generator)
        self.decoder_out = _glorot_linear(back[-1], n_visible, generator)
        if likelihood == "gaussian":
            self.log_sigma = nn.Parameter(torch.zeros(n_visible))

    # ----- checks ------------------------------------------------------------------------------
    def check_data(self, x: object, name: str = "x", binary: bool = True) -> torch.Tensor:
        """Validate a batch of data: shape (batch, n_visible), finite, binary for ``bernoulli``
        (with ``binary=False``: values in [0, 1], grey levels to be binarized)."""
        x = as_tensor(
            x, name, dim=2, n_features=self.n_visible, device=self.device, dtype=self.dtype
        )
        if self.likelihood != "bernoulli":
            return x
        if binary:
            return check_binary(x, name)
        if x.numel() and (x.min() < 0 or x.max() > 1):
            raise ValueError(
                f"{name}: grey levels to binarize must lie in [0, 1], found "
                f"[{float(x.min()):.4g}, {float(x.max()):.4g}]"
            )
        return x

    def _check_latent(self, z: object, name: str = "z") -> torch.Tensor:
        return as_tensor(z, name, n_features=self.latent, device=self.device, dtype=self.dtype)

    # ----- the two networks --------------------------------------------------------------------
    def encode(self, x: torch.Tensor, check: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z | x): mean and log-variance, each (batch, latent)."""
        if check:
            x = self.check_data(x)
        h = self.encoder_trunk(x)
        return self.encoder_mu(h), self.encoder_log_var(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's output for latents z (..., latent): logits of p(x | z) (``bernoulli``)
        or its means (``gaussian``), shape (..., n_visible)."""
        return self.decoder_out(self.decoder_trunk(z))

    def decoder_log_sigma(self) -> torch.Tensor:
        """log standard deviations of the Gaussian decoder, floored at log(min_sigma)."""
        return self.log_sigma.clamp(min=math.log(self.min_sigma))

    def log_px_given_z(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x | z) for x (batch, D) and z (..., batch, latent); shape (..., batch)."""
        out = self.decode(z)
        if self.likelihood == "bernoulli":
            return bernoulli_log_prob(out, x)
        return log_normal_diag(x, out, self.decoder_log_sigma())

    def mean_x_given_z(self, z: torch.Tensor) -> torch.Tensor:
        """E[x | z]: pixel probabilities (``bernoulli``) or means (``gaussian``)."""
        out = self.decode(z)
        return torch.sigmoid(out) if self.likelihood == "bernoulli" else out

    # ----- draws and bounds --------------------------------------------------------------------
    def importance_draws(
        self,
        x: torch.Tensor,
        k: int = 1,
        generator: torch.Generator | int | None = None,
        check: bool = True,
    ) -> ImportanceDraws:
        """k reparameterized draws z = mu + sigma * eps from q(z | x) per example, with
        log p(x | z) and log p(z) - log q(z | x) (differentiable in every parameter).
        ``generator``: a ``torch.Generator``, an integer seed or None.

        ``check=False`` skips input validation (the training objective validates the training
        set once instead of every minibatch); ``generator`` must then be a generator or None.
        """
        if check:
            x = check_nonempty(self.check_data(x), "x")
            check_positive_int(k, "k")
            generator = as_generator(generator, self.device)
        mu, log_var = self.encode(x, check=False)
        eps = torch.randn((k, *mu.shape), generator=generator, device=mu.device, dtype=mu.dtype)
        z = mu + torch.exp(0.5 * log_var) * eps
        # log q(z | x) from eps: -1/2 |eps|^2 - 1/2 sum log_var - L/2 log 2 pi
        log_q = -0.5 * (eps.square().sum(-1) + log_var.sum(-1) + self.latent * LOG_2PI)
        return ImportanceDraws(
            z=z,
            log_px_given_z=self.log_px_given_z(x, z),
            log_prior_ratio=log_standard_normal(z) - log_q,
            mu=mu,
            log_var=log_var,
        )

    def elbo(
        self, x: torch.Tensor, generator: torch.Generator | int | None = None, k: int = 1
    ) -> torch.Tensor:
        """ELBO per example, (batch,): E_q[log p(x|z)] from k reparameterized draws minus the
        closed-form KL(q(z|x) || p(z)). Differentiable; an unbiased estimate of L(x)."""
        draws = self.importance_draws(x, k, generator)
        kl = gaussian_kl_to_standard_normal(draws.mu, draws.log_var)
        return draws.log_px_given_z.mean(0) - kl

    def log_prob(
        self, x: torch.Tensor, k: int = 100, generator: torch.Generator | int | None = None
    ) -> torch.Tensor:
        """IWAE-k estimate of log p(x) per example (differentiable; a lower bound in
        expectation), for at least one row of ``x``. For large k on many examples use
        ``iwae_bound``, which works in chunks."""
        draws = self.importance_draws(x, k, generator)
        return torch.logsumexp(draws.log_weights, 0) - math.log(k)

    @torch.no_grad()
    def bounds(
        self,
        x: torch.Tensor,
        k: int = 5000,
        generator: torch.Generator | int | None = None,
        batch_size: int = 10_000,
        progress: Callable[[int], object] | None = None,
    ) -> Bounds:
        """IWAE-k bound, ELBO and importance-weight effective sample size for every example.

        Draws are processed ``batch_size`` (example, draw) pairs at a time: blocks of
        max(1, batch_size // k) examples and chunks of draws whose logsumexp is accumulated with
        ``logaddexp`` in float64. So k = 5000 on the 10,000 MNIST test images (Burda et al.'s
        protocol) needs memory for ``batch_size`` decoder passes only. ``progress``: called
        after each block with the number of examples it finished (a progress bar's ``update``).

        Returns per-example tensors (float64): ``iwae`` = log (1/k) sum_i w_i, ``elbo`` =
        (1/k) sum_i log w_i (an unbiased ELBO estimate), ``ess`` = (sum w)^2 / sum w^2 in [1, k].
        ``x``: at least one row; ``generator``: a ``torch.Generator``, an integer seed or None.
        """
        x = check_nonempty(self.check_data(x), "x")
        check_positive_int(k, "k")
        check_positive_int(batch_size, "batch_size")
        generator = as_generator(generator, self.device)
        n = x.shape[0]
        rows = max(1, batch_size // k)
        chunk = max(1, min(k, batch_size // rows))
        iwae = torch.empty(n, dtype=torch.float64, device=x.device)
        elbo = torch.empty_like(iwae)
        ess = torch.empty_like(iwae)
        for start in range(0, n, rows):
            xb = x[start : start + rows]
            lse = torch.full((xb.shape[0],), -math.inf, dtype=torch.float64, device=x.device)
            lse2 = lse.clone()
            total = torch.zeros_like(lse)
            for done in range(0, k, chunk):
                draws = self.importance_draws(xb, min(chunk, k - done), generator, check=False)
                lw = draws.log_weights.double()
                lse = torch.logaddexp(lse, torch.logsumexp(lw, 0))
                lse2 = torch.logaddexp(lse2, torch.logsumexp(2.0 * lw, 0))
                total += lw.sum(0)
            iwae[start : start + rows] = lse - math.log(k)
            elbo[start : start + rows] = total / k
            ess[start : start + rows] = torch.exp(2.0 * lse - lse2)
            if progress is not None:
                progress(xb.shape[0])
        return Bounds(iwae=iwae, elbo=elbo, ess=ess)

    def iwae_bound(
        self,
        x: torch.Tensor,
        k: int = 5000,
        generator: torch.Generator | int | None = None,
        batch_size: int = 10_000,
    ) -> torch.Tensor:
        """IWAE-k lower bound on log p(x) per example (float64, no gradient), in chunks of
        ``batch_size`` (example, draw) pairs; see ``bounds``."""
        return self.bounds(x, k, generator, batch_size).iwae

    # ----- generation --------------------------------------------------------------------------
    @torch.no_grad()
    def sample(
        self, n: int, generator: torch.Generator | int | None = None, mean: bool = True
    ) -> torch.Tensor:
        """Ancestral samples: z ~ N(0, I), then E[x | z] (``mean=True``, the usual picture) or a
        draw x ~ p(x | z). Shape (n, n_visible). ``generator``: a ``torch.Generator``, an
        integer seed or None."""
        check_positive_int(n, "n")
        Boolean().check(mean, "mean")
        generator = as_generator(generator, self.device)
        z = torch.randn(n, self.latent, generator=generator, device=self.device, dtype=self.dtype)
        return self.draw_x_given_z(z, generator) if not mean else self.mean_x_given_z(z)

    @torch.no_grad()
    def draw_x_given_z(
        self, z: torch.Tensor, generator: torch.Generator | int | None = None
    ) -> torch.Tensor:
        """x ~ p(x | z): Bernoulli draws (binary) or Gaussian draws."""
        z = self._check_latent(z)
        generator = as_generator(generator, self.device)
        out = self.decode(z)
        if self.likelihood == "bernoulli":
            u = torch.rand(out.shape, generator=generator, device=out.device, dtype=out.dtype)
            return (u < torch.sigmoid(out)).to(out.dtype)
        noise = torch.randn(out.shape, generator=generator, device=out.device, dtype=out.dtype)
        return out + noise * self.decoder_log_sigma().exp()

    @torch.no_grad()
    def reconstruct(
        self,
        x: torch.Tensor,
        generator: torch.Generator | int | None = None,
        sample_z: bool = False,
    ) -> torch.Tensor:
        """E[x | z] at z = the encoder mean (default) or at one draw z ~ q(z | x)."""
        generator = as_generator(generator, self.device)
        mu, log_var = self.encode(x)
        z = mu
        if sample_z:
            eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
            z = mu + torch.exp(0.5 * log_var) * eps
        return self.mean_x_given_z(z)

    @torch.no_grad()
    def set_output_bias(self, x: torch.Tensor) -> None:
        """Start the decoder at the data marginal: output bias logit(clip(mean, 1e-3, 1 - 1e-3))
        (Burda et al.'s code) for ``bernoulli``, the data mean for ``gaussian`` (with sigma the
        data standard deviation). For ``bernoulli``, ``x`` may hold grey levels in [0, 1]: their
        mean is the pixel marginal of their binarizations. ``x``: at least one row (two for a
        gaussian likelihood, whose sigma is the data's)."""
        gaussian = self.likelihood != "bernoulli"
        x = check_nonempty(self.check_data(x, binary=False), "x", 2 if gaussian else 1)
        mean = x.mean(0)
        if self.likelihood == "bernoulli":
            # a pixel that is never (or always) on would get an infinite logit
            p = mean.clamp(1e-3, 1 - 1e-3)
            self.decoder_out.bias.copy_(torch.log(p) - torch.log1p(-p))
        else:
            self.decoder_out.bias.copy_(mean)
            self.log_sigma.copy_(x.std(0).clamp(min=self.min_sigma).log())

    def extra_repr(self) -> str:
        return (
            f"n_visible={self.n_visible}, hidden={self.hidden}, latent={self.latent}, "
            f"likelihood={self.likelihood!r}"
        )
