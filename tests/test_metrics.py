"""tfmia.metrics against scikit-learn and scipy, bit for bit where they define the numbers."""

import warnings

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from tfmia import _core
from tfmia._device import cuda_available
from tfmia.metrics import LowFPRWarning, auc, clopper_pearson, roc_counts, roc_curve, tpr_at_fpr


def sklearn_curve(scores, is_member):
    return sk_roc_curve(is_member, scores, drop_intermediate=False)


def assert_curves_identical(got, expected):
    for g, e in zip(got, expected):
        assert g.dtype == e.dtype
        np.testing.assert_array_equal(g, e)
        np.testing.assert_array_equal(np.signbit(g), np.signbit(e))


def inputs(kind, n, rng, dtype=np.float64):
    is_member = rng.random(n) < rng.uniform(0.1, 0.9)
    is_member[:2] = [True, False]
    if kind == "random":
        scores = rng.normal(is_member * 0.5, 1.0)
    elif kind == "ties":
        scores = rng.integers(0, 5, n) + is_member * rng.integers(0, 2, n)
    elif kind == "few_distinct":
        scores = rng.choice([-0.0, 0.0, 0.25, 1.0], n)
    else:  # "exponent_spread": many binades, tiny and huge values
        scores = rng.normal(size=n) * 10.0 ** rng.integers(-30, 30, n)
    return scores.astype(dtype), is_member


KINDS = ["random", "ties", "few_distinct", "exponent_spread"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", KINDS)
def test_roc_curve_identical_to_sklearn(kind, dtype):
    rng = np.random.default_rng(KINDS.index(kind))
    for n in (2, 3, 10, 257, 5000):
        scores, is_member = inputs(kind, n, rng, dtype)
        assert_curves_identical(roc_curve(scores, is_member), sklearn_curve(scores, is_member))


def test_roc_curve_large_input():
    # > 2**14 per side: the LSD radix path of the core.
    rng = np.random.default_rng(11)
    scores, is_member = inputs("ties", 100_000, rng)
    scores = scores + rng.integers(0, 1000, scores.size) * 1e-3
    assert_curves_identical(roc_curve(scores, is_member), sklearn_curve(scores, is_member))


def test_roc_curve_accepts_int_scores_and_01_membership():
    scores = np.array([3, 1, 2, 2, 5])
    is_member = np.array([1, 0, 1, 0, 1])
    assert_curves_identical(roc_curve(scores, is_member), sklearn_curve(scores, is_member))


def test_signed_zero_threshold_is_sklearns():
    # sklearn reports the tie group's last element in stable descending order.
    for scores in ([0.0, -0.0, 1.0, -0.0, 0.5], [-0.0, 0.0, 1.0]):
        is_member = np.arange(len(scores)) % 2 == 0
        got = roc_curve(np.array(scores), is_member)[2]
        expected = sklearn_curve(np.array(scores), is_member)[2]
        np.testing.assert_array_equal(np.signbit(got), np.signbit(expected))


def test_roc_counts_are_the_curve_before_division():
    rng = np.random.default_rng(12)
    scores, is_member = inputs("ties", 500, rng)
    fps, tps, thresholds = roc_counts(scores, is_member)
    assert fps.dtype == tps.dtype == np.int64
    assert fps[-1] == np.sum(~is_member) and tps[-1] == np.sum(is_member)
    np.testing.assert_array_equal(fps[1:], [np.sum(scores[~is_member] >= t) for t in thresholds[1:]])
    np.testing.assert_array_equal(tps[1:], [np.sum(scores[is_member] >= t) for t in thresholds[1:]])
    fpr, tpr, thr = roc_curve(scores, is_member)
    np.testing.assert_array_equal(fps / fps[-1], fpr)
    np.testing.assert_array_equal(tps / tps[-1], tpr)
    np.testing.assert_array_equal(thresholds, thr)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", KINDS)
def test_auc_identical_to_roc_auc_score(kind, dtype):
    rng = np.random.default_rng(20 + KINDS.index(kind))
    for n in (2, 3, 9, 100, 1000, 20_000):
        for _ in range(3):
            scores, is_member = inputs(kind, n, rng, dtype)
            assert auc(scores, is_member) == roc_auc_score(is_member, scores), (kind, n)


def test_auc_identical_on_long_curves():
    # Hundreds of thousands of trapezoids: numpy's pairwise summation recurses deeply.
    rng = np.random.default_rng(13)
    for n in (150_000, 400_000):
        scores, is_member = inputs("random", n, rng)
        assert auc(scores, is_member) == roc_auc_score(is_member, scores)


def test_auc_needs_pairwise_summation():
    # A plain left-to-right sum of the same trapezoids differs on this input:
    # the test above would catch a core that summed naively.
    rng = np.random.default_rng(14)
    scores, is_member = inputs("random", 50_000, rng)
    fpr, tpr, _ = sk_roc_curve(is_member, scores)
    terms = (fpr[1:] - fpr[:-1]) * (tpr[1:] + tpr[:-1]) / 2.0
    naive = 0.0
    for t in terms:
        naive += t
    assert naive != roc_auc_score(is_member, scores) == auc(scores, is_member)


def tpr_from_sklearn(scores, is_member, target):
    fpr, tpr, _ = sklearn_curve(scores, is_member)
    return tpr[fpr <= target].max()


def test_tpr_at_fpr_matches_sklearn_curve():
    rng = np.random.default_rng(15)
    for kind in KINDS:
        scores, is_member = inputs(kind, 3000, rng)
        n_out = np.sum(~is_member)
        targets = [t for t in (0.001, 0.01, 0.0123456, 0.1, 0.5, 1.0) if t >= 1.0 / n_out] + [1.0 / n_out]
        got = tpr_at_fpr(scores, is_member, targets)
        assert isinstance(got, np.ndarray) and got.shape == (len(targets),)
        for t, g in zip(targets, got):
            assert g == tpr_from_sklearn(scores, is_member, t)
        assert isinstance(tpr_at_fpr(scores, is_member, 0.01), float)


def test_tpr_at_fpr_below_resolution_is_nan_with_warning():
    rng = np.random.default_rng(16)
    scores, is_member = inputs("random", 300, rng)
    n_out = np.sum(~is_member)
    with pytest.warns(LowFPRWarning, match=r"below the resolution 1/n_non_members"):
        assert np.isnan(tpr_at_fpr(scores, is_member, 0.5 / n_out))
    with pytest.warns(LowFPRWarning):
        got = tpr_at_fpr(scores, is_member, [0.0, 0.5])
    assert np.isnan(got[0]) and got[1] == tpr_from_sklearn(scores, is_member, 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tpr_at_fpr(scores, is_member, 1.0 / n_out)  # at the resolution: no warning
    assert issubclass(LowFPRWarning, UserWarning)


@pytest.mark.parametrize("k, n", [(0, 1), (1, 1), (0, 10), (3, 10), (10, 10), (7, 1000), (500, 1000), (1, 100_000)])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.999])
def test_clopper_pearson_matches_binomtest(k, n, confidence):
    lo, hi = clopper_pearson(k, n, confidence)
    ci = scipy.stats.binomtest(k, n).proportion_ci(confidence_level=confidence, method="exact")
    assert isinstance(lo, float) and isinstance(hi, float)
    # binomtest finds the quantiles by brentq (xtol 2e-12).
    assert lo == pytest.approx(ci.low, abs=1e-11) and hi == pytest.approx(ci.high, abs=1e-11)


def test_clopper_pearson_vectorised():
    k = np.array([[0, 3], [5, 10]])
    lo, hi = clopper_pearson(k, 10)
    assert lo.shape == hi.shape == (2, 2)
    for idx in np.ndindex(k.shape):
        assert (lo[idx], hi[idx]) == clopper_pearson(int(k[idx]), 10)
    assert lo[0, 0] == 0.0 and hi[1, 1] == 1.0


# ---- bad input -------------------------------------------------------------


@pytest.mark.parametrize(
    "scores, is_member, match",
    [
        ([0.1, 0.2, 0.3], [1, 0], "is_member"),
        ([0.1, 0.2], [1, 1], "is_member must contain both members and non-members"),
        ([0.1, 0.2], [False, False], "is_member must contain both members and non-members"),
        ([0.1, 0.2], [0, 2], "is_member"),
        ([0.1, 0.2], [0.0, 0.5], "is_member"),
        ([0.1, np.nan], [0, 1], "scores"),
        ([np.inf, 0.2], [0, 1], "scores"),
        ([], [], "scores"),
        ([[0.1, 0.2]], [0, 1], "scores"),
        (np.array([1 + 1j, 2]), [0, 1], "scores"),
    ],
)
@pytest.mark.parametrize("function", [roc_curve, roc_counts, auc])
def test_roc_rejects(function, scores, is_member, match):
    with pytest.raises(ValueError, match=match):
        function(scores, is_member)


@pytest.mark.parametrize("fpr", [-0.1, 1.5, np.nan, [0.1, 2.0], [[0.1]], "a"])
def test_tpr_at_fpr_rejects_bad_target(fpr):
    with pytest.raises(ValueError, match="fpr"):
        tpr_at_fpr([0.1, 0.2, 0.3], [0, 1, 0], fpr)


@pytest.mark.parametrize(
    "k, n, confidence, match",
    [
        (-1, 10, 0.95, "k must be in"),
        (11, 10, 0.95, "k must be in"),
        (1, 0, 0.95, "n must be >= 1"),
        (1.5, 10, 0.95, "k must hold whole numbers"),
        (1, 10, 1.0, "confidence"),
        (1, 10, 0.0, "confidence"),
        ([1, 2], [3, 4, 5], 0.95, "broadcast"),
    ],
)
def test_clopper_pearson_rejects(k, n, confidence, match):
    with pytest.raises(ValueError, match=match):
        clopper_pearson(k, n, confidence)


@pytest.mark.parametrize("device", ["gpu", "tpu", None])
def test_rejects_unknown_device(device):
    with pytest.raises(ValueError, match="device"):
        auc([0.1, 0.2], [0, 1], device=device)


def test_core_checks_arrays_itself():
    scores, is_member = np.arange(6.0), np.arange(6) % 2 == 0
    with pytest.raises(ValueError, match="scores must be C-contiguous"):
        _core.roc_auc(scores[::2], is_member[::2].copy(), False)
    with pytest.raises(ValueError, match="is_member must be a bool array"):
        _core.roc_curve(scores, is_member.astype(np.int64), False)
    with pytest.raises(ValueError, match="is_member has 3 entries"):
        _core.roc_counts(scores, is_member[:3].copy(), False)
    with pytest.raises(ValueError, match="scores must be a float32 or float64"):
        _core.roc_auc(np.arange(6), is_member, False)


# ---- property test ---------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from([np.float32, np.float64, np.int64, np.bool_, np.complex128, object]).flatmap(
        lambda dt: hnp.arrays(
            dt,
            hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=12),
            elements=st.floats(allow_nan=True, allow_infinity=True, width=32) | st.sampled_from([0.0, -0.0])
            if dt in (np.float32, np.float64, object)
            else None,
        )
    ),
    st.randoms(use_true_random=False),
)
def test_roc_property(scores, random):
    is_member = np.array([random.random() < 0.5 for _ in range(scores.size)], dtype=bool)
    valid = (
        scores.ndim == 1
        and scores.dtype != object
        and not np.iscomplexobj(scores)
        and scores.size > 0
        and bool(np.all(np.isfinite(scores.astype(np.float64))))
        and 0 < is_member.sum() < scores.size
    )
    if not valid:
        with pytest.raises(ValueError):
            roc_curve(scores, is_member)
        return
    assert_curves_identical(roc_curve(scores, is_member), sklearn_curve(scores, is_member))
    assert auc(scores, is_member) == roc_auc_score(is_member, scores)


# ---- CUDA ------------------------------------------------------------------

needs_cuda = pytest.mark.skipif(not cuda_available(), reason="no CUDA build of tfmia._core or no visible CUDA device")


@needs_cuda
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", KINDS)
def test_cuda_equals_cpu(kind, dtype):
    rng = np.random.default_rng(30)
    scores, is_member = inputs(kind, 200_000, rng, dtype)
    assert_curves_identical(roc_curve(scores, is_member, device="cuda"), roc_curve(scores, is_member))
    for g, c in zip(roc_counts(scores, is_member, device="cuda"), roc_counts(scores, is_member)):
        np.testing.assert_array_equal(g, c)
    assert auc(scores, is_member, device="cuda") == auc(scores, is_member)
