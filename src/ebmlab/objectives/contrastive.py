"""Contrastive training of RBMs: CD-k, persistent CD and parallel tempering, optionally centered.

The log-likelihood gradient of an RBM is a difference of two expectations (lecture 002):

    d/dtheta mean log p(v) = -E_data[dF/dtheta] + E_model[dF/dtheta]

The positive phase is exact (the hidden units are summed out); the negative phase uses samples:
  * CD-k (Hinton 2002): k block-Gibbs sweeps started at the minibatch;
  * PCD-k (Tieleman 2008): k sweeps of persistent chains that carry over between updates;
  * PT (Desjardins et al. 2010; Cho, Raiko & Ilin 2010): persistent chains at a ladder of inverse
    temperatures 1 = beta_0 > ... > beta_{T-1} >= 0 (p_beta ~ exp(-beta E), linear in beta), with
    swaps of the joint states (v, h) between neighbours (even pairs, then odd pairs,
    alternating) accepted with probability min(1, exp((beta_t - beta_{t+1}) (E_t - E_{t+1}))),
    the replica exchange of ``ebmlab.samplers.tempering``; the beta = 1 chains give the
    statistics.

The loss is mean F(v_data) - mean F(v_neg) with v_neg detached, so its gradient is the positive
minus the negative statistics. Positive statistics are averaged over the minibatch and negative
ones over the chains, whatever the minibatch size: scikit-learn divides the persistent chains'
statistics by the size of the (possibly short) last minibatch instead, an oversized step once per
epoch (13x on digits with batch 100); a test pins this.

Hand-written gradients. For ``BernoulliRBM`` the statistics are computed by hand (5 matmuls per
update: positive hiddens, one sweep v <- h, h <- v, and the two outer products) and handed to
autograd through ``inject_gradient``: ``loss.backward()`` then writes exactly these gradients into
``.grad`` without re-running the forward pass. Autograd on the surrogate would redo two matmuls
and the softplus; on 784 x 500, batch 100, the hand path is measurably faster (see
docs/benchmarks.md). ``gradient="autograd"`` keeps the surrogate path (used for other models
and in the tests, which check that both give the same gradient).

Centering (Melchior, Fischer & Wiskott, "How to center deep Boltzmann machines", JMLR 2016). The
centered energy E = -(v - mu)^T b' - (h - lam)^T c' - (v - mu)^T W (h - lam) is the same model as
the plain RBM with b = b' - W lam, c = c' - W^T mu. We keep the model in plain form and center
only the gradient: the centered gradient

    dW' = <(v - mu)(h - lam)^T>_data - <(v - mu)(h - lam)^T>_model,  db' = <v>_d - <v>_m,
    dc' = <h>_d - <h>_m

is mapped to plain coordinates (dW = dW', db = db' - dW' lam, dc = dc' - dW'^T mu), which is
exactly centered SGD (momentum included) while the offsets are fixed. The offsets are moving
averages of the data mean mu and of the data-driven hidden mean lam (their "dd" variant, rate
``offset_rate``). Weight decay applies to W in plain coordinates.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn
from torch.nn import functional as F

from ..models.gaussian_rbm import GaussianBernoulliRBM
from ..models.rbm import BernoulliRBM
from ..samplers import bernoulli_draw, linear_ladder
from ..samplers.tempering import linear_swap_log_ratio, replica_exchange, swap_pairs
from ..validation import as_tensor, check_binary, check_positive_int
from .base import Objective

Method = Literal["cd", "pcd", "pt"]


class _InjectGradient(torch.autograd.Function):
    """Identity on a scalar ``value`` whose backward hands precomputed gradients to ``params``."""

    @staticmethod
    def forward(ctx: Any, value: torch.Tensor, n: int, *tensors: torch.Tensor) -> torch.Tensor:
        ctx.grads = tensors[n:]
        ctx.n = n
        return value.detach().clone()

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        # the training loop calls loss.backward(): grad_output is 1 and the grads pass unscaled
        one = grad_output.numel() == 1 and float(grad_output) == 1.0
        grads = ctx.grads if one else tuple(g * grad_output for g in ctx.grads)
        return (None, None, *grads, *([None] * ctx.n))


def inject_gradient(
    value: torch.Tensor, params: list[torch.Tensor], grads: list[torch.Tensor]
) -> torch.Tensor:
    """A scalar equal to ``value`` whose backward adds ``grads`` to the ``.grad`` of ``params``."""
    return _InjectGradient.apply(value, len(params), *params, *grads)


class ContrastiveDivergence(Objective):
    """CD-k, PCD-k or parallel-tempering training of a ``BernoulliRBM`` (or, for CD and PCD, a
    ``GaussianBernoulliRBM``).

    Args:
        k: block-Gibbs sweeps per update.
        method: "cd" (chains restart at the minibatch), "pcd" (persistent chains) or "pt"
            (persistent chains at ``n_temperatures`` inverse temperatures with swaps).
        n_chains: persistent chains (pcd, pt); the negative statistics are averaged over them.
        n_temperatures: rungs of the PT ladder (beta from 1 down to ``min_beta``, linear).
        min_beta: inverse temperature of the hottest PT chain (0: uniform noise).
        centering: center the gradient (Melchior et al. 2016); BernoulliRBM only.
        offset_rate: moving-average rate of the centering offsets.
        init_visible_bias: in ``setup``, set the visible biases from the data marginals.
        gradient: "manual" (hand-written statistics, BernoulliRBM) or "autograd" (surrogate loss).
        binary_data: require binary data for a BernoulliRBM (False accepts probabilities in [0, 1]
            as mean-field visible states, as scikit-learn does).
        scale_by_variance: for a GaussianBernoulliRBM, multiply the gradient of row i of W and of
            b_i by sigma_i^2. In Cho et al.'s parametrization these gradients scale like
            1 / sigma_i^2 (and their noise like 1 / sigma_i), so pixels that are nearly constant
            (MNIST's border, sigma at its floor) dominate and SGD at ordinary learning rates
            diverges (a test pins it); sigma_i^2 is the inverse Fisher information of a Gaussian
            mean, which makes the step size per pixel scale-free. The variances' own gradient
            is left as is.
        monitor: compute the loss value mean F(v0) - mean F(vn) (a softplus over both phases'
            hidden inputs). With ``False`` (hand-written path only) the value is 0 and only the
            gradient is computed: what ``ebmlab.sklearn`` uses, which never reads the loss.
        seed: seeds the initial persistent chains in ``setup``.
    """

    def __init__(
        self,
        k: int = 1,
        method: Method = "cd",
        n_chains: int = 100,
        n_temperatures: int = 10,
        min_beta: float = 0.0,
        centering: bool = False,
        offset_rate: float = 0.01,
        init_visible_bias: bool = True,
        gradient: Literal["manual", "autograd"] = "manual",
        binary_data: bool = True,
        scale_by_variance: bool = True,
        monitor: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if method not in ("cd", "pcd", "pt"):
            raise ValueError(f"method: expected 'cd', 'pcd' or 'pt', got {method!r}")
        for name, value in (("k", k), ("n_chains", n_chains), ("n_temperatures", n_temperatures)):
            check_positive_int(value, name)
        if method == "pt" and n_temperatures < 2:
            raise ValueError(
                f"n_temperatures: parallel tempering needs at least 2, got {n_temperatures}"
            )
        if not 0.0 <= min_beta < 1.0:
            raise ValueError(f"min_beta: expected a value in [0, 1), got {min_beta}")
        if not 0.0 <= offset_rate <= 1.0:
            raise ValueError(f"offset_rate: expected a value in [0, 1], got {offset_rate}")
        if gradient not in ("manual", "autograd"):
            raise ValueError(f"gradient: expected 'manual' or 'autograd', got {gradient!r}")
        self.k = k
        self.method = method
        self.n_chains = n_chains
        self.n_temperatures = n_temperatures if method == "pt" else 1
        self.min_beta = min_beta
        self.centering = centering
        self.offset_rate = offset_rate
        self.init_visible_bias = init_visible_bias
        self.gradient = gradient
        self.binary_data = binary_data
        self.scale_by_variance = scale_by_variance
        self.monitor = monitor
        self.seed = seed
        # state (sized in setup or at the first step; buffers go into checkpoints)
        self.register_buffer("chain_v", torch.empty(0))  # (T, n_chains, D) persistent visibles
        self.register_buffer("chain_h", torch.empty(0))  # (T, n_chains, H) persistent hiddens
        self.register_buffer("betas", torch.empty(0))  # (T,) inverse temperatures, beta_0 = 1
        self.register_buffer("swap_rate", torch.empty(0))  # (T - 1,) running swap acceptance
        self.register_buffer("offset_v", torch.empty(0))  # (D,) centering offset mu
        self.register_buffer("offset_h", torch.empty(0))  # (H,) centering offset lambda
        self.register_buffer("swap_rounds", torch.zeros((), dtype=torch.long))  # PT parity

    # ----- setup --------------------------------------------------------------------------------
    def _check_model(self, model: nn.Module) -> None:
        if not isinstance(model, BernoulliRBM | GaussianBernoulliRBM):
            raise TypeError(
                f"model: {type(self).__name__} trains a BernoulliRBM or a "
                f"GaussianBernoulliRBM, got {type(model).__name__}"
            )
        bernoulli_rbm = isinstance(model, BernoulliRBM)
        if not bernoulli_rbm and self.method == "pt":
            raise ValueError("method: parallel tempering is implemented for BernoulliRBM only")
        if not bernoulli_rbm and self.centering:
            raise ValueError("centering: implemented for BernoulliRBM only")

    def check_data(self, model: nn.Module, x: torch.Tensor, name: str = "x_train") -> torch.Tensor:
        """Shape, finiteness and (for a Bernoulli model) binary or [0, 1] values."""
        x = as_tensor(
            x, name, dim=2, n_features=model.n_visible, device=model.W.device, dtype=model.W.dtype
        )
        if isinstance(model, BernoulliRBM):
            if self.binary_data:
                check_binary(x, name)
            elif x.min() < 0 or x.max() > 1:
                raise ValueError(
                    f"{name}: a Bernoulli model needs values in [0, 1], found "
                    f"[{float(x.min()):.4g}, {float(x.max()):.4g}]"
                )
        return x

    @torch.no_grad()
    def setup(self, model: nn.Module, x_train: torch.Tensor) -> None:
        """Validate the data, set the visible biases from the data marginals, start the
        persistent chains from the data's base-rate model and the centering offsets at the data
        mean (visible) and 1/2 (hidden)."""
        self._check_model(model)
        x_train = self.check_data(model, x_train)
        if self.init_visible_bias and hasattr(model, "init_visible_from_data"):
            model.init_visible_from_data(x_train)
        generator = torch.Generator(device=model.W.device).manual_seed(self.seed)
        self._init_state(model, x_train, generator)

    def _init_state(self, model: nn.Module, x: torch.Tensor, generator: torch.Generator) -> None:
        device, dtype = model.W.device, model.W.dtype
        if self.centering:
            self.offset_v = x.mean(0).to(dtype)
            self.offset_h = torch.full((model.n_hidden,), 0.5, device=device, dtype=dtype)
        if self.method == "cd":
            return
        betas = linear_ladder(1.0, self.min_beta, self.n_temperatures)
        self.betas = betas.to(device=device, dtype=dtype)
        self.swap_rate = torch.zeros(max(self.n_temperatures - 1, 0), device=device, dtype=dtype)
        shape = (self.n_temperatures, self.n_chains, model.n_visible)
        if isinstance(model, BernoulliRBM):
            # base-rate model: each pixel on with its data frequency
            marginal = x.mean(0).expand(shape).contiguous()
            v = bernoulli_draw(marginal, generator)
        else:
            v = x.mean(0) + x.std(0) * torch.randn(
                shape, generator=generator, device=device, dtype=dtype
            )
        flat = v.reshape(-1, model.n_visible)
        h = model.sample_h(flat, generator).reshape(self.n_temperatures, self.n_chains, -1)
        self.chain_v, self.chain_h = v, h

    def param_groups(
        self, model: nn.Module, lr: float, weight_decay: float
    ) -> list[dict[str, Any]]:
        """Weight decay on W only: biases (and variances) are not decayed (Hinton's guide)."""
        rest = [p for name, p in model.named_parameters() if name != "W" and p.requires_grad]
        return [
            {"params": [model.W], "lr": lr, "weight_decay": weight_decay},
            {"params": rest, "lr": lr, "weight_decay": 0.0},
        ]

    # ----- sampling -----------------------------------------------------------------------------
    @staticmethod
    def _sample_v(model: nn.Module, h: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if isinstance(model, BernoulliRBM):
            return bernoulli_draw(torch.addmm(model.b, h, model.W.T).sigmoid_(), generator)
        return model.sample_v(h, generator)

    def _persistent_visible(
        self, model: nn.Module, v0: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        """Advance the persistent chains (pcd: k sweeps h -> v -> h, the last h left to the
        caller; pt: tempered sweeps and swaps) and return the beta = 1 visible states."""
        if self.chain_v.numel() == 0:  # setup was not called (e.g. scikit-learn's partial_fit)
            self._init_state(model, v0, generator)
        if self.method == "pt":
            return self._pt_sweeps(model, generator)
        h = self.chain_h[0]
        for _ in range(self.k - 1):
            v = self._sample_v(model, h, generator)
            h = bernoulli_draw(torch.sigmoid(model.hidden_logits(v)), generator)
        v = self._sample_v(model, h, generator)
        self.chain_v = v[None]
        return v

    def _pt_sweeps(self, model: BernoulliRBM, generator: torch.Generator) -> torch.Tensor:
        """k tempered sweeps of every chain, each followed by a round of neighbour swaps; returns
        the beta = 1 chains' visible states."""
        T, N = self.n_temperatures, self.n_chains
        betas = self.betas.view(T, 1, 1)
        v, h = self.chain_v, self.chain_h
        for _ in range(self.k):
            v_logits = torch.addmm(model.b, h.reshape(T * N, -1), model.W.T).view(T, N, -1)
            v = bernoulli_draw(torch.sigmoid(betas * v_logits), generator)
            a = torch.addmm(model.c, v.reshape(T * N, -1), model.W).view(T, N, -1)
            h = bernoulli_draw(torch.sigmoid(betas * a), generator)
            # joint energies at beta = 1: E = -b.v - c.h - v^T W h = -b.v - h.(c + v^T W)
            energy = -(v @ model.b) - (h * a).sum(-1)  # (T, N)
            v, h = self._swap(v, h, energy, generator)
        self.chain_v, self.chain_h = v, h
        return v[0]

    def _swap(
        self, v: torch.Tensor, h: torch.Tensor, energy: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One round of replica exchange between rungs (t, t+1) for t of the current parity,
        with a running (rate 0.01) average of each pair's acceptance."""
        lower = swap_pairs(self.n_temperatures, int(self.swap_rounds), v.device)
        self.swap_rounds += 1
        if lower.numel() == 0:
            return v, h
        log_ratio = linear_swap_log_ratio(self.betas, energy, lower)
        (v, h), accepted = replica_exchange([v, h], log_ratio, lower, generator)
        rate = accepted.to(v.dtype).mean(1)
        self.swap_rate[lower] = 0.99 * self.swap_rate[lower] + 0.01 * rate
        return v, h

    def negative_phase(
        self, model: nn.Module, v0: torch.Tensor, ph0: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Negative samples: (v_neg, hidden logits at v_neg, p(h | v_neg))."""
        if self.method == "cd":
            h = bernoulli_draw(ph0, generator)
            for sweep in range(self.k):
                v = self._sample_v(model, h, generator)
                a = model.hidden_logits(v)
                ph = torch.sigmoid(a)
                if sweep < self.k - 1:
                    h = bernoulli_draw(ph, generator)
            return v, a, ph
        v = self._persistent_visible(model, v0, generator)
        a = model.hidden_logits(v)
        ph = torch.sigmoid(a)
        if self.method == "pcd":
            self.chain_h = bernoulli_draw(ph, generator)[None]
        return v, a, ph

    # ----- loss ---------------------------------------------------------------------------------
    def loss(
        self, model: nn.Module, batch: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        if batch.dim() != 2 or batch.shape[1] != model.n_visible:
            raise ValueError(
                f"batch: expected shape (batch, {model.n_visible}), got {tuple(batch.shape)}"
            )
        if self.gradient == "manual" and isinstance(model, BernoulliRBM):
            return self._manual_loss(model, batch, generator)
        if self.centering:
            raise ValueError("centering: needs gradient='manual'")
        with torch.no_grad():
            ph0 = model.p_h_given_v(batch)
            v_neg, _, _ = self.negative_phase(model, batch, ph0, generator)
        loss = model.free_energy(batch).mean() - model.free_energy(v_neg.detach()).mean()
        if isinstance(model, GaussianBernoulliRBM) and self.scale_by_variance:
            return self._variance_scaled(model, loss), {}
        return loss, {}

    @staticmethod
    def _variance_scaled(model: GaussianBernoulliRBM, loss: torch.Tensor) -> torch.Tensor:
        """The gradient of W's rows and of b multiplied by sigma_i^2 (see the class docstring)."""
        params = [p for p in model.parameters() if p.requires_grad]
        grads = torch.autograd.grad(loss, params)
        variance = model.sigma().detach().square()
        scaled = [
            g * variance[:, None] if p is model.W else g * variance if p is model.b else g
            for p, g in zip(params, grads)
        ]
        return inject_gradient(loss.detach(), params, scaled)

    def _manual_loss(
        self, model: BernoulliRBM, v0: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        value, grads = self.gradients(model, v0, generator)
        loss = inject_gradient(value, [model.W, model.b, model.c], grads)
        return loss, {}

    @torch.no_grad()
    def gradients(
        self, model: BernoulliRBM, v0: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(loss value, [dloss/dW, dloss/db, dloss/dc]) for a BernoulliRBM, by hand.

        The loss gradient (negative statistics minus positive ones, each averaged over its own
        rows) in 4 (CD-1) or 3 (PCD, PT) matmul calls: the outer products of both phases are one
        product [v0; vn]^T [-p0 / n_pos; pn / n_neg], and for persistent chains, which do not
        depend on the minibatch, the hidden inputs of both phases are one product too."""
        W, b, c = model.W, model.b, model.c
        n_pos = v0.shape[0]
        if self.method == "cd":
            a0 = torch.addmm(c, v0, W)
            ph0 = torch.sigmoid(a0)
            vn, an, phn = self.negative_phase(model, v0, ph0, generator)
            stacked, a, p = torch.cat([v0, vn]), torch.cat([a0, an]), torch.cat([ph0, phn])
        else:
            vn = self._persistent_visible(model, v0, generator)
            stacked = torch.cat([v0, vn])
            a = torch.addmm(c, stacked, W)
            p = torch.sigmoid(a)
            if self.method == "pcd":
                self.chain_h = bernoulli_draw(p[n_pos:], generator)[None]
        n_neg = stacked.shape[0] - n_pos
        # row weights -1/n_pos (data) and +1/n_neg (chains): every loss gradient is a weighted
        # sum over the stacked rows, so the means cost one matvec each
        weights = self._row_weights(n_pos, n_neg, a)
        if self.centering:
            mean_v0, mean_h0 = v0.mean(0), p[:n_pos].mean(0)
        grad_b = weights @ stacked  # mean vn - mean v0
        grad_c = weights @ p  # mean p(h | vn) - mean p(h | v0)
        if self.monitor:
            # loss value: mean F(v0) - mean F(vn), from the hidden inputs already computed
            value = grad_b @ b + weights @ F.softplus(a).sum(-1)
        else:
            value = torch.zeros((), dtype=a.dtype, device=a.device)
        grad_w = torch.mm(stacked.T, p.mul_(weights[:, None]))  # d loss / dW
        if self.centering:
            if self.offset_v.numel() == 0:
                self.offset_v = mean_v0.clone()
                self.offset_h = torch.full_like(c, 0.5)
            self.offset_v.lerp_(mean_v0, self.offset_rate)
            self.offset_h.lerp_(mean_h0, self.offset_rate)
            mu, lam = self.offset_v, self.offset_h
            # centered (ascent form dW' = dW - mu dc^T - db lam^T, then b = b' - W lam and
            # c = c' - W^T mu), written for the loss gradients gW, gb, gc = -(dW, db, dc):
            grad_w.addr_(mu, grad_c, alpha=-1.0).addr_(grad_b, lam, alpha=-1.0)
            grad_b = torch.addmv(grad_b, grad_w, lam, alpha=-1.0)  # gb - gW' lam
            grad_c = torch.addmv(grad_c, grad_w.T, mu, alpha=-1.0)  # gc - gW'^T mu
        return value, [grad_w, grad_b, grad_c]

    def _row_weights(self, n_pos: int, n_neg: int, like: torch.Tensor) -> torch.Tensor:
        key = (n_pos, n_neg, like.dtype, like.device)
        cached = getattr(self, "_weights_cache", None)
        if cached is None or cached[0] != key:
            weights = torch.cat(
                [
                    torch.full((n_pos,), -1.0 / n_pos, dtype=like.dtype, device=like.device),
                    torch.full((n_neg,), 1.0 / n_neg, dtype=like.dtype, device=like.device),
                ]
            )
            object.__setattr__(self, "_weights_cache", (key, weights))
            return weights
        return cached[1]

    @torch.no_grad()
    def negative_samples(self) -> torch.Tensor:
        """The beta = 1 persistent chains' visible states, (n_chains, D) (empty for CD)."""
        return self.chain_v[0] if self.chain_v.numel() else self.chain_v


class PersistentContrastiveDivergence(ContrastiveDivergence):
    """PCD-k (Tieleman 2008): ``ContrastiveDivergence(method="pcd", **settings)``."""

    def __init__(self, **settings: Any) -> None:
        super().__init__(method="pcd", **settings)


class ParallelTemperingCD(ContrastiveDivergence):
    """Training with parallel-tempering chains: ``ContrastiveDivergence(method="pt",
    **settings)``."""

    def __init__(self, **settings: Any) -> None:
        super().__init__(method="pt", **settings)


def swap_acceptance(objective: ContrastiveDivergence) -> list[float]:
    """Running acceptance rate of the swaps between neighbouring PT rungs (a diagnostic)."""
    return [float(x) for x in objective.swap_rate] if objective.swap_rate.numel() else []
