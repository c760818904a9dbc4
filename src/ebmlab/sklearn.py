"""A drop-in replacement for ``sklearn.neural_network.BernoulliRBM``, backed by ebmlab.

Same constructor parameters (``n_components``, ``learning_rate``, ``batch_size``, ``n_iter``,
``verbose``, ``random_state``), same fitted attributes (``components_``, ``intercept_hidden_``,
``intercept_visible_``, ``h_samples_``) and methods (``fit``, ``partial_fit``, ``transform``,
``score_samples``, ``gibbs``), so it works in a ``Pipeline`` unchanged. Added: ``method`` (CD,
PCD, PT), ``k``, ``momentum``, ``weight_decay``, ``centering``, ``n_chains``, ``init_visible_bias``
and ``dtype``. Differences from scikit-learn, each deliberate:

* The negative statistics of the persistent chains are averaged over the chains. scikit-learn
  divides them by the size of the current minibatch, so a short last minibatch takes an
  oversized step every epoch (13x on digits with batch_size=100).
* ``score_samples`` is the exact pseudo-log-likelihood sum_i log p(v_i | v_-i) (all features),
  not a one-random-feature estimate times n_features: it is deterministic and has no variance.
  ``pseudo_log_likelihood(X, per="feature")`` gives it per feature.
* Minibatches are reshuffled every iteration (scikit-learn cycles through fixed slices).
* The visible biases start from the data marginals (``init_visible_bias=True``; Hinton's guide).
* Training runs in float32 by default (``dtype="float64"`` for double precision); outputs keep
  the input's float dtype.

Inputs are probabilities in [0, 1] (as in scikit-learn, grey levels are used as mean-field
visible states); values outside [0, 1] raise a ValueError. Sparse input is densified.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from .models.rbm import BernoulliRBM as _TorchRBM
from .objectives.contrastive import ContrastiveDivergence
from .samplers import bernoulli_draw as bernoulli
from .validation import Constraint, Integral, OneOf, Real, check_params

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


class BernoulliRBM(TransformerMixin, BaseEstimator):
    """Bernoulli restricted Boltzmann machine, scikit-learn interface.

    Parameters:
        n_components: number of hidden units.
        learning_rate: SGD learning rate on the minibatch-mean gradient (scikit-learn's scale).
        batch_size: examples per minibatch.
        n_iter: passes over the training data.
        verbose: print the mean pseudo-log-likelihood after every iteration.
        random_state: int, RandomState or None; seeds weights, shuffling and sampling.
        method: "pcd" (scikit-learn's SML), "cd" or "pt".
        k: Gibbs sweeps per update.
        momentum: SGD momentum.
        weight_decay: L2 penalty on the weights (not the biases).
        centering: centered gradient (Melchior et al. 2016).
        n_chains: persistent chains (None: batch_size, like scikit-learn's h_samples_).
        init_visible_bias: start the visible biases at the logit of the data marginals.
        dtype: "float32" or "float64" computation.
    """

    #: what each parameter may be, checked when fitting (scikit-learn sets parameters freely)
    _constraints: ClassVar[dict[str, Constraint]] = {
        "n_components": Integral(1),
        "learning_rate": Real(0, closed="neither"),
        "batch_size": Integral(1),
        "n_iter": Integral(1),
        "method": OneOf("cd", "pcd", "pt"),
        "k": Integral(1),
        "momentum": Real(0, 1, closed="left"),
        "weight_decay": Real(0),
        "n_chains": Integral(1) | None,
        "dtype": OneOf(*_DTYPES),
    }

    def __init__(
        self,
        n_components: int = 256,
        *,
        learning_rate: float = 0.1,
        batch_size: int = 10,
        n_iter: int = 10,
        verbose: int = 0,
        random_state: Any = None,
        method: str = "pcd",
        k: int = 1,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        centering: bool = False,
        n_chains: int | None = None,
        init_visible_bias: bool = True,
        dtype: str = "float32",
    ) -> None:
        self.n_components = n_components
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.n_iter = n_iter
        self.verbose = verbose
        self.random_state = random_state
        self.method = method
        self.k = k
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.centering = centering
        self.n_chains = n_chains
        self.init_visible_bias = init_visible_bias
        self.dtype = dtype

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.input_tags.positive_only = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    # ----- validation ---------------------------------------------------------------------------
    def _check_params(self) -> None:
        check_params(self._constraints, self.get_params(deep=False))

    def _validate(self, X: Any, reset: bool) -> np.ndarray:
        X = validate_data(
            self,
            X,
            reset=reset,
            accept_sparse=("csr", "csc", "coo"),
            dtype=(np.float64, np.float32),
        )
        if hasattr(X, "toarray"):
            X = X.toarray()
        return self._check_range(X)

    def _check_range(self, X: np.ndarray) -> np.ndarray:
        """Raise unless every value is in [0, 1]."""
        if X.size and X.min() < 0:
            raise ValueError(
                f"Negative values in data passed to BernoulliRBM (X): a Bernoulli RBM needs "
                f"values in [0, 1], found a minimum of {X.min():.4g}"
            )
        if X.size and X.max() > 1:
            raise ValueError(
                f"X: a Bernoulli RBM needs values in [0, 1] (probabilities or binary), found a "
                f"maximum of {X.max():.4g}; rescale, e.g. with MinMaxScaler"
            )
        return X

    def _tensor(self, X: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(X)).to(_DTYPES[self.dtype])

    @staticmethod
    def _out(t: torch.Tensor, like: np.ndarray) -> np.ndarray:
        dtype = like.dtype if like.dtype in (np.float32, np.float64) else np.float64
        return t.detach().cpu().numpy().astype(dtype, copy=False)

    # ----- fitting ------------------------------------------------------------------------------
    def _initialize(self, X: torch.Tensor, rng: np.random.RandomState) -> None:
        seed = int(rng.randint(np.iinfo(np.int32).max))
        self.generator_ = torch.Generator().manual_seed(seed)
        self.rbm_ = _TorchRBM(X.shape[1], int(self.n_components), seed=seed).to(X.dtype)
        self.objective_ = ContrastiveDivergence(
            k=int(self.k),
            method=self.method,
            n_chains=int(self.n_chains or self.batch_size),
            centering=self.centering,
            init_visible_bias=self.init_visible_bias,
            binary_data=False,
            monitor=False,  # fit() never reads the loss value: compute only the gradient
            seed=seed,
        )
        if self.init_visible_bias:
            self.rbm_.init_visible_from_data(X)
        # momentum buffers of the update (the estimator applies its own SGD step: no autograd,
        # no optimizer object, three fused tensor-list operations per minibatch)
        self.velocity_ = [torch.zeros_like(p) for p in self._params()]

    def _params(self) -> list[torch.Tensor]:
        return [self.rbm_.W.data, self.rbm_.b.data, self.rbm_.c.data]

    @torch.no_grad()
    def _update(self, batch: torch.Tensor) -> None:
        _, grads = self.objective_.gradients(self.rbm_, batch, self.generator_)
        params = self._params()
        if self.weight_decay:
            grads[0].add_(params[0], alpha=float(self.weight_decay))
        if self.momentum:
            torch._foreach_mul_(self.velocity_, float(self.momentum))
            torch._foreach_add_(self.velocity_, grads)
            grads = self.velocity_
        torch._foreach_add_(params, grads, alpha=-float(self.learning_rate))

    def fit(self, X: Any, y: Any = None) -> BernoulliRBM:
        """Fit the model to ``X`` (n_samples, n_features) with values in [0, 1]."""
        self._check_params()
        X_np = self._validate(X, reset=True)
        X_t = self._tensor(X_np)
        rng = check_random_state(self.random_state)
        self._initialize(X_t, rng)
        self.objective_.setup(self.rbm_, X_t)
        n = X_t.shape[0]
        batch = int(self.batch_size)
        shuffle = torch.Generator().manual_seed(int(rng.randint(np.iinfo(np.int32).max)))
        for iteration in range(1, int(self.n_iter) + 1):
            start = time.perf_counter()
            shuffled = X_t[torch.randperm(n, generator=shuffle)]  # one gather; batches are views
            for i in range(0, n, batch):
                self._update(shuffled[i : i + batch])
            if self.verbose:
                pll = float(self.score_samples(X_np).mean())
                print(
                    f"[BernoulliRBM] Iteration {iteration}, pseudo-likelihood = {pll:.2f}, "
                    f"time = {time.perf_counter() - start:.2f}s"
                )
        return self

    def partial_fit(self, X: Any, y: Any = None) -> BernoulliRBM:
        """One update with ``X`` as the minibatch (as scikit-learn does)."""
        self._check_params()
        first = not hasattr(self, "rbm_")
        X_np = self._validate(X, reset=first)
        X_t = self._tensor(X_np)
        if first:
            self.random_state_ = check_random_state(self.random_state)
            self._initialize(X_t, self.random_state_)
        self._update(X_t)
        return self

    # ----- inference ----------------------------------------------------------------------------
    def _input(self, X: Any) -> tuple[np.ndarray, torch.Tensor]:
        check_is_fitted(self, "rbm_")
        X_np = self._validate(X, reset=False)
        return X_np, self._tensor(X_np)

    @torch.no_grad()
    def transform(self, X: Any) -> np.ndarray:
        """p(h = 1 | v) for each row: shape (n_samples, n_components)."""
        X_np, X_t = self._input(X)
        return self._out(self.rbm_.p_h_given_v(X_t), X_np)

    @torch.no_grad()
    def score_samples(self, X: Any) -> np.ndarray:
        """Exact pseudo-log-likelihood of each row, summed over features (nats).
        Grey levels are scored after thresholding at 0.5."""
        X_np, X_t = self._input(X)
        return self._out(self.rbm_.pseudo_log_likelihood((X_t > 0.5).to(X_t.dtype)), X_np)

    @torch.no_grad()
    def pseudo_log_likelihood(self, X: Any, per: str = "example") -> np.ndarray:
        """``score_samples`` per example (``per="example"``) or per feature (``"feature"``)."""
        X_np, X_t = self._input(X)
        binary = (X_t > 0.5).to(X_t.dtype)
        return self._out(self.rbm_.pseudo_log_likelihood(binary, per=per), X_np)

    @torch.no_grad()
    def gibbs(self, v: Any) -> np.ndarray:
        """One Gibbs step v -> h -> v'; returns the sampled visible states (0./1.)."""
        v_np, v_t = self._input(v)
        h = bernoulli(self.rbm_.p_h_given_v(v_t), self.generator_)
        return self._out(bernoulli(self.rbm_.p_v_given_h(h), self.generator_), v_np)

    # ----- scikit-learn's fitted attributes -----------------------------------------------------
    @property
    def components_(self) -> np.ndarray:
        """Weights, shape (n_components, n_features)."""
        check_is_fitted(self, "rbm_")
        return self.rbm_.W.detach().T.numpy().copy()

    @components_.setter
    def components_(self, value: np.ndarray) -> None:
        with torch.no_grad():
            self.rbm_.W.copy_(torch.as_tensor(np.asarray(value).T))

    @property
    def intercept_hidden_(self) -> np.ndarray:
        check_is_fitted(self, "rbm_")
        return self.rbm_.c.detach().numpy().copy()

    @property
    def intercept_visible_(self) -> np.ndarray:
        check_is_fitted(self, "rbm_")
        return self.rbm_.b.detach().numpy().copy()

    @property
    def h_samples_(self) -> np.ndarray:
        """Hidden states of the persistent chains, shape (n_chains, n_components)."""
        check_is_fitted(self, "rbm_")
        chains = self.objective_.chain_h
        return chains[0].numpy().copy() if chains.numel() else np.zeros((0, self.n_components))

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if "generator_" in state:
            state["generator_"] = state["generator_"].get_state()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "generator_" in state:
            generator = torch.Generator()
            generator.set_state(state["generator_"])
            state["generator_"] = generator
        self.__dict__.update(state)
