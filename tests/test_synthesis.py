"""Shokri et al.'s data synthesis on a model whose confidences are known."""

import numpy as np
import pytest

from tfmia.synthesis import from_marginals, model_based, noisy_real


def _known_model(d=20, c=3, seed=0):
    """A fixed linear softmax model on binary features: class c likes the features in its block."""
    w = np.zeros((d, c))
    block = d // c
    for k in range(c):
        w[k * block:(k + 1) * block, k] = 1.5
    bias = -np.full(c, 0.5)

    def predict_proba(x):
        z = np.asarray(x, dtype=np.float64) @ w + bias
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    return predict_proba


@pytest.mark.parametrize("target_class", [0, 2])
def test_model_based_records_reach_the_requested_confidence(target_class):
    predict = _known_model()
    res = model_based(predict, 20, target_class, 64, k_max=6, k_min=1, conf_min=0.9, rej_max=5, iter_max=300, seed=1)
    assert res.success.mean() > 0.8
    probs = predict(res.x)
    assert np.all(probs[:, target_class] > 0.9)
    assert np.all(probs.argmax(axis=1) == target_class)
    assert set(np.unique(res.x)) <= {0.0, 1.0}
    assert np.all((res.queries >= 1) & (res.queries <= 300))
    assert res.queries_per_record == pytest.approx(res.queries.sum() / res.success.sum())
    assert np.array_equal(res.y, np.full(res.x.shape[0], target_class))


def test_model_based_is_reproducible_and_counts_failures():
    predict = _known_model()
    a = model_based(predict, 20, 1, 16, conf_min=0.9, iter_max=300, k_max=6, seed=3)
    b = model_based(predict, 20, 1, 16, conf_min=0.9, iter_max=300, k_max=6, seed=3)
    assert np.array_equal(a.x, b.x) and np.array_equal(a.queries, b.queries)
    impossible = model_based(predict, 20, 1, 8, conf_min=1.0, iter_max=20, k_max=6, seed=0)
    assert not impossible.success.any() and impossible.x.shape == (0, 20)
    assert np.all(impossible.queries == 20) and impossible.queries_per_record == np.inf


def test_continuous_features_are_resampled_in_range():
    predict = _known_model()
    res = model_based(predict, 20, 0, 16, binary=np.arange(20) < 10, feature_range=(0.0, 2.0), conf_min=0.5,
                      iter_max=200, k_max=6, seed=0)
    assert res.x.size and np.all((res.x >= 0) & (res.x <= 2))


@pytest.mark.parametrize("kwargs, match", [({"k_max": 30}, "k_max"), ({"k_min": 5, "k_max": 3}, "k_min"),
                                           ({"conf_min": 1.5}, "conf_min"), ({"iter_max": 0}, "iter_max"),
                                           ({"feature_range": (1, 0)}, "feature_range")])
def test_model_based_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        model_based(_known_model(), 20, 0, 4, **kwargs)


def test_marginal_synthesis_matches_class_marginals():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    x = (rng.uniform(size=(2000, 6)) < np.where(y[:, None] == 1, 0.8, 0.2)).astype(np.float32)
    xs, ys = from_marginals(x, y, 5000, seed=1)
    assert xs.shape == (10000, 6) and np.array_equal(np.bincount(ys), [5000, 5000])
    for c in (0, 1):
        np.testing.assert_allclose(xs[ys == c].mean(axis=0), x[y == c].mean(axis=0), atol=0.03)


def test_noisy_real_flips_exactly_the_fraction():
    x = (np.random.default_rng(0).uniform(size=(50, 40)) < 0.5).astype(np.float32)
    for fraction in (0.1, 0.2):
        noisy = noisy_real(x, fraction, seed=2)
        assert np.all((noisy != x).sum(axis=1) == round(fraction * 40))
    with pytest.raises(ValueError, match="binary"):
        noisy_real(x + 0.5, 0.1)
