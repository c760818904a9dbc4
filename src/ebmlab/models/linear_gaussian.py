"""Linear-Gaussian latent-variable models: PCA, probabilistic PCA and factor analysis.

PPCA and FA explain x in R^D by K < D latent factors (lecture 002, "Deep Neural Generative
Models II"):

    z ~ N(0, I_K),    x = W z + mu + eps,    eps ~ N(0, Psi),

with Psi = sigma^2 I for probabilistic PCA (Tipping & Bishop 1999) and Psi = diag(psi_1..psi_D)
for factor analysis (Rubin & Thayer 1982; Ghahramani & Hinton 1996). The marginal is Gaussian,
x ~ N(mu, C) with C = W W^T + Psi, so the log-likelihood is exact. PCA is the sigma^2 -> 0 limit
of PPCA: a projection onto the principal subspace, with no density of its own (``PCA`` below);
PPCA carries the density.

Everything that touches C goes through the K x K matrix M = I_K + W^T Psi^{-1} W:

    C^{-1} = Psi^{-1} - Psi^{-1} W M^{-1} W^T Psi^{-1}     (Woodbury identity)
    log|C| = log|M| + sum_i log psi_i                      (matrix determinant lemma)
    z | x  ~ N(M^{-1} W^T Psi^{-1} (x - mu), M^{-1})        (posterior of the factors)

so a log density costs O(D K) per example instead of O(D^2), and fitting needs no D x D inverse.
These computations run in float64 whatever the parameters' dtype.

Fitting uses only the sample mean m and the (maximum-likelihood, 1/N) covariance S, because the
mean log-likelihood of N examples is -1/2 [D log 2 pi + log|C| + tr(C^{-1} S) + (m - mu)^T
C^{-1} (m - mu)]:

* PPCA, closed form (Tipping & Bishop 1999, eqs. 7-8): with the eigenvalues l_1 >= ... >= l_D of S
  and eigenvectors U_K of the first K, sigma^2 = mean(l_{K+1}, ..., l_D) and
  W = U_K (L_K - sigma^2 I)^{1/2} (up to a rotation of the factors).
* EM (Rubin & Thayer 1982; Ghahramani & Hinton 1996; for PPCA Tipping & Bishop 1999, eqs. 27-28):
  with beta = M^{-1} W^T Psi^{-1},
      E-step:  E[z z^T] summed over the data / N = M^{-1} + beta S beta^T
      M-step:  W <- S beta^T (M^{-1} + beta S beta^T)^{-1},
               Psi <- diag(S - W_new beta S)        (FA), or its mean times I (PPCA).
  The log-likelihood never decreases.

References: M. E. Tipping & C. M. Bishop, "Probabilistic principal component analysis", JRSS B 61
(1999); D. B. Rubin & D. T. Thayer, "EM algorithms for ML factor analysis", Psychometrika 47
(1982); Z. Ghahramani & G. E. Hinton, "The EM algorithm for mixtures of factor analyzers",
CRG-TR-96-1 (1996); G. E. Hinton & R. R. Salakhutdinov, "Reducing the dimensionality of data with
neural networks", Science 313 (2006) (PCA reconstruction errors on MNIST).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..validation import (
    Boolean,
    Integral,
    Real,
    as_generator,
    as_tensor,
    check_choice,
    check_in_range,
    check_nonempty,
    check_positive,
    check_positive_int,
    validate,
)
from .base import Model

#: Rows per chunk when accumulating moments: bounds the float64 copy of the data in memory.
_CHUNK = 8192


class ConvergenceWarning(UserWarning):
    """EM stopped at ``max_iter`` before the log-likelihood gain fell below ``tol``."""


@dataclass
class FitResult:
    """How a fit went: ``log_likelihood`` is the mean training log-likelihood per example after
    each EM iteration (one value for a closed-form fit)."""

    method: str
    n_iter: int
    converged: bool
    seconds: float
    log_likelihood: list[float] = field(default_factory=list)


# ----- sufficient statistics ---------------------------------------------------------------------
def moments(x: torch.Tensor, name: str = "x") -> tuple[torch.Tensor, torch.Tensor]:
    """Sample mean (D,) and maximum-likelihood covariance S = (1/N) sum (x - m)(x - m)^T (D, D),
    both float64, accumulated in chunks so that a float32 data set is never copied whole."""
    x = as_tensor(x, name, dim=2)
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"{name}: expected at least 2 examples to estimate a covariance, got {n}")
    mean = sum(c.double().sum(0) for c in x.split(_CHUNK)) / n
    cov = torch.zeros(x.shape[1], x.shape[1], dtype=torch.float64, device=x.device)
    for chunk in x.split(_CHUNK):
        centered = chunk.double() - mean
        cov.addmm_(centered.T, centered)
    return mean, cov / n


def _check_components(n_visible: int, n_components: int, *, strict: bool) -> None:
    check_positive_int(n_visible, "n_visible")
    bound = "< n_visible" if strict else "<= n_visible"
    described = f"an integer with 1 <= n_components {bound} = {n_visible}"
    upper = n_visible - 1 if strict else n_visible
    Integral(1, upper, description=described).check(n_components, "n_components")


def _top_eigenpairs(s: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All eigenvalues of the symmetric ``s`` in decreasing order, and the first ``k``
    eigenvectors as columns with a fixed sign (largest-magnitude entry positive)."""
    values, vectors = torch.linalg.eigh(s)
    values, vectors = values.flip(0), vectors.flip(1)[:, :k]
    pivot = vectors.abs().argmax(0)
    signs = torch.sign(vectors[pivot, torch.arange(k, device=s.device)])
    return values, vectors * signs


def _check_moments(
    model: nn.Module, mean: torch.Tensor, covariance: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    d = model.n_visible
    mean = as_tensor(mean, "mean", dim=1, n_features=d, dtype=torch.float64)
    covariance = as_tensor(covariance, "covariance", dim=2, n_features=d, dtype=torch.float64)
    if covariance.shape[0] != d:
        raise ValueError(f"covariance: expected shape ({d}, {d}), got {tuple(covariance.shape)}")
    device = model.mean.device
    return mean.to(device), (0.5 * (covariance + covariance.T)).to(device)


# ----- PCA ---------------------------------------------------------------------------------------
class PCA(Model):
    """Principal component analysis: the projection onto the K directions of largest variance.

    Buffers: ``mean`` (D,), ``components`` (K, D) with orthonormal rows, ``explained_variance``
    (K,) and ``total_variance`` (). Variances use the unbiased 1/(N-1) normalization, as
    scikit-learn's ``PCA`` does. PCA defines no density: use ``ProbabilisticPCA`` for one.
    """

    def __init__(self, n_visible: int, n_components: int) -> None:
        super().__init__()
        _check_components(n_visible, n_components, strict=False)
        self.n_visible, self.n_components = n_visible, n_components
        self.register_buffer("mean", torch.zeros(n_visible))
        self.register_buffer("components", torch.eye(n_components, n_visible))
        self.register_buffer("explained_variance", torch.zeros(n_components))
        self.register_buffer("total_variance", torch.zeros(()))

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> PCA:
        """Eigendecomposition of the sample covariance of ``x`` (N, D), in float64."""
        x = as_tensor(x, "x", dim=2, n_features=self.n_visible, device=self.mean.device)
        n = x.shape[0]
        mean, cov = moments(x)
        values, vectors = _top_eigenpairs(cov, self.n_components)
        unbiased = n / (n - 1)
        self.mean.copy_(mean)
        self.components.copy_(vectors.T)
        # eigenvalues of a PSD matrix come out of eigh as tiny negatives when they are 0
        self.explained_variance.copy_(values[: self.n_components].clamp(min=0) * unbiased)
        self.total_variance.copy_(cov.trace() * unbiased)
        return self

    @property
    def explained_variance_ratio(self) -> torch.Tensor:
        """Fraction of the total variance along each component, (K,)."""
        return self.explained_variance / self.total_variance

    def _check(self, x: torch.Tensor, name: str = "x") -> torch.Tensor:
        return as_tensor(
            x,
            name,
            dim=2,
            n_features=self.n_visible,
            device=self.mean.device,
            dtype=self.mean.dtype,
        )

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """Coordinates of ``x`` (N, D) along the components, (N, K)."""
        return (self._check(x) - self.mean) @ self.components.T

    def inverse_transform(self, z: torch.Tensor) -> torch.Tensor:
        """The points of the principal subspace with coordinates ``z`` (N, K), (N, D)."""
        z = as_tensor(
            z,
            "z",
            dim=2,
            n_features=self.n_components,
            device=self.mean.device,
            dtype=self.mean.dtype,
        )
        return z @ self.components + self.mean

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Orthogonal projection of ``x`` onto the principal subspace (the best rank-K
        reconstruction in squared error)."""
        return self.inverse_transform(self.transform(x))

    def reconstruction_error(self, x: torch.Tensor) -> torch.Tensor:
        """Squared error summed over the D pixels, per example (N,): the quantity of Hinton &
        Salakhutdinov (2006), where PCA with 30 components gives 13.87 on the MNIST test set."""
        x = self._check(x)
        return ((x - self.reconstruct(x)) ** 2).sum(-1)


# ----- the linear-Gaussian density shared by PPCA and FA -----------------------------------------
class LinearGaussian(Model):
    """x ~ N(mean, W W^T + Psi): the density shared by ``ProbabilisticPCA`` (``isotropic``
    noise, one variance) and ``FactorAnalysis`` (one noise variance per dimension).

    Parameters: ``mean`` (D,), ``W`` (D, K), ``log_noise`` ((1,) isotropic, else (D,)), the log of
    the noise variances. Before ``fit`` the model is N(0, I). ``min_noise`` is the floor that
    fitting puts on the noise variances.
    """

    likelihood_kind = "exact"

    @validate(isotropic=Boolean(), min_noise=Real(0, closed="neither"))
    def __init__(
        self, n_visible: int, n_components: int, isotropic: bool = False, min_noise: float = 1e-6
    ) -> None:
        super().__init__()
        _check_components(n_visible, n_components, strict=True)
        self.n_visible, self.n_components = n_visible, n_components
        self.isotropic, self.min_noise = bool(isotropic), float(min_noise)
        self.mean = nn.Parameter(torch.zeros(n_visible))
        self.W = nn.Parameter(torch.zeros(n_visible, n_components))
        self.log_noise = nn.Parameter(torch.zeros(1 if self.isotropic else n_visible))
        self.fit_result: FitResult | None = None

    # -- the Gaussian -----------------------------------------------------------------------------
    @property
    def noise_variance(self) -> torch.Tensor:
        """Psi as a (D,) vector (all equal for PPCA)."""
        return torch.exp(self.log_noise).expand(self.n_visible)

    def covariance(self) -> torch.Tensor:
        """The dense D x D covariance W W^T + Psi (for checks and small D)."""
        return self.W @ self.W.T + torch.diag(self.noise_variance)

    def _factors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """float64 (psi, V = Psi^{-1} W, L) with L L^T = M = I + W^T Psi^{-1} W."""
        w, psi = self.W.double(), self.noise_variance.double()
        v = w / psi[:, None]
        m = torch.eye(self.n_components, dtype=torch.float64, device=w.device) + w.T @ v
        return psi, v, torch.linalg.cholesky(m)

    def _log_prob(self, x: torch.Tensor) -> torch.Tensor:
        psi, v, chol = self._factors()
        r = x.double() - self.mean.double()
        # r^T C^{-1} r = r^T Psi^{-1} r - |L^{-1} V^T r|^2     (Woodbury)
        projected = torch.linalg.solve_triangular(chol, (r @ v).T, upper=False)
        mahalanobis = (r * r / psi).sum(-1) - (projected * projected).sum(0)
        # log|C| = log|M| + sum log psi                          (determinant lemma)
        log_det = 2 * chol.diagonal().log().sum() + psi.log().sum()
        log_p = -0.5 * (self.n_visible * math.log(2 * math.pi) + log_det + mahalanobis)
        return log_p.to(self.W.dtype)

    def _check(self, x: torch.Tensor, name: str = "x") -> torch.Tensor:
        return as_tensor(x, name, dim=2, n_features=self.n_visible, device=self.W.device)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log N(x; mean, W W^T + Psi) in nats, shape (N,), for N >= 1 rows ``x``."""
        return self._log_prob(check_nonempty(self._check(x), "x"))

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """-log p(x), normalized (log Z = 0), shape (N,)."""
        return -self._log_prob(x)

    def log_prob_dequantized(self, x: torch.Tensor, bin_width: float = 1.0) -> torch.Tensor:
        """E_u[log p(x + u)], u ~ U[0, bin_width)^D, in closed form, shape (N,).

        With v = u - bin_width/2 (mean 0, covariance bin_width^2 / 12 I),
        E[(r + v)^T C^{-1} (r + v)] = r^T C^{-1} r + bin_width^2 tr(C^{-1}) / 12, so
        E_u log p(x + u) = log p(x + bin_width/2) - bin_width^2 tr(C^{-1}) / 24. By Jensen it is
        a lower bound on log of the probability of the bin [x, x + bin_width)^D divided by
        bin_width^D: the dequantization bound on a discrete log-likelihood (Theis et al. 2016).
        """
        check_positive(bin_width, "bin_width")
        x = check_nonempty(self._check(x), "x")
        psi, v, chol = self._factors()
        # tr(C^{-1}) = sum 1/psi - tr(M^{-1} V^T V)
        half = torch.linalg.solve_triangular(chol, v.T, upper=False)
        trace_precision = (1 / psi).sum() - (half * half).sum()
        log_p = self._log_prob(x + bin_width / 2).double()
        return (log_p - bin_width**2 * trace_precision / 24).to(self.W.dtype)

    @torch.no_grad()
    def sample(
        self, n: int, generator: torch.Generator | int | None = None, noise: bool = True
    ) -> torch.Tensor:
        """``n`` draws x = W z + mean + eps, shape (n, D); ``noise=False`` leaves out eps (the
        noise-free points W z + mean, on the K-dimensional subspace). ``generator``: a
        ``torch.Generator``, an integer seed or None."""
        check_positive_int(n, "n")
        Boolean().check(noise, "noise")
        generator = as_generator(generator, self.W.device)
        device, dtype = self.W.device, self.W.dtype
        z = torch.randn(n, self.n_components, generator=generator, device=device, dtype=dtype)
        x = z @ self.W.T + self.mean
        if noise:
            eps = torch.randn(n, self.n_visible, generator=generator, device=device, dtype=dtype)
            x = x + eps * self.noise_variance.sqrt()
        return x

    # -- the factors ------------------------------------------------------------------------------
    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """Posterior mean of the factors E[z | x] = M^{-1} W^T Psi^{-1} (x - mean), (N, K)."""
        x = self._check(x)
        _, v, chol = self._factors()
        r = x.double() - self.mean.double()
        return torch.cholesky_solve((r @ v).T, chol).T.to(self.W.dtype)

    def posterior_covariance(self) -> torch.Tensor:
        """Cov[z | x] = M^{-1}, the same for every x, (K, K)."""
        _, _, chol = self._factors()
        return torch.cholesky_inverse(chol).to(self.W.dtype)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """E[W z + mean | x], the posterior mean of the noise-free point, (N, D)."""
        return self.transform(x) @ self.W.T + self.mean

    def reconstruction_error(self, x: torch.Tensor) -> torch.Tensor:
        """Squared error of ``reconstruct`` summed over the D pixels, per example (N,)."""
        x = self._check(x)
        return ((x.to(self.W.dtype) - self.reconstruct(x)) ** 2).sum(-1)

    # -- fitting ----------------------------------------------------------------------------------
    @torch.no_grad()
    def mean_log_likelihood(self, mean: torch.Tensor, covariance: torch.Tensor) -> float:
        """Mean log-likelihood per example of a data set with sample mean ``mean`` and
        covariance ``covariance`` (1/N), in float64."""
        m, s = _check_moments(self, mean, covariance)
        psi, v, chol = self._factors()
        return _log_likelihood(s, m - self.mean.double(), psi, v, chol)

    def fit(self, x: torch.Tensor, **kwargs: Any) -> LinearGaussian:
        """Maximum-likelihood fit to ``x`` (N, D); keyword arguments go to ``fit_moments``."""
        x = self._check(x)
        return self.fit_moments(*moments(x), **kwargs)

    def fit_moments(
        self, mean: torch.Tensor, covariance: torch.Tensor, **kwargs: Any
    ) -> LinearGaussian:
        """Fit to a sample mean (D,) and maximum-likelihood covariance (D, D): see subclasses."""
        raise NotImplementedError(f"{type(self).__name__} has no fitting rule")

    @torch.no_grad()
    def _set(self, mean: torch.Tensor, w: torch.Tensor, psi: torch.Tensor) -> None:
        self.mean.copy_(mean)
        self.W.copy_(w)
        log_psi = psi.log()
        self.log_noise.copy_(log_psi[:1] if self.isotropic else log_psi)

    def _em(
        self,
        s: torch.Tensor,
        w: torch.Tensor,
        psi: torch.Tensor,
        max_iter: int,
        tol: float,
    ) -> tuple[torch.Tensor, torch.Tensor, list[float], bool]:
        """EM from (w, psi) on the covariance ``s`` until the gain in mean log-likelihood per
        example falls below ``tol``; returns (w, psi, history, converged)."""
        check_positive_int(max_iter, "max_iter")
        check_in_range(tol, "tol", low=0)
        eye = torch.eye(self.n_components, dtype=torch.float64, device=s.device)
        history: list[float] = []
        diag_s = s.diagonal()
        for _ in range(max_iter):
            v = w / psi[:, None]
            chol = torch.linalg.cholesky(eye + w.T @ v)
            history.append(_log_likelihood(s, None, psi, v, chol))
            if len(history) > 1 and history[-1] - history[-2] < tol:
                return w, psi, history, True
            beta = torch.cholesky_solve(v.T, chol)  # M^{-1} W^T Psi^{-1}, (K, D)
            s_beta = s @ beta.T  # (D, K)
            second_moment = torch.cholesky_inverse(chol) + beta @ s_beta  # E[z z^T], (K, K)
            w = torch.linalg.solve(second_moment, s_beta.T).T
            psi = diag_s - (w * s_beta).sum(-1)  # diag(S - W_new beta S)
            if self.isotropic:
                psi = psi.mean().expand(self.n_visible)
            # Floor on the noise variances: a dimension that is (nearly) constant in the data
            # (MNIST's border pixels) would get psi -> 0 and an infinite density. The expected
            # complete-data log-likelihood is unimodal in each psi_i, so clamping is the
            # constrained M-step and the log-likelihood still never decreases.
            psi = psi.clamp(min=self.min_noise)
        v = w / psi[:, None]
        history.append(_log_likelihood(s, None, psi, v, torch.linalg.cholesky(eye + w.T @ v)))
        converged = history[-1] - history[-2] < tol
        if not converged:
            warnings.warn(
                f"{type(self).__name__}: EM did not converge in max_iter={max_iter} iterations "
                f"(last gain {history[-1] - history[-2]:.3g} nats per example > tol={tol})",
                ConvergenceWarning,
                stacklevel=3,
            )
        return w, psi, history, converged


def _log_likelihood(
    s: torch.Tensor,
    offset: torch.Tensor | None,
    psi: torch.Tensor,
    v: torch.Tensor,
    chol: torch.Tensor,
) -> float:
    """-1/2 [D log 2 pi + log|C| + tr(C^{-1} S) + offset^T C^{-1} offset] with
    tr(C^{-1} S) = sum_i S_ii / psi_i - tr(M^{-1} V^T S V)."""
    half = torch.linalg.solve_triangular(chol, v.T, upper=False)  # L^{-1} V^T, (K, D)
    trace = (s.diagonal() / psi).sum() - ((half @ s) * half).sum()
    if offset is not None:
        projected = half @ offset
        trace = trace + (offset * offset / psi).sum() - (projected * projected).sum()
    log_det = 2 * chol.diagonal().log().sum() + psi.log().sum()
    return float(-0.5 * (psi.numel() * math.log(2 * math.pi) + log_det + trace))


# ----- probabilistic PCA -------------------------------------------------------------------------
class ProbabilisticPCA(LinearGaussian):
    """Probabilistic PCA (Tipping & Bishop 1999): x ~ N(mean, W W^T + sigma^2 I).

    ``fit(x)`` is the closed-form maximum-likelihood solution from the eigendecomposition of the
    sample covariance; ``fit(x, method="em")`` runs EM from a random start (``seed``) instead.
    ``min_noise`` floors sigma^2 (it binds only when K >= rank of the data).

    >>> x = torch.randn(500, 5, generator=torch.Generator().manual_seed(0)).double()
    >>> model = ProbabilisticPCA(5, 2).double().fit(x)
    >>> model.log_prob(x).shape
    torch.Size([500])
    """

    def __init__(self, n_visible: int, n_components: int, min_noise: float = 1e-6) -> None:
        super().__init__(n_visible, n_components, isotropic=True, min_noise=min_noise)

    @property
    def noise_variance_scalar(self) -> float:
        """sigma^2."""
        return float(torch.exp(self.log_noise.detach()))

    def fit_moments(
        self,
        mean: torch.Tensor,
        covariance: torch.Tensor,
        method: str = "closed-form",
        max_iter: int = 10000,
        tol: float = 1e-9,
        seed: int = 0,
    ) -> ProbabilisticPCA:
        """Fit to a sample mean (D,) and maximum-likelihood covariance (D, D).

        ``method="closed-form"`` (Tipping & Bishop eqs. 7-8) or ``"em"`` (eqs. 27-28; ``tol`` is
        the smallest gain in mean log-likelihood per example that continues the iteration).
        """
        check_choice(method, "method", ("closed-form", "em"))
        Integral().check(seed, "seed")
        start = time.perf_counter()
        m, s = _check_moments(self, mean, covariance)
        k, d = self.n_components, self.n_visible
        if method == "closed-form":
            values, vectors = _top_eigenpairs(s, k)
            # sigma^2 = the mean variance lost per discarded direction; eigh returns ~-1e-17
            # for zero eigenvalues, and the floor keeps sigma^2 > 0 for rank-deficient data
            sigma2 = values[k:].clamp(min=0).mean().clamp(min=self.min_noise)
            w = vectors * (values[:k] - sigma2).clamp(min=0).sqrt()
            psi = sigma2.expand(d)
            history, n_iter, converged = [], 0, True
        else:
            generator = torch.Generator(device="cpu").manual_seed(int(seed))
            scale = float(s.trace() / d)
            w = torch.randn(d, k, generator=generator, dtype=torch.float64).to(s.device)
            w = w * math.sqrt(scale / k)
            psi = torch.full((d,), scale, dtype=torch.float64, device=s.device)
            w, psi, history, converged = self._em(s, w, psi, max_iter, tol)
            n_iter = len(history) - 1
        self._set(m, w, psi)
        if not history:
            history = [self.mean_log_likelihood(m, s)]
        self.fit_result = FitResult(method, n_iter, converged, time.perf_counter() - start, history)
        return self


# ----- factor analysis ---------------------------------------------------------------------------
class FactorAnalysis(LinearGaussian):
    """Factor analysis: x ~ N(mean, W W^T + Psi) with diagonal Psi, fitted by EM (Rubin & Thayer
    1982; Ghahramani & Hinton 1996), started from the PPCA solution (W, sigma^2 I).

    ``min_noise`` floors every psi_i: 1e-6 is about the variance of the rounding noise of 8-bit
    images, 1 / (12 * 255^2) = 1.3e-6, so no pixel is modelled more finely than the data resolve.
    """

    def __init__(self, n_visible: int, n_components: int, min_noise: float = 1e-6) -> None:
        super().__init__(n_visible, n_components, isotropic=False, min_noise=min_noise)

    def fit_moments(
        self,
        mean: torch.Tensor,
        covariance: torch.Tensor,
        max_iter: int = 1000,
        tol: float = 1e-6,
    ) -> FactorAnalysis:
        """EM on a sample mean (D,) and maximum-likelihood covariance (D, D); ``tol`` is the
        smallest gain in mean log-likelihood per example that continues the iteration."""
        start = time.perf_counter()
        m, s = _check_moments(self, mean, covariance)
        init = ProbabilisticPCA(self.n_visible, self.n_components, min_noise=self.min_noise)
        init = init.to(device=s.device, dtype=torch.float64).fit_moments(m, s)
        w0, psi0 = init.W.detach(), init.noise_variance.detach().clone()
        w, psi, history, converged = self._em(s, w0, psi0, max_iter, tol)
        self._set(m, w, psi)
        self.fit_result = FitResult(
            "em", len(history) - 1, converged, time.perf_counter() - start, history
        )
        return self
