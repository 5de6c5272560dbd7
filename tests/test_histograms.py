"""tfmia.histograms against a brute-force oracle of the privacy-risk-score rule (tests/oracles.py), bit for bit."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tfmia import _core
from tfmia._device import cuda_available
from tfmia.histograms import ClassHistograms
from oracles import class_histograms, fit_class_histograms, risk_scores


def assert_fit_equals(h, fitted):
    for c, (edges, h_in, h_out) in enumerate(fitted):
        np.testing.assert_array_equal(h.edges[c], edges)
        np.testing.assert_array_equal(h.h_in[c], h_in)
        np.testing.assert_array_equal(h.h_out[c], h_out)


def shadow(rng, n_in, n_out, num_classes):
    """Modified-entropy-like values: many near 0 (below the 1e-10 floor too), a long tail."""
    def values(n, scale):
        return rng.exponential(scale, n) * 10.0 ** rng.integers(-13, 2, n)

    return (values(n_in, 1.0), rng.integers(0, num_classes, n_in), values(n_out, 3.0), rng.integers(0, num_classes, n_out))


def targets(rng, num_classes, n=300):
    """Target values spanning beyond every fitted range (0, tiny, huge), not floored."""
    v = np.r_[rng.exponential(1.0, n) * 10.0 ** rng.integers(-16, 4, n), 0.0, 1e-300, 1e12]
    return v, rng.integers(0, num_classes, v.size)


@pytest.mark.parametrize("log_bins", [True, False])
@pytest.mark.parametrize("bins", [1, 5, 12])
def test_fit_and_scores_equal_the_oracle(log_bins, bins):
    rng = np.random.default_rng(bins + 100 * log_bins)
    vin, lin, vout, lout = shadow(rng, 2000, 1500, 6)
    h = ClassHistograms.fit(vin, lin, vout, lout, 6, bins=bins, log_bins=log_bins)
    fitted = fit_class_histograms(vin, lin, vout, lout, 6, bins, log_bins)
    assert_fit_equals(h, fitted)
    assert not h.fallback.any() and h.log_bins == log_bins and h.bins == bins and h.num_classes == 6
    v, lab = targets(rng, 6)
    np.testing.assert_array_equal(h.member_probability(v, lab), risk_scores(fitted, v, lab))


def test_classes_larger_than_numpys_histogram_block():
    # np.histogram accumulates blocks of 65536 values: class 0 spans three.
    rng = np.random.default_rng(1)
    vin, lin, vout, lout = shadow(rng, 200_000, 70_000, 2)  # > 2**18 in all: the multi-threaded path
    lin[:140_000] = 0
    h = ClassHistograms.fit(vin, lin, vout, lout, 2)
    assert_fit_equals(h, fit_class_histograms(vin, lin, vout, lout, 2))


def test_empty_bins_use_the_outward_search():
    # Two clusters and many bins: the middle bins are empty on both sides.
    rng = np.random.default_rng(2)
    vin = np.r_[rng.uniform(1, 2, 50), rng.uniform(90, 100, 5)]
    vout = np.r_[rng.uniform(1, 2, 5), rng.uniform(90, 100, 50)]
    lin, lout = np.zeros(55, int), np.zeros(55, int)
    h = ClassHistograms.fit(vin, lin, vout, lout, 1, bins=20, log_bins=False)
    fitted = fit_class_histograms(vin, lin, vout, lout, 1, 20, False)
    assert_fit_equals(h, fitted)
    empty = np.flatnonzero(h.h_in[0] + h.h_out[0] == 0)
    assert empty.size >= 10
    edges = h.edges[0]
    middles = (edges[empty] + edges[empty + 1]) / 2
    got = h.member_probability(middles, np.zeros(middles.size, int))
    np.testing.assert_array_equal(got, risk_scores(fitted, middles, np.zeros(middles.size, int)))
    assert len(set(got)) == 2  # borrowed from the nearest non-empty bin below or above


def test_member_prior_reweights_the_non_members():
    vin, vout = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.5, 3.5])
    lab_in, lab_out = np.zeros(4, int), np.zeros(2, int)
    h = ClassHistograms.fit(vin, lab_in, vout, lab_out, 1, bins=1, log_bins=False)
    # One bin: h_in = 1, h_out = 1; with prior 0.2 the odds are 4: r = 1 / (1 + 4).
    assert h.member_probability([2.0], [0], member_prior=0.2)[0] == 1.0 / (1.0 + 1.0 * ((1 - 0.2) / 0.2))
    assert h.member_probability([2.0], [0], member_prior=0.2)[0] == pytest.approx(0.2)
    assert h.member_probability([2.0], [0])[0] == 0.5
    h2 = ClassHistograms.fit(vin, lab_in, vout, lab_out, 1, bins=2, log_bins=False)
    # Two bins [1, 2.5), [2.5, 4]: h_in = [0.5, 0.5], h_out = [0.5, 0.5].
    assert h2.member_probability([3.0], [0], member_prior=0.75)[0] == 0.5 / (0.5 + 0.5 * (0.25 / 0.75))


def test_fallback_to_pooled_histograms():
    rng = np.random.default_rng(3)
    vin, lin, vout, lout = shadow(rng, 500, 400, 4)
    lin[lin == 1] = 0  # class 1: no members
    lout[lout == 2] = 3  # class 2: no non-members
    h = ClassHistograms.fit(vin, lin, vout, lout, 5)  # class 4: nothing at all
    np.testing.assert_array_equal(h.fallback, [False, True, True, False, True])
    fitted = fit_class_histograms(vin, lin, vout, lout, 5)
    assert_fit_equals(h, fitted)
    v, lab = targets(rng, 5)
    np.testing.assert_array_equal(h.member_probability(v, lab), risk_scores(fitted, v, lab))


def test_float32_values_binned_as_numpy_weighted_in_float64():
    rng = np.random.default_rng(4)
    vin, lin, vout, lout = shadow(rng, 800, 700, 3)
    vin, vout = vin.astype(np.float32), vout.astype(np.float32)
    h = ClassHistograms.fit(vin, lin, vout, lout, 3)
    fitted = fit_class_histograms(vin, lin, vout, lout, 3)
    assert fitted[0][0].dtype == np.float32  # edges computed in the values' dtype, as numpy does
    assert_fit_equals(h, fitted)


def test_no_mass_in_any_bin_scores_the_prior():
    # Log edges of a single repeated value can miss it: 10**log10(x) != x.
    x = next(v for v in np.linspace(0.1, 1, 1000) if 10 ** np.log10(v) != v)
    h = ClassHistograms.fit([x, x], [0, 0], [x], [0], 1)
    assert h.h_in.sum() == 0 and h.h_out.sum() == 0
    assert h.member_probability([x], [0], member_prior=0.3)[0] == 0.3


# ---- bad input -------------------------------------------------------------


def fit_args():
    return dict(
        values_in=np.array([0.1, 0.2, 0.3]),
        labels_in=np.array([0, 1, 1]),
        values_out=np.array([0.5, 1.5]),
        labels_out=np.array([0, 1]),
        num_classes=2,
    )


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(bins=0), "bins"),
        (dict(bins=2.5), "bins"),
        (dict(num_classes=0), "num_classes"),
        (dict(labels_in=np.array([0, 1, 2])), "labels_in"),
        (dict(labels_out=np.array([-1, 0])), "labels_out"),
        (dict(labels_in=np.array([0, 1])), "labels_in"),
        (dict(values_out=np.array([0.5])), "labels_out"),
        (dict(values_in=np.array([0.1, np.nan, 0.3])), "values_in"),
        (dict(values_out=np.array([np.inf, 1.5])), "values_out"),
        (dict(values_in=np.array([]), labels_in=np.array([], dtype=int)), "values_in"),
    ],
)
def test_fit_rejects(change, match):
    args = {**fit_args(), **change}
    with pytest.raises(ValueError, match=match):
        ClassHistograms.fit(**args)


@pytest.mark.parametrize(
    "values, labels, prior, match",
    [
        ([0.1, np.nan], [0, 1], 0.5, "values"),
        ([0.1, -np.inf], [0, 1], 0.5, "values"),
        ([0.1, 0.2], [0, 2], 0.5, "labels"),
        ([0.1, 0.2], [0], 0.5, "labels"),
        ([0.1], [0], 0.0, "member_prior"),
        ([0.1], [0], 1.0, "member_prior"),
        ([0.1], [0], np.nan, "member_prior"),
        ([0.1], [0], "half", "member_prior"),
    ],
)
def test_member_probability_rejects(values, labels, prior, match):
    h = ClassHistograms.fit(**fit_args())
    with pytest.raises(ValueError, match=match):
        h.member_probability(values, labels, member_prior=prior)


def test_labels_spread_over_a_huge_class_range():
    # Few records, labels far apart: the core's per-class memory follows the
    # classes the labels hold; the other classes get the pooled histograms.
    rng = np.random.default_rng(21)
    num_classes = 2**16
    present = np.array([2, 5000, num_classes - 1])
    vin, vout = rng.exponential(1.0, 80), rng.exponential(3.0, 70)
    lin, lout = rng.choice(present, 80), rng.choice(present, 70)
    h = ClassHistograms.fit(vin, lin, vout, lout, num_classes, bins=3)
    assert h.edges.shape == (num_classes, 4) and h.h_in.shape == (num_classes, 3)
    assert np.flatnonzero(~h.fallback).tolist() == present.tolist()
    pooled = class_histograms(vin, vout, bins=3)
    for c in (0, 3, 4999, num_classes - 2):
        for got, want in zip((h.edges[c], h.h_in[c], h.h_out[c]), pooled):
            np.testing.assert_array_equal(got, want)
    for c in present:
        fitted = class_histograms(vin[lin == c], vout[lout == c], bins=3)
        for got, want in zip((h.edges[c], h.h_in[c], h.h_out[c]), fitted):
            np.testing.assert_array_equal(got, want)
    lo, hi, n_in, n_out = _core.risk_ranges(vin, lin, vout, lout, 2**20, False)
    assert lo.shape == (2**20,) and np.isinf(lo[0]) and lo[5000] == min(vin[lin == 5000].min(), vout[lout == 5000].min())
    assert n_in[present].tolist() == [np.sum(lin == c) for c in present] and n_in.sum() == 80


@pytest.mark.parametrize(
    "num_classes, bins, match",
    [
        (2**24 + 1, 1, "num_classes"),
        (2**62, 5, "num_classes"),
        (2**22, 5, r"num_classes=4194304 with 6 entries per class"),
        (1, 2**16 + 1, "bins must be <= 2\\*\\*16"),
        (3, 2**40, "bins"),
    ],
)
def test_table_sizes_beyond_the_limits_are_refused(num_classes, bins, match):
    with pytest.raises(ValueError, match=match):
        ClassHistograms.fit([0.1, 0.2], [0, 0], [0.3], [0], num_classes, bins=bins)


def test_core_refuses_huge_class_and_bin_counts():
    v, lab = np.ones(2), np.zeros(2, np.int64)
    with pytest.raises(ValueError, match=r"num_classes must be in \[1, 2\*\*24"):
        _core.risk_ranges(v, lab, v, lab, 2**40, False)
    wide = np.broadcast_to(np.arange(2.0**16 + 2), (1, 2**16 + 2))  # 2**16 + 1 bins
    with pytest.raises(ValueError, match="edges has 65537 bins"):
        _core.risk_histograms(v, lab, v, lab, np.ascontiguousarray(wide), None, False, False)
    with pytest.raises(ValueError, match="edges has 65537 bins"):
        _core.risk_scores(v, lab, np.ascontiguousarray(wide), np.zeros((1, 2**16 + 1)), np.zeros((1, 2**16 + 1)),
                          0.5, False)


def test_linear_edges_that_overflow_are_refused():
    # max - min = 2e308 is beyond float64: np.linspace would give NaN edges.
    with pytest.raises(ValueError, match="values_in and values_out span .*too wide"):
        ClassHistograms.fit([-1e308, 1.0], [0, 0], [1e308], [0], 1, log_bins=False)
    h = ClassHistograms.fit([-1e307, 1.0], [0, 0], [1e307], [0], 1, log_bins=False)
    assert np.all(np.isfinite(h.edges))


def test_core_checks_arrays_itself():
    v, lab = np.arange(1.0, 5.0), np.zeros(4, np.int64)
    edges = np.array([[1.0, 2.0, 4.0]])
    h = np.array([[0.5, 0.5]])
    with pytest.raises(ValueError, match="edges must be non-decreasing"):
        _core.risk_histograms(v, lab, v, lab, edges[:, ::-1].copy(), None, False, False)
    with pytest.raises(ValueError, match="edges must be 2-D"):
        _core.risk_scores(v, lab, edges.ravel(), h, h, 0.5, False)
    with pytest.raises(ValueError, match="pooled_edges has the wrong shape"):
        _core.risk_histograms(v, lab, v, lab, edges, np.ones(2), False, False)
    with pytest.raises(ValueError, match="h_out has the wrong shape"):
        _core.risk_scores(v, lab, edges, h, np.ones((1, 3)), 0.5, False)
    with pytest.raises(ValueError, match="h_in must be non-negative"):
        _core.risk_scores(v, lab, edges, -h, h, 0.5, False)
    with pytest.raises(ValueError, match="pooled_edges must be given"):
        _core.risk_histograms(v, lab, v, np.ones(4, np.int64), np.ones((2, 3)), None, False, False)
    with pytest.raises(ValueError, match="values must be C-contiguous"):
        _core.risk_scores(np.arange(8.0)[::2], lab, edges, h, h, 0.5, False)
    with pytest.raises(ValueError, match="values_out must have the same dtype"):
        _core.risk_ranges(v, lab, v.astype(np.float32), lab, 1, True)


# ---- property test ---------------------------------------------------------

DTYPES = [np.float32, np.float64, np.int64, np.bool_, np.complex128, object]


def arrays_of_any_dtype(max_size):
    floats = st.floats(allow_nan=True, allow_infinity=True, width=32) | st.sampled_from([0.0, 1e-10, 1e-11])
    return st.sampled_from(DTYPES).flatmap(
        lambda dt: hnp.arrays(
            dt,
            hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=max_size),
            elements=floats if dt in (np.float32, np.float64, object) else None,
        )
    )


def acceptable(a):
    if a.ndim != 1 or a.dtype == object or np.iscomplexobj(a) or a.size == 0:
        return False
    return bool(np.all(np.isfinite(a.astype(np.float64))))


@settings(max_examples=120, deadline=None)
@given(arrays_of_any_dtype(10), arrays_of_any_dtype(10), arrays_of_any_dtype(4), st.integers(1, 6), st.booleans())
def test_property(values_in, values_out, target, bins, log_bins):
    lin, lout = np.arange(values_in.size) % 2, np.arange(values_out.size) % 2
    if not (acceptable(values_in) and acceptable(values_out)):
        with pytest.raises(ValueError):
            ClassHistograms.fit(values_in, lin, values_out, lout, 2, bins=bins, log_bins=log_bins)
        return
    h = ClassHistograms.fit(values_in, lin, values_out, lout, 2, bins=bins, log_bins=log_bins)
    if not acceptable(target):
        with pytest.raises(ValueError):
            h.member_probability(target, np.zeros(target.size, int))
        return
    dtype = np.result_type(
        *(a.dtype if a.dtype in (np.float32, np.float64) else np.float64 for a in (values_in, values_out))
    )
    vin, vout = values_in.astype(dtype), values_out.astype(dtype)
    fitted = fit_class_histograms(vin, lin, vout, lout, 2, bins, log_bins)
    assert_fit_equals(h, fitted)
    t = target.astype(target.dtype if target.dtype in (np.float32, np.float64) else np.float64)
    expected = risk_scores(fitted, t, np.zeros(t.size, int))
    np.testing.assert_array_equal(h.member_probability(target, np.zeros(target.size, int)), expected)


# ---- CUDA ------------------------------------------------------------------

needs_cuda = pytest.mark.skipif(not cuda_available(), reason="no CUDA build of tfmia._core or no visible CUDA device")


@needs_cuda
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("log_bins", [True, False])
def test_cuda_equals_cpu(dtype, log_bins):
    rng = np.random.default_rng(5)
    vin, lin, vout, lout = shadow(rng, 200_000, 90_000, 7)
    lin[lin == 6] = 0  # class 6: no members, pooled histograms
    vin, vout = vin.astype(dtype), vout.astype(dtype)
    cpu = ClassHistograms.fit(vin, lin, vout, lout, 7, log_bins=log_bins)
    gpu = ClassHistograms.fit(vin, lin, vout, lout, 7, log_bins=log_bins, device="cuda")
    for field in ("edges", "h_in", "h_out", "fallback"):
        np.testing.assert_array_equal(getattr(gpu, field), getattr(cpu, field))
    v, lab = targets(rng, 7, 100_000)
    for prior in (0.5, 0.1):
        np.testing.assert_array_equal(
            cpu.member_probability(v, lab, member_prior=prior, device="cuda"),
            cpu.member_probability(v, lab, member_prior=prior),
        )
