"""A drop-in replacement for ``sklearn.neural_network.BernoulliRBM``, backed by ebmlab.

Same constructor parameters (``n_components``, ``learning_rate``, ``batch_size``, ``n_iter``,
``verbose``, ``random_state``), same fitted attributes (``components_``, ``intercept_hidden_``,
``intercept_visible_``, ``h_samples_``) and methods (``fit``, ``partial_fit``, ``transform``,
``score_samples``, ``gibbs``, ``get_feature_names_out``), so it works in a ``Pipeline``
unchanged, and it passes scikit-learn's ``check_estimator`` as it is. Added: ``method`` (CD, PCD,
PT), ``k``, ``momentum``, ``weight_decay``, ``centering``, ``n_chains``, ``init_visible_bias``,
``dtype`` and ``strict_range``. Differences from scikit-learn, each deliberate:

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

Inputs are treated as probabilities in [0, 1], as scikit-learn treats them: grey levels are
mean-field visible states, and values outside [0, 1] are not rejected but enter the same formulas
(transform sigmoid(X W^T + c), the positive statistics X^T p(h | X)) as they are, so
``transform`` equals scikit-learn's for any input. Where the data set a starting point (visible
biases from the marginals, persistent chains from the base-rate model, centering offsets) such
values count as the nearest end, 0 or 1, as a Bernoulli draw counts them. ``strict_range=True``
raises a ValueError on them instead. Input is checked by scikit-learn's ``validate_data`` (NaN,
infinity, 1-D, complex and empty input raise its errors; ``n_features_in_`` and
``feature_names_in_`` are set), parameters by scikit-learn's parameter constraints; sparse input
is densified.
"""

from __future__ import annotations

import time
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from .models.rbm import BernoulliRBM as _TorchRBM
from .objectives.contrastive import ContrastiveDivergence
from .samplers import bernoulli_draw as bernoulli

_DTYPES = {"float32": torch.float32, "float64": torch.float64}

#: scikit-learn's estimator checks that ``strict_range=True`` fails, each because the check fits
#: or transforms non-negative random data with values above 1, which that mode refuses (the
#: 1-sample and 1-feature checks look for a message about the shape, but the range error comes
#: first). The default estimator fails none.
_STRICT_RANGE_FAILURES = (
    "check_dict_unchanged",
    "check_dont_overwrite_parameters",
    "check_estimators_dtypes",
    "check_estimators_fit_returns_self",
    "check_estimators_overwrite_params",
    "check_estimators_pickle",
    "check_f_contiguous_array_estimator",
    "check_fit2d_1feature",
    "check_fit2d_1sample",
    "check_fit2d_predict1d",
    "check_fit_check_is_fitted",
    "check_fit_idempotent",
    "check_methods_sample_order_invariance",
    "check_methods_subset_invariance",
    "check_n_features_in",
    "check_n_features_in_after_fitting",
    "check_pipeline_consistency",
    "check_readonly_memmap_input",
    "check_transformer_data_not_an_array",
    "check_transformer_general",
    "check_transformer_preserve_dtypes",
)


class BernoulliRBM(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Bernoulli restricted Boltzmann machine, scikit-learn interface.

    Parameters:
        n_components: number of hidden units.
        learning_rate: SGD learning rate on the minibatch-mean gradient (scikit-learn's scale).
        batch_size: examples per minibatch.
        n_iter: passes over the training data (0: ``fit`` only initializes, as in scikit-learn).
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
        strict_range: raise a ValueError on input values outside [0, 1] (in ``fit``,
            ``partial_fit`` and every method that takes ``X``) instead of using them as
            scikit-learn does. Off by default; scikit-learn's estimator checks feed non-negative
            values above 1, which this mode refuses (see ``expected_failed_checks``).
    """

    #: what each parameter may be, checked by ``fit`` and ``partial_fit`` (scikit-learn's
    #: parameter validation: the first six as in ``sklearn.neural_network.BernoulliRBM``)
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "n_iter": [Interval(Integral, 0, None, closed="left")],
        "verbose": ["verbose"],
        "random_state": ["random_state"],
        "method": [StrOptions({"cd", "pcd", "pt"})],
        "k": [Interval(Integral, 1, None, closed="left")],
        "momentum": [Interval(Real, 0, 1, closed="left")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "centering": ["boolean"],
        "n_chains": [Interval(Integral, 1, None, closed="left"), None],
        "init_visible_bias": ["boolean"],
        "dtype": [StrOptions(set(_DTYPES))],
        "strict_range": ["boolean"],
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
        strict_range: bool = False,
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
        self.strict_range = strict_range

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        # scikit-learn's estimator takes any real input; the strict mode refuses negative values
        tags.input_tags.positive_only = bool(self.strict_range)
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    @property
    def _n_features_out(self) -> int:
        """Output features of ``transform`` (``get_feature_names_out``: bernoullirbm0, ...)."""
        check_is_fitted(self, "rbm_")
        return int(self.rbm_.n_hidden)

    # ----- validation ---------------------------------------------------------------------------
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
        return self._check_range(X) if self.strict_range else X

    @staticmethod
    def _check_range(X: np.ndarray) -> np.ndarray:
        """Raise unless every value is in [0, 1] (``strict_range=True``)."""
        if X.size and X.min() < 0:
            raise ValueError(
                f"Negative values in data passed to BernoulliRBM (X): a Bernoulli RBM needs "
                f"values in [0, 1], found a minimum of {X.min():.4g}"
            )
        if X.size and X.max() > 1:
            raise ValueError(
                f"X: a Bernoulli RBM needs values in [0, 1] (probabilities or binary), found a "
                f"maximum of {X.max():.4g}; rescale, e.g. with MinMaxScaler, or pass "
                f"strict_range=False to use such values as scikit-learn does"
            )
        return X

    @staticmethod
    def _unit_interval(X: torch.Tensor) -> torch.Tensor:
        """``X`` with values outside [0, 1] moved to the nearest end (a copy only if needed):
        what the data-dependent starting point (marginals, chains, offsets) is computed from."""
        if X.numel() == 0:
            return X
        low, high = torch.aminmax(X)
        return X if low >= 0 and high <= 1 else X.clamp(0, 1)

    def _tensor(self, X: np.ndarray) -> torch.Tensor:
        dtype = np.dtype(self.dtype)
        if X.flags.writeable:
            return torch.from_numpy(np.ascontiguousarray(X, dtype=dtype))
        # a read-only array (e.g. a memory map) is copied: torch does not wrap read-only memory
        return torch.from_numpy(np.array(X, dtype=dtype, order="C"))

    @staticmethod
    def _out(t: torch.Tensor, like: np.ndarray) -> np.ndarray:
        dtype = like.dtype if like.dtype in (np.float32, np.float64) else np.float64
        return t.detach().cpu().numpy().astype(dtype, copy=False)

    # ----- fitting ------------------------------------------------------------------------------
    def _initialize(self, X: torch.Tensor, rng: np.random.RandomState) -> None:
        """Weights, objective and momentum buffers; the objective's ``setup`` sets the visible
        biases, the persistent chains and the centering offsets from ``X`` (values in [0, 1])."""
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
        self.objective_.setup(self.rbm_, X)
        # momentum buffers of the update (the objective's ``sgd_update``: no autograd, no
        # optimizer object)
        self.velocity_ = [torch.zeros_like(p) for p in self._params()]

    def _params(self) -> list[torch.Tensor]:
        return [self.rbm_.W.data, self.rbm_.b.data, self.rbm_.c.data]

    @torch.no_grad()
    def _update(self, batch: torch.Tensor) -> None:
        # the objective's fused SGD step: the outer-product matmul accumulates into the weights
        # (or their velocity) directly, the gradients are never formed on their own
        self.objective_.sgd_update(
            self.rbm_,
            batch,
            self.generator_,
            float(self.learning_rate),
            float(self.momentum),
            float(self.weight_decay),
            self.velocity_ if self.momentum else None,
        )

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any = None) -> BernoulliRBM:
        """Fit the model to ``X`` (n_samples, n_features), probabilities in [0, 1]."""
        X_np = self._validate(X, reset=True)
        X_t = self._tensor(X_np)
        rng = check_random_state(self.random_state)
        self._initialize(self._unit_interval(X_t), rng)
        n = X_t.shape[0]
        batch = int(self.batch_size)
        shuffle = torch.Generator().manual_seed(int(rng.randint(np.iinfo(np.int32).max)))
        shuffled = torch.empty_like(X_t)
        for iteration in range(1, int(self.n_iter) + 1):
            start = time.perf_counter()
            # one gather per epoch (index_select: a third of the time of advanced indexing)
            # into one buffer per fit (a fresh one of this size is new memory from the system,
            # page faults and all, each epoch); batches are views
            torch.index_select(X_t, 0, torch.randperm(n, generator=shuffle), out=shuffled)
            for i in range(0, n, batch):
                self._update(shuffled[i : i + batch])
            if self.verbose:
                pll = float(self.score_samples(X_np).mean())
                print(
                    f"[BernoulliRBM] Iteration {iteration}, pseudo-likelihood = {pll:.2f}, "
                    f"time = {time.perf_counter() - start:.2f}s"
                )
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X: Any, y: Any = None) -> BernoulliRBM:
        """One update with ``X`` as the minibatch (as scikit-learn does)."""
        first = not hasattr(self, "rbm_")
        X_np = self._validate(X, reset=first)
        X_t = self._tensor(X_np)
        if first:
            self.random_state_ = check_random_state(self.random_state)
            self._initialize(self._unit_interval(X_t), self.random_state_)
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


def expected_failed_checks(estimator: BernoulliRBM) -> dict[str, str]:
    """The scikit-learn estimator checks ``estimator`` is expected to fail, each with its reason:
    the ``expected_failed_checks`` argument of ``sklearn.utils.estimator_checks.check_estimator``
    (pass ``expected_failed_checks(estimator)``) and ``parametrize_with_checks`` (pass the
    function). Empty for the default estimator; with ``strict_range=True`` the checks that feed
    values above 1."""
    if not estimator.strict_range:
        return {}
    reason = (
        "strict_range=True rejects input values above 1, and this check fits or transforms "
        "non-negative random data that has them"
    )
    return dict.fromkeys(_STRICT_RANGE_FAILURES, reason)
