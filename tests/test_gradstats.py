"""tfmia.gradstats against numpy and scipy.stats on the concatenated vectors."""

import threading
import warnings

import numpy as np
import pytest
import scipy.stats
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tfmia import _core
from tfmia._device import cuda_available
from tfmia.gradstats import COLUMNS, GradientStats


def reference(g):
    """The seven statistics of each row of g, computed on the whole rows in float64.

    Skewness and kurtosis are shift invariant, so scipy gets them from g minus
    each row's first value (exact when values are close, harmless otherwise):
    on values spread over a few parts in 1e10 of their mean, scipy's own mean
    would round away the spread.  The NaN rule is scipy's, m2 <= (eps mean)^2
    with the unshifted mean.
    """
    g = np.asarray(g, dtype=np.float64)
    a = np.abs(g)
    shifted = g - g[:, :1]
    mean = g.mean(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # scipy's precision-loss note for constant rows
        skew = scipy.stats.skew(shifted, axis=1)
        kurt = scipy.stats.kurtosis(shifted, axis=1)
    constant = shifted.var(axis=1) <= (np.finfo(np.float64).eps * mean) ** 2
    skew[constant] = kurt[constant] = np.nan
    return np.column_stack([a.sum(1), np.sqrt((g * g).sum(1)), a.min(1), a.max(1), mean, skew, kurt])


def accumulate(g, bounds, **kwargs):
    """GradientStats fed with the column ranges of g between consecutive bounds."""
    stats = GradientStats(len(g), **kwargs)
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        stats.update(g[:, lo:hi])
    return stats


def assert_stats_close(got, ref, rtol=1e-12, shape_atol=1e-11):
    """Sums, extremes and mean to rtol (mean also to rtol of the values' scale);
    skewness and kurtosis, dimensionless, to rtol or shape_atol."""
    assert got.shape == ref.shape and got.dtype == np.float64
    scale = ref[:, 3:4]  # max |g| per row
    np.testing.assert_allclose(got[:, :4], ref[:, :4], rtol=rtol, atol=0, err_msg="l1, l2, min_abs, max_abs")
    assert np.all(np.abs(got[:, 4] - ref[:, 4]) <= rtol * (np.abs(ref[:, 4]) + scale[:, 0])), "mean"
    np.testing.assert_allclose(got[:, 5:], ref[:, 5:], rtol=rtol, atol=shape_atol, err_msg="skewness, kurtosis")


# ---- agreement with the reference ----------------------------------------------------


@pytest.mark.parametrize(
    "p, bounds",
    [
        (1, [0, 1]),
        (2, [0, 1, 2]),
        (10, [0, 10]),
        (1000, [0, 1, 2, 500, 999, 1000]),
        (70_000, [0, 3, 20_000, 20_001, 70_000]),
    ],
)
def test_matches_scipy_on_the_concatenation(p, bounds):
    rng = np.random.default_rng(p)
    g = rng.standard_t(5, size=(6, p)) * rng.uniform(0.1, 3, size=(6, 1)) + rng.normal(size=(6, 1))
    got = accumulate(g, bounds).finalize()
    if p <= 2:
        assert np.all(np.isnan(got[:, 5:])) == (p == 1)
    assert_stats_close(got, reference(g))


def test_chunks_of_wildly_different_scale():
    rng = np.random.default_rng(1)
    parts = [rng.normal(scale=1e-8, size=(4, 3000)), rng.normal(loc=5e3, scale=1e4, size=(4, 17)),
             rng.exponential(1e-3, size=(4, 50_000)), rng.normal(loc=-2e4, scale=1.0, size=(4, 1))]
    g = np.concatenate(parts, axis=1)
    bounds = np.cumsum([0] + [q.shape[1] for q in parts])
    assert_stats_close(accumulate(g, bounds).finalize(), reference(g))


def test_large_common_offset():
    # 1e6 + N(0, 1): raw power sums would cancel 24 digits; shifting back is exact,
    # so scipy on (g - offset) is an accurate reference for the shape statistics.
    rng = np.random.default_rng(2)
    offset = 1e6
    g = offset + rng.standard_gamma(2.0, size=(3, 40_000))
    got = accumulate(g, [0, 10_000, 10_001, 40_000]).finalize()
    ref = reference(g)
    ref[:, 5:] = reference(g - offset)[:, 5:]
    assert_stats_close(got, ref, rtol=1e-10, shape_atol=1e-9)


def test_float32_chunks_equal_scipy_in_float64():
    rng = np.random.default_rng(3)
    g = rng.normal(size=(5, 3001)).astype(np.float32)
    got = accumulate(g, [0, 1000, 3001]).finalize()
    assert_stats_close(got, reference(g.astype(np.float64)))


def test_trailing_dimensions_are_flattened():
    rng = np.random.default_rng(4)
    kernel = rng.normal(size=(3, 3, 3, 2, 4))
    bias = rng.normal(size=(3, 4))
    stats = GradientStats(3)
    stats.update(kernel)
    stats.update(bias)
    stats.update(np.arange(3.0))  # one element per row
    assert stats.count == 3 * 2 * 4 * 3 + 4 + 1
    g = np.concatenate([kernel.reshape(3, -1), bias, np.arange(3.0)[:, None]], axis=1)
    assert_stats_close(stats.finalize(), reference(g))


def test_integer_and_bool_chunks_are_converted():
    g = np.array([[1, -2, 3, 0], [4, 4, 4, 5]])
    stats = GradientStats(2)
    stats.update(g[:, :2])
    stats.update(g[:, 2:].astype(np.int8))
    stats.update(np.array([[True], [False]]))
    assert_stats_close(stats.finalize(), reference(np.column_stack([g, [1, 0]])))


def test_few_rows_with_huge_chunks_and_many_rows_with_small_chunks():
    rng = np.random.default_rng(5)
    big = rng.laplace(size=(3, 300_001))
    assert_stats_close(accumulate(big, [0, 150_000, 300_001]).finalize(), reference(big))
    many = rng.normal(size=(20_000, 12))
    assert_stats_close(accumulate(many, [0, 5, 12]).finalize(), reference(many))


def test_constant_rows_follow_scipy():
    g = np.array([[0.1] * 7, [0.0] * 7, [-3e8] * 7, [1.0] * 6 + [1.0 + 2e-15]])
    got = accumulate(g, [0, 3, 7]).finalize()
    ref = reference(g)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    assert np.all(np.isnan(got[:3, 5:]))  # constant: NaN as scipy
    np.testing.assert_allclose(got[:, :5], ref[:, :5], rtol=1e-15)
    # Row 3 spreads over 9 ulps of its mean, above scipy's (eps * mean)^2: a number.
    # Six equal values and one other have skewness 5 / sqrt(6) and excess kurtosis 13 / 6.
    np.testing.assert_allclose(got[3, 5:], [5 / np.sqrt(6), 13 / 6], rtol=1e-13)


def test_count_and_repeated_finalize():
    rng = np.random.default_rng(6)
    g = rng.normal(size=(2, 30))
    stats = GradientStats(2)
    stats.update(g[:, :10])
    first = stats.finalize()
    assert_stats_close(first, reference(g[:, :10]))
    np.testing.assert_array_equal(stats.finalize(), first)
    stats.update(g[:, 10:])
    assert stats.count == 30 and stats.n == 2
    assert_stats_close(stats.finalize(), reference(g))
    assert repr(stats) == "GradientStats(n=2, count=30)"
    assert GradientStats.COLUMNS == COLUMNS == ("l1", "l2", "min_abs", "max_abs", "mean", "skewness", "kurtosis")


@pytest.mark.parametrize("scale", [1e200, 1e-200, 2.0**1000, 2.0**-1000, 1e304, 1e-310])
def test_statistics_of_huge_and_tiny_gradients_scale(scale):
    # l1, l2, min_abs, max_abs and mean of scale * v are scale times those of v;
    # skewness and kurtosis are scale-invariant.  Raw squares or fourth powers
    # of these values overflow (1e200) or underflow (1e-200) float64.
    rng = np.random.default_rng(11)
    v = rng.standard_t(5, size=(3, 5000)) + rng.normal(size=(3, 1))
    v /= np.abs(v).max(axis=1, keepdims=True)  # |v| <= 1: scale * v stays finite
    ref = reference(v)
    ref[:, :5] *= scale
    got = accumulate(v * scale, [0, 1, 1000, 5000]).finalize()
    tiny = scale < 1e-300  # subnormal values keep about log2(|x| / 5e-324) bits
    rtol = 1e-3 if tiny else 1e-12
    np.testing.assert_allclose(got[:, [0, 1, 3]], ref[:, [0, 1, 3]], rtol=rtol)
    assert np.all(np.abs(got[:, 4] - ref[:, 4]) <= rtol * ref[:, 3]), "mean"
    if not tiny:
        np.testing.assert_allclose(got[:, 5:], ref[:, 5:], rtol=1e-10)


def test_chunks_far_apart_in_scale_merge():
    # One row 1e-300, 1e300 and exact zeros in separate chunks, another the same
    # in one chunk: the sums follow the largest values, the small ones still count.
    rng = np.random.default_rng(12)
    v = rng.normal(size=(2, 300))
    g = np.concatenate([v * 1e-300, np.zeros((2, 7)), v * 1e300, v], axis=1)
    got = accumulate(g, [0, 300, 307, 607, 907]).finalize()
    whole = accumulate(g, [0, 907]).finalize()
    np.testing.assert_allclose(got, whole, rtol=1e-12)
    h = g / 1e300  # the statistics of g in units of 1e300 (the 1e-300 part is 1e-600: zero either way)
    ref = reference(h)
    ref[:, :5] *= 1e300
    ref[:, 2] = np.abs(g).min(axis=1)
    np.testing.assert_allclose(got[:, [0, 1, 2, 3]], ref[:, [0, 1, 2, 3]], rtol=1e-12)
    np.testing.assert_allclose(got[:, 5:], ref[:, 5:], rtol=1e-10)
    tiny_only = accumulate(np.concatenate([np.zeros((2, 5)), v * 1e-300], axis=1), [0, 5, 305]).finalize()
    ref_tiny = reference(np.concatenate([np.zeros((2, 5)), v], axis=1))
    ref_tiny[:, :5] *= 1e-300
    np.testing.assert_allclose(tiny_only, ref_tiny, rtol=1e-10)


def test_norms_beyond_float64_come_back_as_inf_with_a_warning():
    g = np.array([[1e200, -1e200], [1.7e308, 1.7e308]])
    stats = accumulate(g, [0, 1, 2])
    with pytest.warns(RuntimeWarning, match=r"rows \[1\] exceeds the float64 range"):
        got = stats.finalize()
    np.testing.assert_allclose(got[0], [2e200, np.sqrt(2) * 1e200, 1e200, 1e200, 0.0, 0.0, -2.0], rtol=1e-15)
    assert np.isinf(got[1, :2]).all()
    np.testing.assert_array_equal(got[1, 2:5], 1.7e308)
    assert np.isnan(got[1, 5:]).all()  # constant row


def test_threads_sharing_one_accumulator_lose_nothing():
    # update() releases the GIL in the core; without the lock two threads folded
    # their chunks into the same count and overwrote each other's rows.
    rng = np.random.default_rng(13)
    chunks = [rng.normal(loc=i, size=(4, 20_000)) for i in range(24)]
    shared = GradientStats(4)
    barrier = threading.Barrier(4)

    def worker(k):
        barrier.wait()
        for chunk in chunks[k::4]:
            shared.update(chunk)
            shared.finalize()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert shared.count == 24 * 20_000
    # The order of the chunks differs from run to run: the same statistics up to rounding.
    assert_stats_close(shared.finalize(), reference(np.concatenate(chunks, axis=1)), rtol=1e-11, shape_atol=1e-10)


def test_n_alone_allocates_nothing():
    stats = GradientStats(2**62)  # the state would take 2**62 * 80 bytes
    assert stats.n == 2**62 and stats.count == 0
    with pytest.raises(ValueError, match=r"chunk must have shape \(n, ...\) with n=4611686018427387904"):
        stats.update(np.ones((2, 3)))


@pytest.mark.parametrize("isa", ["avx512", "avx2", "avx_fma", "baseline"])
def test_every_instruction_set_agrees(isa):
    previous = _core._row_isa()
    try:
        _core._row_isa(isa)
    except ValueError:
        pytest.skip(f"this CPU or build has no {isa} kernels")
    try:
        rng = np.random.default_rng(7)
        g = rng.normal(loc=2.0, size=(5, 5003))
        assert_stats_close(accumulate(g, [0, 7, 5003]).finalize(), reference(g))
    finally:
        _core._row_isa(previous)


# ---- bad input ------------------------------------------------------------------------


def test_finalize_before_update_raises():
    with pytest.raises(ValueError, match="update"):
        GradientStats(3).finalize()


@pytest.mark.parametrize("n", [0, -2, 2.5, True, "3", None])
def test_bad_n(n):
    with pytest.raises(ValueError, match="n must be"):
        GradientStats(n)


def test_bad_device():
    with pytest.raises(ValueError, match="device"):
        GradientStats(2, device="gpu")


@pytest.mark.parametrize(
    "chunk, match",
    [
        (np.ones((3, 4)), "chunk must have shape"),
        (np.ones(3), "chunk must have shape"),
        (np.float64(1.0), "chunk"),
        (np.ones((2, 0)), "chunk must not be empty"),
        (np.ones((2, 2), dtype=complex), "chunk must be a real numeric array"),
        (np.array([[None, 1.0], [1.0, 1.0]], dtype=object), "chunk"),
        (np.array([[1.0, np.nan], [1.0, 2.0]]), r"chunk contains NaN or Inf \(first in row 0\)"),
        (np.array([[1.0, 2.0], [np.inf, 2.0]], dtype=np.float32), r"chunk.*row 1"),
        ([[1.0, 2.0], [3.0]], "chunk"),
    ],
)
def test_bad_chunk(chunk, match):
    stats = GradientStats(2)
    stats.update(np.array([[1.0, 5.0], [2.0, 2.5]]))
    before = stats.finalize()
    with pytest.raises(ValueError, match=match):
        stats.update(chunk)
    assert stats.count == 2
    np.testing.assert_array_equal(stats.finalize(), before)  # a failed update changes nothing


@pytest.mark.parametrize(
    "state, count, chunk, match",
    [
        (np.zeros((2, 10), dtype=np.float32), 0, np.ones((2, 3)), "state must be float64"),
        (np.zeros((2, 8)), 0, np.ones((2, 3)), "state must have 10 columns"),
        (np.zeros((10, 2)).T, 0, np.ones((2, 3)), "state must be C-contiguous"),
        (np.zeros((2, 10)), -1, np.ones((2, 3)), r"count must be in \[0, 2\*\*53\]"),
        (np.zeros((2, 10)), 0, np.ones(3), "chunk must be 2-D"),
        (np.zeros((2, 10)), 0, np.ones((3, 3)), "chunk has 3 rows, expected n=2"),
        (np.zeros((2, 10)), 0, np.ones((2, 3), dtype=np.int32), "chunk must be a float32 or float64"),
        (np.zeros((2, 10)), 0, np.ones((3, 2)).T, "chunk must be C-contiguous"),
    ],
)
def test_core_rejects_bad_arrays_directly(state, count, chunk, match):
    with pytest.raises(ValueError, match=match):
        _core.gradstats_update(state, count, chunk)


def test_core_finalize_rejects_bad_state_and_zero_count():
    with pytest.raises(ValueError, match="count"):
        _core.gradstats_finalize(np.zeros((2, 10)), 0)
    with pytest.raises(ValueError, match="state must be float64"):
        _core.gradstats_finalize(np.zeros((2, 10), dtype=np.float32), 3)


# ---- property test ------------------------------------------------------------------------


@st.composite
def chunk_sequences(draw):
    n = draw(st.integers(1, 5))
    sizes = draw(st.lists(st.integers(0, 40), min_size=1, max_size=4))
    dtype = draw(st.sampled_from([np.float64, np.float32, np.int32, np.bool_, np.complex64, object]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from([1e-6, 1.0, 1e5]))
    offset = draw(st.sampled_from([0.0, 3.0, -1e4]))
    special = draw(st.sampled_from([None, None, np.nan, np.inf, -np.inf]))
    rows = draw(st.sampled_from([n, n, n, n + 1]))
    chunks = []
    for size in sizes:
        c = offset + scale * rng.standard_normal((rows, size))
        if special is not None and c.size and draw(st.booleans()):
            c[rng.integers(0, rows), rng.integers(0, size)] = special
        with np.errstate(invalid="ignore"):
            chunks.append(c.astype(dtype))
    return n, chunks


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunk_sequences())
def test_property_reference_or_value_error(args):
    n, chunks = args
    stats = GradientStats(n)
    accepted = []
    for c in chunks:
        why = None
        if c.dtype.kind not in "fiub":
            why = "chunk must be a real numeric array"
        elif c.size == 0:
            why = "chunk must not be empty"
        elif c.shape[0] != n:
            why = "chunk must have shape"
        elif not np.all(np.isfinite(c.astype(np.float64))):
            why = "chunk contains NaN or Inf"
        if why is None:
            stats.update(c)
            accepted.append(c.astype(np.float64))
        else:
            with pytest.raises(ValueError, match=why):
                stats.update(c)
    if not accepted:
        with pytest.raises(ValueError, match="update"):
            stats.finalize()
        return
    g = np.concatenate(accepted, axis=1)
    got = stats.finalize()
    ref = reference(g)
    # Rows whose variance is within rounding of scipy's zero-variance threshold may fall either way.
    threshold = (np.finfo(np.float64).eps * g.mean(axis=1)) ** 2
    keep = np.abs((g - g[:, :1]).var(axis=1) - threshold) > 1e-3 * threshold
    assert_stats_close(got[keep], ref[keep], rtol=1e-9, shape_atol=1e-7)
    np.testing.assert_allclose(got[:, :5], ref[:, :5], rtol=1e-9, atol=1e-9 * np.abs(g).max())


# ---- CUDA ----------------------------------------------------------------------------------


@pytest.mark.skipif(not cuda_available(), reason="needs a CUDA build of tfmia and a visible GPU")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n, bounds", [(1, [0, 1]), (7, [0, 5, 40_000, 40_031]), (3000, [0, 3, 100])])
def test_cuda_matches_cpu(dtype, n, bounds):
    rng = np.random.default_rng(n)
    g = (rng.standard_t(4, size=(n, bounds[-1])) + 5.0).astype(dtype)
    cpu = accumulate(g, bounds, device="cpu").finalize()
    gpu = accumulate(g, bounds, device="cuda").finalize()
    np.testing.assert_array_equal(np.isnan(gpu), np.isnan(cpu))
    ok = ~np.isnan(cpu)
    np.testing.assert_allclose(gpu[ok], cpu[ok], rtol=1e-11, atol=1e-12)


@pytest.mark.skipif(not cuda_available(), reason="needs a CUDA build of tfmia and a visible GPU")
def test_cuda_rejects_nan_and_keeps_state():
    stats = GradientStats(3, device="cuda")
    stats.update(np.ones((3, 4)))
    bad = np.ones((3, 100))
    bad[2, 50] = np.nan
    with pytest.raises(ValueError, match="row 2"):
        stats.update(bad)
    assert stats.count == 4
