"""ebmlab.sklearn.BernoulliRBM: scikit-learn's estimator checks, Pipeline use, and the behaviours
that differ from scikit-learn on purpose (short last minibatch, exact pseudo-likelihood)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from ebmlab.sklearn import BernoulliRBM


class _UnitIntervalRBM(BernoulliRBM):
    """The estimator as scikit-learn's checks can exercise it.

    The checks feed non-negative random data with values above 1 (``positive_only`` shifts the
    data but does not bound it). A Bernoulli RBM is defined on [0, 1] and the real estimator
    raises on such input; this subclass maps x >= 0 to x / (1 + x) in [0, 1) before the model
    sees it, so every other code path (fit, partial_fit, transform, dtypes, pickling, feature
    names, invariances) runs unchanged. Negative input still raises.
    """

    def _check_range(self, X: np.ndarray) -> np.ndarray:
        if X.size and X.min() < 0:
            return super()._check_range(X)
        return X / (1.0 + X)


@parametrize_with_checks(
    [_UnitIntervalRBM(n_components=8, n_iter=2, batch_size=50, random_state=0)]
)
def test_sklearn_estimator_checks(estimator, check) -> None:
    check(estimator)


def digits01() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


def test_out_of_range_input_is_rejected() -> None:
    X, _ = digits01()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        BernoulliRBM(n_iter=1).fit(X * 16)
    with pytest.raises(ValueError, match="Negative"):
        BernoulliRBM(n_iter=1).fit(X - 0.5)
    with pytest.raises(ValueError, match=r"NaN|infinity"):
        BernoulliRBM(n_iter=1).fit(np.full((4, 3), np.nan))
    model = BernoulliRBM(n_components=4, n_iter=1, random_state=0).fit(X[:50])
    with pytest.raises(ValueError, match="features"):
        model.transform(X[:5, :10])


@pytest.mark.parametrize("name", ["n_components", "batch_size", "n_iter", "k"])
def test_bad_parameters(name: str) -> None:
    with pytest.raises(ValueError, match=name):
        BernoulliRBM(**{name: 0}).fit(np.zeros((3, 2)))


def test_pipeline_classifies_digits() -> None:
    X, y = digits01()
    pipe = Pipeline(
        [
            # the settings of scikit-learn's RBM-features example (it reaches 0.84 with them)
            ("rbm", BernoulliRBM(n_components=100, learning_rate=0.06, n_iter=20, random_state=0)),
            ("logistic", LogisticRegression(max_iter=2000)),
        ]
    )
    pipe.fit(X[:1400], y[:1400])
    # chance is 10%
    assert pipe.score(X[1400:], y[1400:]) > 0.8


def test_attributes_and_shapes_match_scikit_learn() -> None:
    from sklearn.neural_network import BernoulliRBM as SkRBM

    X, _ = digits01()
    ours = BernoulliRBM(n_components=16, n_iter=1, batch_size=10, random_state=0).fit(X)
    theirs = SkRBM(n_components=16, n_iter=1, batch_size=10, random_state=0).fit(X)
    for name in ("components_", "intercept_hidden_", "intercept_visible_", "h_samples_"):
        assert getattr(ours, name).shape == getattr(theirs, name).shape, name
    assert ours.transform(X[:7]).shape == theirs.transform(X[:7]).shape
    assert ours.score_samples(X[:7]).shape == (7,)
    assert ours.gibbs(X[:7]).shape == (7, 64)
    assert set(np.unique(ours.gibbs(X[:7]))) <= {0.0, 1.0}


def test_transform_is_p_h_given_v() -> None:
    X, _ = digits01()
    model = BernoulliRBM(n_components=5, n_iter=1, random_state=0, dtype="float64").fit(X[:100])
    W, c = model.components_, model.intercept_hidden_
    expected = 1.0 / (1.0 + np.exp(-(X[:10] @ W.T + c)))
    np.testing.assert_allclose(model.transform(X[:10]), expected, rtol=1e-10)


def test_score_samples_is_the_exact_pseudo_likelihood() -> None:
    X, _ = digits01()
    Xb = (X > 0.5).astype(np.float64)
    model = BernoulliRBM(n_components=6, n_iter=1, random_state=0, dtype="float64").fit(Xb)
    W, b, c = model.components_.T, model.intercept_visible_, model.intercept_hidden_

    def free_energy(v: np.ndarray) -> np.ndarray:
        return -v @ b - np.logaddexp(0, v @ W + c).sum(-1)

    v = Xb[:3]
    expected = np.zeros(3)
    for i in range(64):
        flipped = v.copy()
        flipped[:, i] = 1 - flipped[:, i]
        expected += -np.logaddexp(0, free_energy(v) - free_energy(flipped))
    np.testing.assert_allclose(model.score_samples(v), expected, rtol=1e-9)
    np.testing.assert_allclose(
        model.pseudo_log_likelihood(v, per="feature"), expected / 64, rtol=1e-9
    )
    # deterministic, unlike scikit-learn's one-random-feature estimate
    np.testing.assert_array_equal(model.score_samples(v), model.score_samples(v))


def test_short_last_minibatch_takes_an_ordinary_step() -> None:
    """With batch_size=1796 on the 1797 digits the last minibatch has 1 example.

    scikit-learn divides the statistics of its 1796 persistent chains by 1 there: a 1796x
    oversized negative step. Here the update from that 1-example minibatch equals the update from
    a full minibatch with the same positive statistics (the example repeated 1796 times).
    """
    X, _ = digits01()
    X = (X > 0.5).astype(np.float64)
    model = BernoulliRBM(
        n_components=16,
        n_iter=1,
        batch_size=len(X) - 1,
        learning_rate=0.05,
        random_state=0,
        dtype="float64",
    )
    model.fit(X)
    short, full = copy.deepcopy(model), copy.deepcopy(model)
    short.partial_fit(X[:1])
    full.partial_fit(np.repeat(X[:1], len(X) - 1, axis=0))
    np.testing.assert_allclose(short.components_, full.components_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(short.intercept_visible_, full.intercept_visible_, atol=1e-12)


def test_fit_is_reproducible_and_methods_run() -> None:
    X, _ = digits01()
    for method in ("cd", "pcd", "pt"):
        a = BernoulliRBM(
            n_components=8, n_iter=2, method=method, momentum=0.5, centering=True, random_state=3
        ).fit(X[:200])
        b = BernoulliRBM(
            n_components=8, n_iter=2, method=method, momentum=0.5, centering=True, random_state=3
        ).fit(X[:200])
        np.testing.assert_array_equal(a.components_, b.components_)
        assert np.isfinite(a.score_samples(X[:20])).all()


def test_float32_and_float64_agree() -> None:
    X, _ = digits01()
    m64 = BernoulliRBM(n_components=8, n_iter=1, random_state=0, dtype="float64").fit(X[:300])
    m32 = copy.deepcopy(m64)
    m32.dtype, m32.rbm_ = "float32", m32.rbm_.float()
    np.testing.assert_allclose(m32.transform(X[:50]), m64.transform(X[:50]), atol=1e-5)
    Xb = (X[:50] > 0.5) * 1.0
    np.testing.assert_allclose(m32.score_samples(Xb), m64.score_samples(Xb), rtol=1e-4)
    assert m32.transform(X[:5].astype(np.float32)).dtype == np.float32
    assert m32.transform(X[:5]).dtype == np.float64
