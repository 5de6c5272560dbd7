"""tfmia.thresholds against a brute-force oracle of the balanced-accuracy rule (tests/oracles.py), bit for bit."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tfmia import _core
from tfmia._device import cuda_available
from tfmia.thresholds import (
    ClassThresholds,
    apply_thresholds,
    best_threshold,
    class_thresholds,
    fit_class_thresholds,
)
from oracles import balanced_accuracy, per_class_thresholds, threshold_by_counting, threshold_by_enumeration

ROOT = Path(__file__).resolve().parent.parent


def same_float(a, b):
    """Equal as floats, including the sign of zero."""
    return a == b and np.signbit(a) == np.signbit(b)


def ties(rng, n, dtype):
    return rng.integers(0, 4, n).astype(dtype)


CASES = {
    "random": lambda rng, n, dt: rng.normal(rng.random(), size=n).astype(dt),
    "ties": ties,
    "all_equal": lambda rng, n, dt: np.full(n, 0.25, dtype=dt),
    "tiny_spread": lambda rng, n, dt: (1 + rng.integers(0, 3, n) * np.finfo(dt).eps).astype(dt),
    "signed_zeros": lambda rng, n, dt: rng.choice(np.array([-0.0, 0.0, 1.0, -1.0], dtype=dt), n),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", sorted(CASES))
def test_best_threshold_equals_reference(case, dtype):
    rng = np.random.default_rng(sorted(CASES).index(case))
    for n_in, n_out in [(1, 1), (1, 7), (9, 1), (40, 60), (300, 200)]:
        tr, te = CASES[case](rng, n_in, dtype), CASES[case](rng, n_out, dtype)
        got = best_threshold(tr, te)
        assert same_float(got, threshold_by_enumeration(tr, te)), (case, n_in, n_out)


def test_tied_maximisers_resolve_to_first_in_concatenation_order():
    # Equal class sizes make exact ties of the balanced accuracy common; the
    # answer is then the first tied value met, not the smallest or largest.
    rng = np.random.default_rng(12)
    exercised = 0
    for _ in range(200):
        tr, te = rng.integers(0, 8, 6).astype(float), rng.integers(0, 8, 6).astype(float)
        values = np.concatenate((tr, te))
        acc = np.array([balanced_accuracy(tr, te, t) for t in values])
        tied = np.unique(values[acc == acc.max()])
        expected = threshold_by_enumeration(tr, te)
        exercised += len(tied) > 1 and expected not in (tied[0], tied[-1])
        assert best_threshold(tr, te) == expected
    assert exercised >= 5


def test_large_tie_heavy_inputs():
    # > 2**14 values per class side (the LSD radix path) and > 2**18 in all
    # (the multi-threaded path).
    rng = np.random.default_rng(3)
    tr = np.round(rng.normal(1, 1, 160_000), 2)
    te = np.round(rng.normal(0, 1, 140_000), 2)
    assert best_threshold(tr, te) == threshold_by_counting(tr, te)
    lin, lout = rng.integers(0, 5, tr.size), rng.integers(0, 5, te.size)
    expected = per_class_thresholds(tr, lin, te, lout, 5, rule=threshold_by_counting)
    np.testing.assert_array_equal(class_thresholds(tr, lin, te, lout, 5), expected)


def test_counting_oracle_agrees_with_enumeration():
    rng = np.random.default_rng(4)
    for _ in range(20):
        tr, te = ties(rng, 30, float), ties(rng, 25, float)
        assert threshold_by_counting(tr, te) == threshold_by_enumeration(tr, te)


def test_mixed_precision_compares_in_float64():
    rng = np.random.default_rng(5)
    tr = rng.random(50).astype(np.float32)
    te = rng.random(50)
    assert best_threshold(tr, te) == threshold_by_enumeration(tr, te)


def test_integer_and_bool_values():
    tr = np.array([3, 5, 5, 9])
    te = np.array([1, 3, 4])
    assert best_threshold(tr, te) == threshold_by_enumeration(tr.astype(float), te.astype(float))
    assert best_threshold([True, True], [False, True]) == 1.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_class_thresholds_equal_the_per_class_oracle(dtype):
    rng = np.random.default_rng(6)
    num_classes = 7
    vin = np.round(rng.normal(1, 1, 400), 1).astype(dtype)
    vout = np.round(rng.normal(0, 1, 300), 1).astype(dtype)
    lin, lout = rng.integers(0, num_classes, 400), rng.integers(0, num_classes, 300)
    expected = per_class_thresholds(vin, lin, vout, lout, num_classes)
    np.testing.assert_array_equal(class_thresholds(vin, lin, vout, lout, num_classes), expected)


def test_fallback_for_class_without_members_or_non_members():
    rng = np.random.default_rng(7)
    vin, vout = rng.normal(1, 1, 200), rng.normal(0, 1, 200)
    lin = rng.integers(0, 3, 200)  # class 3: no members
    lout = rng.integers(1, 4, 200)  # class 0: no non-members; class 4: nothing at all
    fit = fit_class_thresholds(vin, lin, vout, lout, 5)
    glob = threshold_by_enumeration(vin, vout)
    assert fit.global_threshold == glob
    np.testing.assert_array_equal(fit.fallback, [True, False, False, True, True])
    np.testing.assert_array_equal(fit.thresholds, per_class_thresholds(vin, lin, vout, lout, 5))
    assert np.all(fit.thresholds[fit.fallback] == glob)
    np.testing.assert_array_equal(class_thresholds(vin, lin, vout, lout, 5), fit.thresholds)


@pytest.mark.parametrize("num_classes", [4002, 2**20])
def test_labels_spread_over_a_huge_class_range(num_classes):
    # Few records with labels far apart: the core renumbers the classes the labels
    # hold (its per-class memory follows the data); every other class falls back.
    rng = np.random.default_rng(13)
    present = np.array([0, 3, 4000, num_classes - 1])
    vin, vout = np.round(rng.normal(1, 1, 60), 1), np.round(rng.normal(0, 1, 50), 1)
    lin, lout = rng.choice(present, 60), rng.choice(present[1:], 50)  # class 0: members only
    fit = fit_class_thresholds(vin, lin, vout, lout, num_classes)
    assert fit.thresholds.shape == fit.fallback.shape == (num_classes,)
    expected = {c: threshold_by_enumeration(vin[lin == c], vout[lout == c]) for c in present[1:]}
    got = {c: fit.thresholds[c] for c in present[1:]}
    assert got == expected
    assert np.flatnonzero(~fit.fallback).tolist() == present[1:].tolist()
    assert np.all(fit.thresholds[fit.fallback] == threshold_by_enumeration(vin, vout))
    assert np.isnan(fit.balanced_accuracy[fit.fallback]).all()


@pytest.mark.parametrize("num_classes", [2**24 + 1, 2**31, 2**62])
def test_class_counts_beyond_the_table_limit_are_refused(num_classes):
    with pytest.raises(ValueError, match=r"num_classes.*2\*\*24"):
        fit_class_thresholds([0.0], [0], [1.0], [0], num_classes)
    one = np.zeros(1, np.int64)
    with pytest.raises(ValueError, match=r"num_classes must be in \[1, 2\*\*24"):
        _core.fit_thresholds(np.zeros(1), one, np.ones(1), one, num_classes, False, False)


def test_declared_classes_cost_only_the_outputs():
    # 4 records declaring 2**22 classes: the outputs take 17 bytes a class (two
    # float64 arrays and a bool array); per-class working memory must not add
    # to that (it took about 145 bytes a class, 600 MB here).  A fresh
    # interpreter gets 40 bytes a class of address space beyond what it holds.
    script = """
import resource
from tfmia.thresholds import fit_class_thresholds
C = 2**22
with open("/proc/self/status") as status:
    held = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (held + 40 * C, resource.RLIM_INFINITY))
fit = fit_class_thresholds([0.0, 1.0], [0, C - 1], [1.0, 2.0], [0, C - 1], C)
assert fit.fallback.sum() == C - 2 and fit.thresholds[C - 1] == 1.0
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MALLOC_ARENA_MAX": "1"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]


def balanced_accuracy(tr, te, t):
    return 0.5 * (np.sum(tr >= t) / (len(tr) + 0.0) + np.sum(te < t) / (len(te) + 0.0))


def test_fit_reports_balanced_accuracy_and_is_frozen():
    rng = np.random.default_rng(8)
    vin, vout = rng.normal(1, 1, 300), rng.normal(0, 1, 300)
    lin, lout = rng.integers(0, 2, 300), rng.integers(0, 3, 300)  # class 2: no members
    fit = fit_class_thresholds(vin, lin, vout, lout, 3)
    for c in range(2):
        tr, te = vin[lin == c], vout[lout == c]
        assert fit.balanced_accuracy[c] == balanced_accuracy(tr, te, fit.thresholds[c])
    assert np.isnan(fit.balanced_accuracy[2])
    assert fit.global_balanced_accuracy == balanced_accuracy(vin, vout, fit.global_threshold)
    assert isinstance(fit, ClassThresholds)
    with pytest.raises(AttributeError):
        fit.global_threshold = 0.0
    with pytest.raises(ValueError):
        fit.thresholds[0] = 0.0


def test_apply_thresholds():
    rng = np.random.default_rng(9)
    values = rng.normal(size=100).astype(np.float32)
    labels = rng.integers(0, 3, 100)
    thresholds = np.array([-0.5, 0.0, 0.5])
    np.testing.assert_array_equal(apply_thresholds(values, labels, thresholds), values >= thresholds[labels])
    fit = fit_class_thresholds(values, labels, values - 1, labels, 3)
    np.testing.assert_array_equal(fit.apply(values, labels), values >= fit.thresholds[labels])


# ---- bad input -------------------------------------------------------------


def good():
    return dict(
        values_in=np.array([1.0, 2.0, 3.0]),
        labels_in=np.array([0, 1, 1]),
        values_out=np.array([0.5, 1.5]),
        labels_out=np.array([0, 1]),
        num_classes=2,
    )


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(labels_in=np.array([0, 1, 2])), "labels_in"),
        (dict(labels_out=np.array([-1, 0])), "labels_out"),
        (dict(num_classes=0), "num_classes"),
        (dict(labels_in=np.array([0, 1])), "labels_in"),
        (dict(values_out=np.array([0.5, 1.5, 2.5])), "labels_out"),
        (dict(values_in=np.array([]), labels_in=np.array([], dtype=int)), "values_in"),
        (dict(values_out=np.array([]), labels_out=np.array([], dtype=int)), "values_out"),
        (dict(values_in=np.array([1.0, np.nan, 3.0])), "values_in"),
        (dict(values_out=np.array([np.inf, 1.5])), "values_out"),
        (dict(values_in=np.array([1 + 1j, 2, 3])), "values_in"),
        (dict(labels_in=np.array([0.5, 1, 1])), "labels_in"),
    ],
)
def test_class_thresholds_rejects(change, match):
    args = {**good(), **change}
    with pytest.raises(ValueError, match=match):
        class_thresholds(**args)


@pytest.mark.parametrize(
    "values_in, values_out, match",
    [
        ([], [1.0], "values_in"),
        ([1.0], [], "values_out"),
        ([np.nan], [1.0], "values_in"),
        ([1.0], [-np.inf], "values_out"),
        ([[1.0]], [1.0], "values_in"),
        (np.array(["a"]), [1.0], "values_in"),
    ],
)
def test_best_threshold_rejects(values_in, values_out, match):
    with pytest.raises(ValueError, match=match):
        best_threshold(values_in, values_out)


@pytest.mark.parametrize(
    "values, labels, thresholds, match",
    [
        ([1.0, np.nan], [0, 0], [0.0], "values"),
        ([1.0, 2.0], [0, 1], [0.0], "labels"),
        ([1.0, 2.0], [0], [0.0], "labels"),
        ([1.0], [0], [np.nan], "thresholds"),
        ([1.0], [0], [], "thresholds"),
    ],
)
def test_apply_thresholds_rejects(values, labels, thresholds, match):
    with pytest.raises(ValueError, match=match):
        apply_thresholds(values, labels, thresholds)


def test_core_checks_arrays_itself():
    vin, vout = np.arange(6.0), np.arange(3.0)
    with pytest.raises(ValueError, match="values_in must be C-contiguous"):
        _core.fit_thresholds(vin[::2], None, vout, None, 1, False, False)
    with pytest.raises(ValueError, match="values_out must have the same dtype"):
        _core.fit_thresholds(vin, None, vout.astype(np.float32), None, 1, False, False)
    with pytest.raises(ValueError, match="labels_in must be an int64 array"):
        _core.fit_thresholds(vin, vin, vout, vout, 1, False, False)
    with pytest.raises(ValueError, match="labels_in"):
        _core.fit_thresholds(vin, np.full(6, 5), vout, np.zeros(3, np.int64), 2, False, False)
    with pytest.raises(ValueError, match="values_in must be a float32 or float64"):
        _core.fit_thresholds(np.arange(3), None, vout, None, 1, False, False)
    with pytest.raises(ValueError, match="labels_in and labels_out"):
        _core.fit_thresholds(vin, np.zeros(6, np.int64), vout, None, 1, False, False)


# ---- property test ---------------------------------------------------------

DTYPES = st.sampled_from([np.float32, np.float64, np.int64, np.bool_, np.complex128, object])


def value_arrays():
    floats = st.floats(allow_nan=True, allow_infinity=True, width=32) | st.sampled_from([0.0, -0.0, 1.0])
    return DTYPES.flatmap(
        lambda dt: hnp.arrays(
            dt,
            hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=12),
            elements=floats if dt in (np.float32, np.float64, object) else None,
        )
    )


def acceptable(a):
    if a.ndim != 1 or a.dtype == object or np.iscomplexobj(a) or a.size == 0:
        return False
    return bool(np.all(np.isfinite(a.astype(np.float64))))


@settings(max_examples=150, deadline=None)
@given(value_arrays(), value_arrays())
def test_best_threshold_property(values_in, values_out):
    if not (acceptable(values_in) and acceptable(values_out)):
        with pytest.raises(ValueError):
            best_threshold(values_in, values_out)
        return
    dtype = np.result_type(
        *(a.dtype if a.dtype in (np.float32, np.float64) else np.float64 for a in (values_in, values_out))
    )
    tr, te = values_in.astype(dtype), values_out.astype(dtype)
    assert same_float(best_threshold(values_in, values_out), threshold_by_enumeration(tr, te))


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 4),
    hnp.arrays(np.float64, st.integers(1, 30), elements=st.sampled_from([0.0, 0.5, 1.0, 2.0])),
    hnp.arrays(np.float64, st.integers(1, 30), elements=st.sampled_from([0.0, 0.5, 1.0, 2.0])),
    st.randoms(use_true_random=False),
)
def test_class_thresholds_property(num_classes, vin, vout, random):
    lin = np.array([random.randrange(num_classes) for _ in vin])
    lout = np.array([random.randrange(num_classes) for _ in vout])
    expected = per_class_thresholds(vin, lin, vout, lout, num_classes)
    np.testing.assert_array_equal(class_thresholds(vin, lin, vout, lout, num_classes), expected)


# ---- CUDA ------------------------------------------------------------------

needs_cuda = pytest.mark.skipif(not cuda_available(), reason="no CUDA build of tfmia._core or no visible CUDA device")


@needs_cuda
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cuda_equals_cpu(dtype):
    rng = np.random.default_rng(10)
    vin = np.round(rng.normal(1, 1, 50_000), 2).astype(dtype)
    vout = np.round(rng.normal(0, 1, 40_000), 2).astype(dtype)
    lin, lout = rng.integers(0, 20, 50_000), rng.integers(1, 21, 40_000)
    assert best_threshold(vin, vout, device="cuda") == best_threshold(vin, vout)
    cpu = fit_class_thresholds(vin, lin, vout, lout, 22)
    gpu = fit_class_thresholds(vin, lin, vout, lout, 22, device="cuda")
    for field in ("thresholds", "fallback", "balanced_accuracy"):
        np.testing.assert_array_equal(getattr(gpu, field), getattr(cpu, field))
    assert gpu.global_threshold == cpu.global_threshold
