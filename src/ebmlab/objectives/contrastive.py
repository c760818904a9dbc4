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

Hand-written gradients. For ``BernoulliRBM`` the statistics are computed by hand: the visible
rows of both phases stacked, S = [v0; vn], the hidden probabilities Q = [p(h | v0); p(h | vn)]
with each row multiplied by its weight (-1/n_pos for data rows, +1/n_neg for chain rows), so that
the loss gradient is dW = S^T Q, db = S^T w, dc = Q^T 1: both phases' outer products are one
matmul. PCD-1 costs 5 matmul-units of batch x visible x hidden (v <- h for the chains, the hidden
inputs of S in one product, the outer product S^T Q), CD-1 the same in 4 calls. Every buffer
(S, Q, the visible inputs, the draws) lives in a workspace the objective keeps between steps;
activations are in place and each Bernoulli layer takes one uniform tensor (``bernoulli_draw``
writing into the buffer). ``gradients`` returns the three gradients (new tensors); ``loss``
hands them to autograd through ``inject_gradient``, so that ``loss.backward()`` writes exactly
these gradients into ``.grad`` without re-running the forward pass; ``sgd_update`` (what
``ebmlab.sklearn`` and, for plain SGD, ``ebmlab.training.train`` run) never forms them: the
outer-product matmul accumulates straight into W (or its momentum buffer) and the bias matvecs
into b and c. ``gradient="autograd"`` keeps the surrogate path (used for other models and in the
tests, which check that both give the same gradient). Figures: docs/benchmarks.md.

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

import weakref
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

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
        # the training loop calls loss.backward(): grad_output is 1 and the grads pass unscaled;
        # ctx lets go of them, so that autograd moves them into .grad instead of copying them
        grads, ctx.grads = ctx.grads, ()
        one = grad_output.numel() == 1 and float(grad_output) == 1.0
        if not one:
            grads = tuple(g * grad_output for g in grads)
        return (None, None, *grads, *([None] * ctx.n))


def inject_gradient(
    value: torch.Tensor, params: list[torch.Tensor], grads: list[torch.Tensor]
) -> torch.Tensor:
    """A scalar equal to ``value`` whose backward adds ``grads`` to the ``.grad`` of ``params``."""
    return _InjectGradient.apply(value, len(params), *params, *grads)


class _LowMatmul:
    """The update's matmuls in a narrower dtype (bfloat16 or float16; float32 for a float64
    model): each operand is rounded into a buffer, the product lands in another, and the caller
    adds it to its bias or parameter, which stay in the model's dtype. The binary operands
    (visible and hidden states) are exact in any of these; W and the weighted hidden
    probabilities are rounded (bfloat16 keeps 8 significant bits, float16 11), the products
    accumulated in float32 inside the kernel. Buffers are kept between steps (none is allocated
    on the hot path); an operand buffer serves the product it was cast for, so operands of one
    shape and slot may share it."""

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype
        self.operands: dict[tuple[int, ...], torch.Tensor] = {}
        self.products: dict[tuple[int, ...], torch.Tensor] = {}
        self.weight = torch.empty(0, dtype=dtype)  # W rounded, once per update

    def _buffer(
        self, store: dict[tuple[int, ...], torch.Tensor], key: tuple[int, ...], like: torch.Tensor
    ) -> torch.Tensor:
        """The buffer of ``key`` (its last two entries are the shape), made on first use."""
        buffer = store.get(key)
        if buffer is None or buffer.device != like.device:
            buffer = torch.empty(key[-2:], dtype=self.dtype, device=like.device)
            store[key] = buffer
        return buffer

    def round_weight(self, W: torch.Tensor) -> None:
        if self.weight.shape != W.shape or self.weight.device != W.device:
            self.weight = torch.empty(W.shape, dtype=self.dtype, device=W.device)
        self.weight.copy_(W)

    def cast(self, x: torch.Tensor, slot: int = 0) -> torch.Tensor:
        """x rounded into the buffer of its shape and ``slot`` (the two operands of one product
        take slots 0 and 1, so that they never share a buffer)."""
        return self._buffer(self.operands, (slot, *x.shape), x).copy_(x)

    def mm(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """a @ b of two low-precision tensors, into the product buffer of its shape."""
        out = self._buffer(self.products, (a.shape[0], b.shape[1]), a)
        return torch.mm(a, b, out=out)


def _matmul_dtype(dtype: torch.dtype | None, W: torch.Tensor) -> torch.dtype | None:
    """``dtype`` when it is a floating type narrower than W's (bfloat16 or float16 for a
    float32 model, float32 too for a float64 one), None for W's own; anything else is refused
    by name."""
    if dtype is None or dtype == W.dtype:
        return None
    if not dtype.is_floating_point or torch.finfo(dtype).bits >= torch.finfo(W.dtype).bits:
        raise ValueError(
            f"matmul_dtype: expected a floating dtype narrower than the model's {W.dtype} "
            f"(torch.bfloat16, torch.float16), got {dtype}"
        )
    return dtype


def _autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The dtype ``torch.autocast`` gives matmuls on ``device`` where it is on, else None."""
    kind = device.type
    return torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else None


@dataclass
class _Workspace:
    """Buffers of one hand-written update (n_pos data rows, n_neg chain rows), kept by the
    objective between steps so that the hot path allocates nothing."""

    key: tuple[Any, ...]
    n_pos: int
    stacked: torch.Tensor  # (n_pos + n_neg, D): [v0; vn]
    negative: torch.Tensor  # stacked[n_pos:], where the negative visible draws land
    hidden: torch.Tensor  # (n_pos + n_neg, H): hidden inputs, p(h | v), then weighted rows
    visible: torch.Tensor  # (n_neg, D): visible inputs, then p(v | h)
    h_draw: torch.Tensor  # (n_neg, H): hidden draws inside the sweeps
    scratch: torch.Tensor  # (n_pos + n_neg, H): softplus of the hidden inputs (loss value)
    softplus: torch.Tensor  # (n_pos + n_neg,): their row sums
    row_terms: torch.Tensor  # (n_pos + n_neg,): b.v_r + softplus row sums
    weights: torch.Tensor  # (n_pos + n_neg,): -1/n_pos (data rows), +1/n_neg (chain rows)
    ones: torch.Tensor  # (n_pos + n_neg,)
    zero: torch.Tensor  # ()
    grad_w: torch.Tensor  # (D, H): the W gradient when it must be formed (centering)
    #: views made once: rows of the data (pos), of the chains (neg) and all rows, each as
    #: (hidden rows, softplus scratch rows, softplus row sums)
    rows: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    positive: torch.Tensor = field(default_factory=lambda: torch.empty(0))  # stacked[:n_pos]
    row_weights: torch.Tensor = field(default_factory=lambda: torch.empty(0))  # weights[:, None]
    stacked_t: torch.Tensor = field(default_factory=lambda: torch.empty(0))  # stacked.T
    hidden_t: torch.Tensor = field(default_factory=lambda: torch.empty(0))  # hidden.T
    #: this update's parameters (``begin``: read from the model once per update) and W^T
    W: torch.Tensor = field(default_factory=lambda: torch.empty(0))
    b: torch.Tensor = field(default_factory=lambda: torch.empty(0))
    c: torch.Tensor = field(default_factory=lambda: torch.empty(0))
    W_t: torch.Tensor = field(default_factory=lambda: torch.empty(0))
    #: the matmuls in a lower precision (``matmul_dtype``), None in the parameters' own
    low: _LowMatmul | None = None

    def begin(self, model: BernoulliRBM, W: torch.Tensor, dtype: torch.dtype | None) -> None:
        """Start an update: the model's parameters (each module attribute read costs a
        microsecond, which a small model's update would pay dozens of times), W^T (the view
        kept while W keeps its storage) and the matmul precision (W rounded once, when lower)."""
        if self.W is not W or self.W_t.data_ptr() != W.data_ptr():
            self.W, self.W_t = W, W.T
        self.b, self.c = model.b, model.c
        dtype = _matmul_dtype(dtype, W)
        if dtype is None:
            self.low = None
            return
        if self.low is None or self.low.dtype != dtype:
            self.low = _LowMatmul(dtype)
        self.low.round_weight(W)

    def hidden_inputs(self, out: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """out = c + v W, in this update's matmul precision."""
        low = self.low
        if low is None:
            return torch.addmm(self.c, v, self.W, out=out)
        return torch.add(self.c, low.mm(low.cast(v), low.weight), out=out)

    def visible_inputs(self, h: torch.Tensor) -> torch.Tensor:
        """``visible`` = b + h W^T, in this update's matmul precision."""
        low = self.low
        if low is None:
            return torch.addmm(self.b, h, self.W_t, out=self.visible)
        return torch.add(self.b, low.mm(low.cast(h), low.weight.T), out=self.visible)

    @staticmethod
    def draw(p: torch.Tensor, out: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """``bernoulli_draw(p, generator, out=out)`` without its checks of ``out`` (the
        workspace's buffers match by construction): u ~ U[0, 1) into ``out``, then u < p."""
        return out.uniform_(generator=generator).lt_(p)

    def outer_into(self, target: torch.Tensor, beta: float, alpha: float) -> torch.Tensor:
        """target <- beta target + alpha stacked^T hidden (the W gradient's matmul), in place;
        beta = 0 overwrites (NaN in target does not survive)."""
        low = self.low
        if low is None:
            return target.addmm_(self.stacked_t, self.hidden, beta=beta, alpha=alpha)
        product = low.mm(low.cast(self.stacked).T, low.cast(self.hidden, 1))
        if beta == 0.0:
            return torch.mul(product, alpha, out=target)
        if beta != 1.0:
            target.mul_(beta)
        return target.add_(product, alpha=alpha)

    @classmethod
    def allocate(cls, key: tuple[Any, ...]) -> _Workspace:
        n_pos, n_neg, d, h, dtype, device = key
        n = n_pos + n_neg
        # one allocation, cut into the buffers (a new objective, e.g. each scikit-learn fit,
        # pays for one call instead of a dozen)
        sizes = [n * d, n * h, n_neg * d, n_neg * h, n * h, n, n, n, n, 1]
        flat = torch.empty(sum(sizes), dtype=dtype, device=device)
        parts_ = iter(flat.split(sizes))

        def empty(*shape: int) -> torch.Tensor:
            return next(parts_).view(shape)

        stacked = empty(n, d)
        hidden, visible, h_draw, scratch = (
            empty(n, h),
            empty(n_neg, d),
            empty(n_neg, h),
            empty(n, h),
        )
        softplus, row_terms, weights, ones, zero = empty(n), empty(n), empty(n), empty(n), empty()
        weights[:n_pos] = -1.0 / n_pos
        weights[n_pos:] = 1.0 / n_neg
        ones.fill_(1.0)
        zero.zero_()
        parts = {"pos": slice(0, n_pos), "neg": slice(n_pos, n), "all": slice(0, n)}
        return cls(
            key=key,
            n_pos=n_pos,
            stacked=stacked,
            negative=stacked[n_pos:],
            hidden=hidden,
            visible=visible,
            h_draw=h_draw,
            scratch=scratch,
            softplus=softplus,
            row_terms=row_terms,
            weights=weights,
            ones=ones,
            zero=zero,
            grad_w=flat[:0],
            rows={k: (hidden[r], scratch[r], softplus[r]) for k, r in parts.items()},
            positive=stacked[:n_pos],
            row_weights=weights[:, None],
            stacked_t=stacked.T,
            hidden_t=hidden.T,
        )


def _sgd_groups(
    optimizer: torch.optim.Optimizer, model: BernoulliRBM
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(W's parameter group, the biases' group) when ``optimizer`` is a ``torch.optim.SGD`` over
    exactly W, b and c with b and c in one group; None otherwise."""
    if type(optimizer) is not torch.optim.SGD:
        return None
    where: dict[int, dict[str, Any]] = {}
    count = 0
    for group in optimizer.param_groups:
        for p in group["params"]:
            where[id(p)] = group
            count += 1
    g_w, g_b, g_c = (where.get(id(p)) for p in (model.W, model.b, model.c))
    if count != 3 or g_w is None or g_b is None or g_b is not g_c:
        return None
    return g_w, g_b


def _sgd_settings(
    g_w: dict[str, Any], g_b: dict[str, Any]
) -> tuple[float, float, float, float] | None:
    """(lr of W, lr of the biases, momentum, weight decay of W) for the update rule of
    ``sgd_update`` (no Nesterov, dampening or maximize, one momentum, no decay on the biases);
    None when the groups ask for more."""
    for group in (g_w, g_b):
        if group["nesterov"] or group["dampening"] or group.get("maximize", False):
            return None
    if g_w["momentum"] != g_b["momentum"] or g_b["weight_decay"]:
        return None
    return float(g_w["lr"]), float(g_b["lr"]), float(g_w["momentum"]), float(g_w["weight_decay"])


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
        chains_start: where the persistent chains start in ``setup``: "base-rate" (each visible
            unit on with its frequency in the data, the model's state knowing nothing) or "data"
            (randomly chosen training rows: the right start when the model already fits the
            data, e.g. an RBM initialized from the one below it in a DBN, whose marginal the
            data were drawn from).
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
        chains_start: Literal["base-rate", "data"] = "base-rate",
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
        if chains_start not in ("base-rate", "data"):
            raise ValueError(f"chains_start: expected 'base-rate' or 'data', got {chains_start!r}")
        self.k = k
        self.method = method
        self.n_chains = n_chains
        self.n_temperatures = n_temperatures if method == "pt" else 1
        self.min_beta = min_beta
        self.centering = centering
        self.offset_rate = offset_rate
        self.init_visible_bias = init_visible_bias
        self.chains_start = chains_start
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
        persistent chains from the data's base-rate model (or training rows, ``chains_start``)
        and the centering offsets at the data mean (visible) and 1/2 (hidden)."""
        self._check_model(model)
        x_train = self.check_data(model, x_train)
        if self.init_visible_bias and hasattr(model, "init_visible_from_data"):
            model.init_visible_from_data(x_train)
        generator = torch.Generator(device=model.W.device).manual_seed(self.seed)
        self._init_state(model, x_train, generator)

    def _init_state(self, model: nn.Module, x: torch.Tensor, generator: torch.Generator) -> None:
        device, dtype = model.W.device, model.W.dtype
        # one pass over the data for the centering offsets and the base-rate chains
        needs_mean = self.centering or (self.method != "cd" and self.chains_start != "data")
        mean = x.mean(0) if needs_mean else None
        if self.centering:
            self.offset_v = mean.to(dtype)
            self.offset_h = torch.full((model.n_hidden,), 0.5, device=device, dtype=dtype)
        if self.method == "cd":
            return
        betas = linear_ladder(1.0, self.min_beta, self.n_temperatures)
        self.betas = betas.to(device=device, dtype=dtype)
        self.swap_rate = torch.zeros(max(self.n_temperatures - 1, 0), device=device, dtype=dtype)
        shape = (self.n_temperatures, self.n_chains, model.n_visible)
        if self.chains_start == "data":
            rows = torch.randint(x.shape[0], shape[:2], generator=generator, device=device)
            v = x[rows.flatten()].reshape(shape).to(dtype)
        elif isinstance(model, BernoulliRBM):
            # base-rate model: each pixel on with its data frequency
            marginal = mean.expand(shape).contiguous()
            v = bernoulli_draw(marginal, generator)
        else:
            v = mean + x.std(0) * torch.randn(
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
    def _sample_v(
        model: nn.Module,
        h: torch.Tensor,
        generator: torch.Generator,
        ws: _Workspace | None = None,
    ) -> torch.Tensor:
        """v ~ p(v | h); with a workspace (BernoulliRBM, n_neg rows) the visible inputs and the
        draws go into its buffers (the draws into the negative rows of ``ws.stacked``)."""
        if isinstance(model, BernoulliRBM):
            if ws is None:
                return bernoulli_draw(torch.addmm(model.b, h, model.W.T).sigmoid_(), generator)
            return ws.draw(ws.visible_inputs(h).sigmoid_(), ws.negative, generator)
        return model.sample_v(h, generator)

    def _sample_h(
        self,
        model: nn.Module,
        v: torch.Tensor,
        generator: torch.Generator,
        ws: _Workspace | None = None,
    ) -> torch.Tensor:
        """h ~ p(h | v) of the negative rows (into ``ws.h_draw`` with a workspace)."""
        if ws is None:
            return bernoulli_draw(torch.sigmoid(model.hidden_logits(v)), generator)
        p = ws.hidden_inputs(ws.rows["neg"][0], v).sigmoid_()
        return ws.draw(p, ws.h_draw, generator)

    def _persistent_visible(
        self,
        model: nn.Module,
        v0: torch.Tensor,
        generator: torch.Generator,
        ws: _Workspace | None = None,
    ) -> torch.Tensor:
        """Advance the persistent chains (pcd: k sweeps h -> v -> h, the last h left to the
        caller; pt: tempered sweeps and swaps) and return the beta = 1 visible states."""
        chains = self._buffers  # chain_v, chain_h (a dict read: a module attribute costs 1 us)
        chain_v = chains["chain_v"]
        if chain_v.numel() == 0:  # setup was not called (e.g. scikit-learn's partial_fit)
            self._init_state(model, v0, generator)
            chain_v = chains["chain_v"]
        if self.method == "pt":
            return self._pt_sweeps(model, generator)
        h = chains["chain_h"][0]
        for _ in range(self.k - 1):
            v = self._sample_v(model, h, generator, ws)
            h = self._sample_h(model, v, generator, ws)
        v = self._sample_v(model, h, generator, ws)
        if ws is not None and chain_v.shape == (1, *v.shape):
            chain_v[0].copy_(v)
        else:
            self.chain_v = v.clone()[None] if ws is not None else v[None]
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
        # under torch.autocast (TrainConfig(precision="bfloat16")) the matmuls take its dtype
        value, grads = self.gradients(model, v0, generator, _autocast_dtype(v0.device))
        loss = inject_gradient(value, [model.W, model.b, model.c], grads)
        return loss, {}

    # ----- hand-written statistics (BernoulliRBM) -----------------------------------------------
    def _workspace(self, W: torch.Tensor, n_pos: int) -> _Workspace:
        """The buffers of one update, reused while the sizes, dtype and device stay the same."""
        n_neg = n_pos if self.method == "cd" else self.n_chains
        key = (n_pos, n_neg, *W.shape, W.dtype, W.device)
        spaces = self.__dict__.get("_ws")
        if spaces is None:
            spaces = {}
            object.__setattr__(self, "_ws", spaces)
        ws = spaces.get(key)
        if ws is None:
            if len(spaces) >= 2:  # the full batches' and a short last batch's, at most
                spaces.pop(next(iter(spaces)))
            ws = spaces[key] = _Workspace.allocate(key)
        return ws

    def _activate(self, ws: _Workspace, rows: str) -> torch.Tensor:
        """Hidden inputs a of ``rows`` ("pos", "neg", "all") -> p(h | v) = sigmoid(a) in place
        (returned); for the loss value, the row sums of softplus(a) = log(1 + e^a) first."""
        a, scratch, sums = ws.rows[rows]
        if self.monitor:
            torch.sum(torch.logaddexp(a, ws.zero, out=scratch), 1, out=sums)
        return a.sigmoid_()

    def _statistics(
        self,
        model: BernoulliRBM,
        v0: torch.Tensor,
        generator: torch.Generator,
        matmul_dtype: torch.dtype | None = None,
    ) -> tuple[torch.Tensor, _Workspace, tuple[torch.Tensor, torch.Tensor] | None]:
        """Both phases into the workspace: ``stacked`` = [v0; vn] (n_pos + n_neg rows) and
        ``hidden`` = [p(h | v0); p(h | vn)] with every row multiplied by its weight w_r
        (-1/n_pos for data, +1/n_neg for chains), so that the loss gradients are

            dloss/dW = stacked^T hidden,  dloss/db = stacked^T w,  dloss/dc = hidden^T 1,

        one matmul and two matvecs. Returns (loss value, workspace, data means (mean v0,
        mean p(h | v0)) for centering, else None). Matmuls: CD-k 2k + 1 (the hidden inputs of
        v0, and per sweep v <- h, h <- v), PCD-k 2k - 1 (the last sweep's h <- v shares one
        product with v0's), each with its bias added by ``addmm`` and written into its buffer;
        with a lower ``matmul_dtype`` the products are rounded operands' (``_LowMatmul``) and
        the rest (biases, activations, draws, statistics) stays in the parameters' dtype."""
        W = model.W
        ws = self._workspace(W, v0.shape[0])
        ws.begin(model, W, matmul_dtype)
        ws.positive.copy_(v0)
        if self.method == "cd":
            ws.hidden_inputs(ws.rows["pos"][0], v0)
            h = ws.draw(self._activate(ws, "pos"), ws.h_draw, generator)
            hidden_neg = ws.rows["neg"][0]
            for sweep in range(self.k):
                v = self._sample_v(model, h, generator, ws)
                ws.hidden_inputs(hidden_neg, v)
                if sweep < self.k - 1:
                    h = ws.draw(hidden_neg.sigmoid_(), ws.h_draw, generator)
            self._activate(ws, "neg")
        else:
            pcd = self.method == "pcd"
            vn = self._persistent_visible(model, v0, generator, ws if pcd else None)
            if not pcd:
                ws.negative.copy_(vn)
            ws.hidden_inputs(ws.hidden, ws.stacked)
            self._activate(ws, "all")
            if pcd:
                chain_h, p_neg = self._buffers["chain_h"], ws.rows["neg"][0]
                if (
                    chain_h.shape == (1, *p_neg.shape)
                    and chain_h.dtype == p_neg.dtype
                    and chain_h.is_contiguous()
                ):
                    ws.draw(p_neg, chain_h[0], generator)
                else:
                    self.chain_h = bernoulli_draw(p_neg, generator)[None]
        means = (v0.mean(0), ws.rows["pos"][0].mean(0)) if self.centering else None
        if self.monitor:
            # loss value: mean F(v0) - mean F(vn) = sum_r w_r (b.v_r + sum_j softplus(a_rj))
            torch.addmv(ws.softplus, ws.stacked, ws.b, out=ws.row_terms)
            value = torch.dot(ws.weights, ws.row_terms)
        else:
            value = ws.zero  # the workspace's 0 (read-only): no allocation per step
        ws.hidden.mul_(ws.row_weights)
        return value, ws, means

    def _center(
        self,
        means: tuple[torch.Tensor, torch.Tensor],
        grad_w: torch.Tensor,
        grad_b: torch.Tensor,
        grad_c: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Move the offsets towards the data means and map the centered gradient to plain
        coordinates (``grad_w`` in place)."""
        mean_v0, mean_h0 = means
        if self.offset_v.numel() == 0:
            self.offset_v = mean_v0.clone()
            self.offset_h = torch.full_like(mean_h0, 0.5)
        self.offset_v.lerp_(mean_v0, self.offset_rate)
        self.offset_h.lerp_(mean_h0, self.offset_rate)
        mu, lam = self.offset_v, self.offset_h
        # centered (ascent form dW' = dW - mu dc^T - db lam^T, then b = b' - W lam and
        # c = c' - W^T mu), written for the loss gradients gW, gb, gc = -(dW, db, dc):
        grad_w.addr_(mu, grad_c, alpha=-1.0).addr_(grad_b, lam, alpha=-1.0)
        grad_b = torch.addmv(grad_b, grad_w, lam, alpha=-1.0)  # gb - gW' lam
        grad_c = torch.addmv(grad_c, grad_w.T, mu, alpha=-1.0)  # gc - gW'^T mu
        return grad_w, grad_b, grad_c

    @torch.no_grad()
    def gradients(
        self,
        model: BernoulliRBM,
        v0: torch.Tensor,
        generator: torch.Generator,
        matmul_dtype: torch.dtype | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(loss value, [dloss/dW, dloss/db, dloss/dc]) for a BernoulliRBM, by hand.

        The loss gradient (negative statistics minus positive ones, each averaged over its own
        rows): the outer products of both phases are one product [v0; vn]^T [-p0 / n_pos;
        pn / n_neg], and for persistent chains, which do not depend on the minibatch, the hidden
        inputs of both phases are one product too (``_statistics``). The gradients returned are
        new tensors (the caller may keep them); ``sgd_update`` skips them altogether.
        ``matmul_dtype``: as in ``sgd_update``."""
        value, ws, means = self._statistics(model, v0, generator, matmul_dtype)
        grad_w = ws.outer_into(torch.empty_like(model.W), 0.0, 1.0)
        grad_b = torch.mv(ws.stacked_t, ws.weights)  # mean vn - mean v0
        grad_c = torch.mv(ws.hidden_t, ws.ones)  # mean p(h | vn) - mean p(h | v0)
        if means is not None:
            grad_w, grad_b, grad_c = self._center(means, grad_w, grad_b, grad_c)
        return value, [grad_w, grad_b, grad_c]

    @torch.no_grad()
    def sgd_update(
        self,
        model: BernoulliRBM,
        v0: torch.Tensor,
        generator: torch.Generator,
        lr: float,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        velocity: list[torch.Tensor] | None = None,
        lr_bias: float | None = None,
        matmul_dtype: torch.dtype | None = None,
    ) -> torch.Tensor:
        """One SGD step of a BernoulliRBM on the minibatch ``v0``, in place; returns the loss
        value (0 with ``monitor=False``).

        The rule of ``torch.optim.SGD`` (dampening 0, weight decay on W only, as
        ``param_groups`` sets it): g_W <- g_W + weight_decay W, u <- momentum u + g,
        theta <- theta - lr u (u = g without momentum). The gradients are never formed on their
        own: the outer-product matmul accumulates straight into W (no momentum:
        W <- (1 - lr wd) W - lr [v0; vn]^T [hidden rows]) or into u (W's velocity), and the bias
        gradients, two matvecs, straight into b and c or their velocities. With centering the
        gradient is formed first (its rank-one corrections need it), then the same rule applies.

        Args:
            lr: learning rate of W (and of the biases unless ``lr_bias``).
            momentum: SGD momentum; ``velocity`` then holds u for (W, b, c), zeros at the start.
            weight_decay: L2 penalty on W.
            velocity: the three momentum buffers (needed when ``momentum`` > 0).
            lr_bias: learning rate of b and c (None: ``lr``).
            matmul_dtype: None (or W's dtype) for the parameters' precision; torch.bfloat16 or
                torch.float16 rounds the matmul operands (W, the states, the weighted hidden
                probabilities) to it, with float32 accumulation inside the products, while the
                parameters, momentum, biases, draws and the loss value stay in W's dtype
                (2-2.6x faster products on CPUs with bfloat16 instructions and on GPUs).
        """
        if not isinstance(model, BernoulliRBM):
            raise TypeError(f"model: sgd_update trains a BernoulliRBM, got {type(model).__name__}")
        if momentum and (velocity is None or len(velocity) != 3):
            raise ValueError("velocity: momentum needs the three buffers (W, b, c)")
        lr_b = lr if lr_bias is None else lr_bias
        value, ws, means = self._statistics(model, v0, generator, matmul_dtype)
        W, b, c = ws.W, ws.b, ws.c
        S_t, Q_t = ws.stacked_t, ws.hidden_t
        if means is not None:  # centering: the gradient itself is needed
            if ws.grad_w.shape != W.shape:
                ws.grad_w = torch.empty_like(W)
            grads = [
                ws.outer_into(ws.grad_w, 0.0, 1.0),
                torch.mv(S_t, ws.weights),
                torch.mv(Q_t, ws.ones),
            ]
            grads = list(self._center(means, *grads))
            if weight_decay:
                grads[0].add_(W, alpha=weight_decay)
            if momentum:
                assert velocity is not None
                torch._foreach_mul_(velocity, momentum)
                torch._foreach_add_(velocity, grads)
                grads = velocity
            W.add_(grads[0], alpha=-lr)
            torch._foreach_add_([b, c], grads[1:], alpha=-lr_b)
            return value
        if momentum:
            assert velocity is not None
            u_w, u_b, u_c = velocity
            ws.outer_into(u_w, momentum, 1.0)
            if weight_decay:
                u_w.add_(W, alpha=weight_decay)
            u_b.addmv_(S_t, ws.weights, beta=momentum)
            u_c.addmv_(Q_t, ws.ones, beta=momentum)
            W.add_(u_w, alpha=-lr)
            torch._foreach_add_([b, c], [u_b, u_c], alpha=-lr_b)
        else:
            ws.outer_into(W, 1.0 - lr * weight_decay, -lr)
            b.addmv_(S_t, ws.weights, alpha=-lr_b)
            c.addmv_(Q_t, ws.ones, alpha=-lr_b)
        return value

    def sgd_step(
        self,
        model: nn.Module,
        batch: torch.Tensor,
        generator: torch.Generator,
        optimizer: torch.optim.Optimizer,
    ) -> tuple[torch.Tensor, dict[str, float]] | None:
        """The training loop's fused update: ``optimizer.step()`` of a ``torch.optim.SGD`` over
        ``param_groups`` done by ``sgd_update``, its momentum buffers kept in the optimizer's
        state (so checkpoints and resumes see them as usual). Returns (loss value, metrics), or
        None, before touching anything, when the generic path is needed (the autograd
        gradient, another model, or SGD settings the rule above does not cover). Under
        ``torch.autocast`` (``TrainConfig(precision="bfloat16")``) the matmuls take its dtype
        (``matmul_dtype``); nothing else is autocast."""
        if self.gradient != "manual" or not isinstance(model, BernoulliRBM):
            return None
        if batch.dim() != 2 or batch.shape[1] != model.n_visible:
            return None  # ``loss`` names the problem
        # which groups hold W and the biases is found once per optimizer (a weak reference);
        # the settings are read every step (the schedule changes them)
        cached = self.__dict__.get("_sgd_groups")
        if cached is None or cached[0]() is not optimizer or cached[1]() is not model:
            groups = _sgd_groups(optimizer, model)
            entry = (weakref.ref(optimizer), weakref.ref(model), groups)
            object.__setattr__(self, "_sgd_groups", entry)
        else:
            groups = cached[2]
        settings = None if groups is None else _sgd_settings(*groups)
        if settings is None:
            return None
        lr, lr_bias, momentum, weight_decay = settings
        velocity = None
        if momentum:
            params = (model.W, model.b, model.c)
            for p in params:
                state = optimizer.state[p]
                if state.get("momentum_buffer") is None:
                    state["momentum_buffer"] = torch.zeros_like(
                        p, memory_format=torch.contiguous_format
                    )
            velocity = [optimizer.state[p]["momentum_buffer"] for p in params]
        low = _autocast_dtype(batch.device)
        if low is None:
            value = self.sgd_update(
                model, batch, generator, lr, momentum, weight_decay, velocity, lr_bias
            )
        else:  # only the products take autocast's dtype, by hand
            with torch.autocast(batch.device.type, enabled=False):
                value = self.sgd_update(
                    model, batch, generator, lr, momentum, weight_decay, velocity, lr_bias, low
                )
        return value, {}

    def __getstate__(self) -> dict[str, Any]:
        """Pickles and deep copies leave the scratch buffers out (rebuilt at the next step)."""
        state = self.__dict__.copy()
        state.pop("_ws", None)
        state.pop("_sgd_groups", None)
        return state

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
