"""ebmlab.sklearn.BernoulliRBM: scikit-learn's estimator checks, Pipeline use, and the behaviours
that differ from scikit-learn on purpose (short last minibatch, exact pseudo-likelihood)."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import BernoulliRBM as SkRBM
from sklearn.pipeline import Pipeline
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.estimator_checks import check_estimator, parametrize_with_checks

from ebmlab.sklearn import BernoulliRBM, expected_failed_checks


@parametrize_with_checks(
    [BernoulliRBM(), BernoulliRBM(n_components=8, n_iter=2, batch_size=50, random_state=0)],
    expected_failed_checks=expected_failed_checks,
)
def test_sklearn_estimator_checks(estimator, check) -> None:
    """Every check of scikit-learn's suite passes on the estimator itself (defaults included)."""
    assert expected_failed_checks(estimator) == {}
    check(estimator)


def test_strict_range_fails_only_its_listed_checks_for_its_reason() -> None:
    """With strict_range=True the checks that feed values above 1 fail, all of them with the
    range error, and every other check passes."""
    estimator = BernoulliRBM(n_components=8, n_iter=2, batch_size=50, strict_range=True)
    expected = expected_failed_checks(estimator)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(estimator, on_fail=None, expected_failed_checks=expected)
    statuses = {r["check_name"]: set() for r in results}
    for r in results:
        statuses[r["check_name"]].add(r["status"])
        if r["status"] == "xfail":
            assert "needs values in [0, 1]" in str(r["exception"]), r["check_name"]
    for name, status in statuses.items():
        assert status == ({"xfail"} if name in expected else {"passed"}) or status == {"skipped"}, (
            name,
            status,
        )
    assert set(expected) <= set(statuses)
    assert "check_fit_non_negative" in statuses  # the strict mode is tagged positive-only


def digits01() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


def test_out_of_range_input_is_used_as_scikit_learn_uses_it() -> None:
    """Values outside [0, 1] are not rejected: transform is sigmoid(X W^T + c) for any X, equal
    to scikit-learn's with the same weights, and fit's data-dependent start (visible biases,
    persistent chains) sees them at the nearest end, 0 or 1."""
    X, _ = digits01()
    raw = X * 16 - 2  # [-2, 14]
    model = BernoulliRBM(n_components=6, n_iter=2, random_state=0, dtype="float64").fit(raw)
    assert np.isfinite(model.components_).all()
    W, c = model.components_, model.intercept_hidden_
    np.testing.assert_allclose(
        model.transform(raw[:10]), 1.0 / (1.0 + np.exp(-(raw[:10] @ W.T + c))), rtol=1e-10
    )
    theirs = SkRBM(n_components=6, n_iter=0).fit(X[:5])
    theirs.components_, theirs.intercept_hidden_ = W, c
    np.testing.assert_allclose(model.transform(raw), theirs.transform(raw), rtol=1e-10)

    start = BernoulliRBM(n_components=6, n_iter=0, random_state=1, dtype="float64")
    clipped = copy.deepcopy(start).fit(np.clip(raw, 0, 1))
    start.fit(raw)
    assert not np.allclose(np.clip(raw, 0, 1).mean(0), raw.mean(0))
    for name in ("components_", "intercept_visible_", "intercept_hidden_", "h_samples_"):
        np.testing.assert_array_equal(getattr(start, name), getattr(clipped, name), name)


def test_strict_range_rejects_values_outside_the_unit_interval() -> None:
    X, _ = digits01()
    strict = BernoulliRBM(n_components=4, n_iter=1, random_state=0, strict_range=True)
    with pytest.raises(ValueError, match=r"\[0, 1\].*strict_range=False"):
        copy.deepcopy(strict).fit(X * 16)
    with pytest.raises(ValueError, match="Negative values"):
        copy.deepcopy(strict).partial_fit(X - 0.5)
    strict.fit(X[:100])
    for method in (strict.transform, strict.score_samples, strict.gibbs, strict.partial_fit):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            method(X[:5] + 1)
    assert strict.transform(X[:5]).shape == (5, 4)


def test_input_errors_are_scikit_learns() -> None:
    X, _ = digits01()
    with pytest.raises(ValueError, match="NaN"):
        BernoulliRBM(n_iter=1).fit(np.full((4, 3), np.nan))
    with pytest.raises(ValueError, match="infinity"):
        BernoulliRBM(n_iter=1).fit(np.full((4, 3), np.inf))
    with pytest.raises(ValueError, match="Expected 2D array"):
        BernoulliRBM(n_iter=1).fit(X[0])
    with pytest.raises(ValueError, match="minimum of 1 is required"):
        BernoulliRBM(n_iter=1).fit(X[:0])
    model = BernoulliRBM(n_components=4, n_iter=1, random_state=0).fit(X[:50])
    assert model.n_features_in_ == 64
    with pytest.raises(ValueError, match="64 features"):
        model.transform(X[:5, :10])
    # one sample and one feature fit (as scikit-learn's estimator does)
    assert BernoulliRBM(n_components=3, n_iter=2).fit(X[:1]).transform(X[:2]).shape == (2, 3)
    assert BernoulliRBM(n_components=3, n_iter=2).fit(X[:, :1]).components_.shape == (3, 1)


def test_sparse_input_fits_as_the_dense_array() -> None:
    X, _ = digits01()
    dense = BernoulliRBM(n_components=5, n_iter=2, random_state=0, dtype="float64").fit(X[:200])
    for convert in (sp.csr_matrix, sp.csc_array, sp.coo_matrix):
        model = BernoulliRBM(n_components=5, n_iter=2, random_state=0, dtype="float64")
        model.fit(convert(X[:200]))
        np.testing.assert_array_equal(model.components_, dense.components_)
        np.testing.assert_array_equal(model.transform(convert(X[:9])), dense.transform(X[:9]))


def test_feature_names_out_match_scikit_learn() -> None:
    X, _ = digits01()
    ours = BernoulliRBM(n_components=3, n_iter=1).fit(X[:30])
    theirs = SkRBM(n_components=3, n_iter=1).fit(X[:30])
    assert list(ours.get_feature_names_out()) == list(theirs.get_feature_names_out())
    assert list(ours.get_feature_names_out()) == ["bernoullirbm0", "bernoullirbm1", "bernoullirbm2"]


def test_feature_names_in_from_a_data_frame() -> None:
    pd = pytest.importorskip("pandas")
    X, _ = digits01()
    frame = pd.DataFrame(X[:40, :4], columns=["a", "b", "c", "d"])
    model = BernoulliRBM(n_components=2, n_iter=1).fit(frame)
    assert list(model.feature_names_in_) == ["a", "b", "c", "d"]
    with pytest.raises(ValueError, match="feature names"):
        model.transform(frame[["d", "c", "b", "a"]])


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("n_components", 0),
        ("batch_size", 0),
        ("n_iter", -1),
        ("k", 0),
        ("learning_rate", 0.0),
        ("momentum", 1.0),
        ("method", "sgd"),
        ("dtype", "float16"),
        ("n_chains", 0),
        ("strict_range", "yes"),
    ],
)
def test_bad_parameters(name: str, value: object) -> None:
    for method in ("fit", "partial_fit"):
        with pytest.raises(InvalidParameterError, match=f"'{name}' parameter of BernoulliRBM"):
            getattr(BernoulliRBM(**{name: value}), method)(np.zeros((3, 2)))


def test_n_iter_zero_only_initializes_as_in_scikit_learn() -> None:
    X, _ = digits01()
    start = BernoulliRBM(n_components=4, n_iter=0, random_state=0).fit(X)
    trained = BernoulliRBM(n_components=4, n_iter=1, random_state=0).fit(X)
    SkRBM(n_components=4, n_iter=0).fit(X)  # accepted there too
    assert start.components_.shape == trained.components_.shape == (4, 64)
    assert not np.allclose(start.components_, trained.components_)
    marginal = X.mean(0).clip(1e-3, 1 - 1e-3)
    np.testing.assert_allclose(
        start.intercept_visible_, np.log(marginal / (1 - marginal)), rtol=1e-5, atol=1e-5
    )


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


def test_pipeline_accuracy_matches_scikit_learn() -> None:
    """Same pipeline, same split: the two accuracies differ by less than 3 standard errors of a
    difference of two accuracies on the 397 test digits."""
    X, y = digits01()
    scores = []
    for rbm in (BernoulliRBM, SkRBM):
        pipe = Pipeline(
            [
                ("rbm", rbm(n_components=100, learning_rate=0.06, n_iter=20, random_state=0)),
                ("logistic", LogisticRegression(max_iter=2000)),
            ]
        )
        scores.append(pipe.fit(X[:1400], y[:1400]).score(X[1400:], y[1400:]))
    ours, theirs = scores
    se = np.sqrt((ours * (1 - ours) + theirs * (1 - theirs)) / (len(X) - 1400))
    assert abs(ours - theirs) < 3 * se, (ours, theirs)


def test_attributes_and_shapes_match_scikit_learn() -> None:
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
