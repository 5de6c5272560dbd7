"""tfmia.bisection against a pure-numpy bisection loop and closed-form boundary distances."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.special import softmax

from tfmia import _core
from tfmia._device import cuda_available
from tfmia.bisection import BisectionState


def linear_model(weights, bias):
    """Class probabilities softmax(W x + b) of a linear model on flattened points."""

    def predict(points):
        flat = np.asarray(points, dtype=np.float64).reshape(len(points), -1)
        return softmax(flat @ weights.T + bias, axis=1)

    return predict


def numpy_bisection(x0, lo, hi, orig, predict, theta, max_steps):
    """The same bisection as a plain numpy loop over steps (the reference)."""
    dtype = x0.dtype if x0.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    n = len(x0)
    x0, lo, hi = (np.array(a, dtype=dtype).reshape(n, -1) for a in (x0, lo, hi))
    mid = ((lo.astype(np.float64) + hi) * 0.5).astype(dtype)
    active = np.ones(n, dtype=bool)
    converged = np.zeros(n, dtype=bool)
    distance = np.full(n, np.nan)
    steps = np.zeros(n, dtype=np.int64)
    while active.any():
        rows = np.flatnonzero(active)
        probs = np.asarray(predict(mid[rows]), dtype=np.float64)
        own = probs[np.arange(len(rows)), orig[rows]]
        others = probs.copy()
        others[np.arange(len(rows)), orig[rows]] = -np.inf
        gap = own - others.max(axis=1)
        steps[rows] += 1
        done = np.abs(gap) < theta
        r = rows[done]
        distance[r] = np.sqrt(((mid[r].astype(np.float64) - x0[r]) ** 2).sum(axis=1))
        converged[r] = True
        active[r] = False
        to_lo, to_hi = rows[~done & (gap > 0)], rows[~done & (gap <= 0)]
        lo[to_lo] = mid[to_lo]
        hi[to_hi] = mid[to_hi]
        moved = rows[~done]
        mid[moved] = ((lo[moved].astype(np.float64) + hi[moved]) * 0.5).astype(dtype)
        active[moved[steps[moved] >= max_steps]] = False
    return distance, steps, converged, lo, hi, mid


def two_class_problem(rng, n, d, along_normal):
    """Records of class 0 of a 2-class linear model, with hi across its boundary."""
    w = rng.normal(size=d)
    c = 0.3
    weights = np.stack([w, np.zeros(d)])
    bias = np.array([c, 0.0])
    x0 = rng.normal(size=(n, d))
    x0 += np.outer(np.maximum(0.0, 0.5 - (x0 @ w + c)), w) / (w @ w)  # w.x0 + c >= 0.5: class 0
    margin = x0 @ w + c
    if along_normal:
        direction = -np.tile(w / np.linalg.norm(w), (n, 1))
    else:
        direction = rng.normal(size=(n, d))
        direction -= np.outer(np.maximum(0.0, direction @ w + 0.5) / (w @ w), w)  # heads across the boundary
    slope = -(direction @ w)  # margin lost per unit step
    hi = x0 + direction * (2.0 * margin / slope)[:, None]
    return x0, hi, w, c, weights, bias


@pytest.mark.parametrize("along_normal", [True, False])
def test_two_class_linear_model_closed_form(along_normal):
    rng = np.random.default_rng(1)
    theta = 1e-4
    x0, hi, w, c, weights, bias = two_class_problem(rng, 50, 7, along_normal)
    predict = linear_model(weights, bias)
    state = BisectionState(x0, x0, hi, np.zeros(50, dtype=int), theta=theta)
    distance = state.run(predict)
    assert state.converged.all() and state.failures == 0
    # The boundary w.x + c = 0 meets the segment x0 + t (hi - x0) at t* = s0 / (s0 - s_hi).
    s0, s_hi = x0 @ w + c, hi @ w + c
    t_star = s0 / (s0 - s_hi)
    exact = t_star * np.linalg.norm(hi - x0, axis=1)
    if along_normal:
        np.testing.assert_allclose(exact, s0 / np.linalg.norm(w), rtol=1e-12)
    # Converged means |tanh(s / 2)| < theta, i.e. |s| < 2 artanh(theta): a bound on |t - t*|.
    tolerance = 2 * np.arctanh(theta) / np.abs(s0 - s_hi) * np.linalg.norm(hi - x0, axis=1)
    assert np.all(np.abs(distance - exact) <= tolerance)
    ref_distance, ref_steps, *_ = numpy_bisection(x0, x0, hi, np.zeros(50, dtype=int), predict, theta, 50)
    np.testing.assert_array_equal(state.steps, ref_steps)
    np.testing.assert_allclose(distance, ref_distance, rtol=1e-13)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_numpy_loop_with_three_classes(dtype):
    rng = np.random.default_rng(2)
    n, shape = 40, (2, 3, 2)
    weights = rng.normal(size=(3, 12))
    bias = rng.normal(size=3)
    predict = linear_model(weights, bias)
    x0 = rng.normal(size=(n,) + shape).astype(dtype)
    orig = predict(x0).argmax(axis=1)
    hi = (x0 + rng.normal(scale=4.0, size=x0.shape)).astype(dtype)
    crossed = predict(hi).argmax(axis=1) != orig
    x0, hi, orig = x0[crossed], hi[crossed], orig[crossed]
    state = BisectionState(x0, x0, hi, orig, theta=1e-3, max_steps=30)
    state.run(predict)
    distance, steps, converged, lo, hi_ref, mid = numpy_bisection(x0, x0, hi, orig, predict, 1e-3, 30)
    np.testing.assert_array_equal(state.steps, steps)
    np.testing.assert_array_equal(state.converged, converged)
    np.testing.assert_allclose(state.distance, distance, rtol=1e-12)
    np.testing.assert_array_equal(state._lo, lo)
    np.testing.assert_array_equal(state._hi, hi_ref)
    np.testing.assert_array_equal(state._mid, mid)
    assert state._mid.dtype == dtype


def test_single_update_by_hand():
    x0 = np.zeros((2, 2))
    state = BisectionState(x0, [[0.0, 0.0], [1.0, 1.0]], [[2.0, 0.0], [3.0, 1.0]], [0, 1], theta=0.1)
    np.testing.assert_array_equal(state.midpoints(), [[1.0, 0.0], [2.0, 1.0]])
    # record 0: gap 0.52 - 0.48 = 0.04 < 0.1, converged at distance |(1, 0)| = 1
    # record 1: original class 1, gap 0.8 - 0.2 > 0: still class 1, so lo moves to mid
    state.update([[0.52, 0.48], [0.2, 0.8]])
    np.testing.assert_array_equal(state.active, [False, True])
    np.testing.assert_array_equal(state.converged, [True, False])
    np.testing.assert_array_equal(state.distance, [1.0, np.nan])
    np.testing.assert_array_equal(state.steps, [1, 1])
    np.testing.assert_array_equal(state.midpoints(), [[2.5, 1.0]])
    # record 1 again: gap 0.1 - 0.9 < 0, crossed: hi moves to mid
    state.update(np.array([[0.9, 0.1]], dtype=np.float32))
    np.testing.assert_array_equal(state.midpoints(), [[2.25, 1.0]])
    np.testing.assert_array_equal(state._lo[1], [2.0, 1.0])
    np.testing.assert_array_equal(state._hi[1], [2.5, 1.0])
    np.testing.assert_array_equal(state.steps, [1, 2])


def test_step_budget_failures_are_reported():
    x0 = np.zeros((3, 4))
    state = BisectionState(x0, x0, np.ones((3, 4)), [0, 0, 1], theta=1e-6, max_steps=5)
    queried = []

    def far_from_boundary(points):
        queried.append(len(points))
        return np.tile([0.9, 0.1], (len(points), 1))

    distance = state.run(far_from_boundary)
    assert queried == [3] * 5
    assert state.failures == 3 and not state.converged.any() and not state.active.any()
    np.testing.assert_array_equal(state.steps, [5, 5, 5])
    assert np.all(np.isnan(distance))
    assert "failures=3" in repr(state)


def test_finished_records_are_not_queried():
    state = BisectionState(np.zeros((3, 1)), np.zeros((3, 1)), np.ones((3, 1)), [0, 0, 0], theta=0.1)
    state.update([[0.5, 0.5], [0.9, 0.1], [0.52, 0.48]])
    assert state.midpoints().shape == (1, 1)
    with pytest.raises(ValueError, match="mid_probs has 3 rows, expected one per active record"):
        state.update(np.tile([0.5, 0.5], (3, 1)))
    state.update([[0.5, 0.5]])
    assert not state.active.any()
    state.update(np.empty((0, 2)))  # nothing left: a no-op
    assert state.midpoints().shape == (0, 1)


def test_state_arrays_are_read_only():
    state = BisectionState(np.zeros((2, 1)), np.zeros((2, 1)), np.ones((2, 1)), [0, 1])
    for view in (state.active, state.converged, state.distance, state.steps):
        with pytest.raises(ValueError):
            view[0] = 1


# ---- bad input -------------------------------------------------------------------------------


X = np.zeros((2, 3))


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((X, X, X, [0, 0]), {"theta": 0.0}, "theta"),
        ((X, X, X, [0, 0]), {"theta": -1e-4}, "theta"),
        ((X, X, X, [0, 0]), {"theta": np.nan}, "theta"),
        ((X, X, X, [0, 0]), {"theta": "1e-4"}, "theta"),
        ((X, np.zeros((2, 4)), X, [0, 0]), {}, "lo has shape"),
        ((X, X, np.zeros((3, 3)), [0, 0]), {}, "hi has shape"),
        ((X, X, X, [0, 0, 0]), {}, "orig_class"),
        ((X, X, X, [0, -1]), {}, "orig_class"),
        ((X, X, X, [0, 0.5]), {}, "orig_class"),
        ((np.zeros(3), np.zeros(3), np.zeros(3), [0, 0, 0]), {}, "x0"),
        ((np.zeros((0, 3)), np.zeros((0, 3)), np.zeros((0, 3)), []), {}, "x0"),
        ((X.astype(complex), X, X, [0, 0]), {}, "x0"),
        ((X, X, X, [0, 0]), {"max_steps": 0}, "max_steps"),
        ((X, X, X, [0, 0]), {"device": "tpu"}, "device"),
    ],
)
def test_bad_construction(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        BisectionState(*args, **kwargs)


@pytest.mark.parametrize(
    "probs, match",
    [
        ([[0.5, np.nan], [0.5, 0.5]], r"mid_probs contains NaN or Inf \(first in row 0, record 0\)"),
        ([[0.5, 0.5], [np.inf, 0.5]], r"mid_probs.*row 1"),
        ([[0.5, 0.5]], "mid_probs has 1 rows"),
        ([0.5, 0.5], "mid_probs must be 2-D"),
        ([[0.5], [0.5]], "mid_probs must have at least 2 classes"),
        ([["a", "b"], ["c", "d"]], "mid_probs"),
        ([[2.0, -1.0], [0.5, 0.5]], r"mid_probs must hold class probabilities .* row 0 is \[2\.0, -1\.0\]"),
        ([[0.5, 0.5], [0.7, 0.7]], r"class probabilities .* row 1 .* not logits"),
        ([[0.5, 0.5], [1.25, 0.0]], r"class probabilities .* row 1"),
    ],
)
def test_bad_mid_probs_change_nothing(probs, match):
    state = BisectionState(X, X, np.ones((2, 3)), [0, 1])
    before = state.midpoints()
    with pytest.raises(ValueError, match=match):
        state.update(probs)
    np.testing.assert_array_equal(state.midpoints(), before)
    np.testing.assert_array_equal(state.steps, [0, 0])


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_softmax_rows_of_many_classes_pass_the_probability_check(dtype):
    """Rounded softmax rows may sum to a few ulps above 1; they are probabilities."""
    logits = np.random.default_rng(0).normal(scale=30.0, size=(2, 1000))
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True)).astype(dtype)
    probs = shifted / shifted.sum(axis=1, keepdims=True, dtype=dtype)
    state = BisectionState(X, X, np.ones((2, 3)), [0, 1])
    state.update(probs)
    np.testing.assert_array_equal(state.steps, [1, 1])


def test_orig_class_out_of_range_for_the_model():
    state = BisectionState(X, X, np.ones((2, 3)), [0, 2])
    with pytest.raises(ValueError, match=r"orig_class\[1\] = 2 is out of range for mid_probs with 2 classes"):
        state.update([[0.5, 0.5], [0.2, 0.8]])
    assert state.active.all() and not state.steps.any()


def scaled_norm(v):
    """||v||_2 of float64 rows without overflow or underflow: in units of each row's largest |v_j|."""
    s = np.abs(v).max(axis=1, keepdims=True)
    return s[:, 0] * np.sqrt(((v / np.where(s > 0, s, 1.0)) ** 2).sum(axis=1))


@pytest.mark.parametrize("scale", [1e300, 1e-300, 2.0**-1070])
def test_distances_and_midpoints_near_the_float64_limits(scale):
    # Coordinates whose sum, difference or squares leave the float64 range:
    # (lo + hi) / 2 and ||mid - x0||^2 must not overflow or underflow.
    rng = np.random.default_rng(31)
    x0 = -rng.uniform(0.5, 1.0, size=(4, 3)) * scale
    lo = rng.uniform(0.5, 1.0, size=(4, 3)) * scale
    hi = rng.uniform(0.5, 1.0, size=(4, 3)) * scale
    if scale > 1:
        lo[:, 0], hi[:, 0] = 1.7e308, 1.6e308  # lo + hi overflows: halves are added
    state = BisectionState(x0, lo, hi, [0] * 4, theta=0.5)
    with np.errstate(over="ignore"):
        expected_mid = np.where(np.isfinite(lo + hi), (lo + hi) * 0.5, lo * 0.5 + hi * 0.5)
    np.testing.assert_array_equal(state.midpoints(), expected_mid)
    state.update(np.full((4, 2), 0.5))  # gap 0 < theta: every record converges at mid
    assert state.converged.all()
    tolerance = 1e-15 if scale > 1e-308 else 1e-2  # subnormals carry few bits
    np.testing.assert_allclose(state.distance, scaled_norm(expected_mid - x0), rtol=tolerance)


def test_distance_beyond_float64_is_inf_with_a_warning():
    state = BisectionState([[-1.7e308]], [[1.7e308]], [[1.7e308]], [0], theta=0.5)
    with pytest.warns(RuntimeWarning, match=r"records \[0\] exceeds the float64 range"):
        state.update([[0.5, 0.5]])
    assert np.isinf(state.distance[0])


@pytest.mark.parametrize("name", ["x0", "lo", "hi"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_points_must_be_finite(name, bad):
    points = {"x0": np.zeros((2, 3)), "lo": np.zeros((2, 3)), "hi": np.ones((2, 3))}
    points[name][1, 2] = bad
    with pytest.raises(ValueError, match=f"{name} must be finite"):
        BisectionState(points["x0"], points["lo"], points["hi"], [0, 0])
    with pytest.raises(ValueError, match="hi holds values beyond the range of x0's dtype float32"):
        BisectionState(np.zeros((1, 1), np.float32), [[0.0]], [[1e300]], [0])


@pytest.mark.parametrize(
    ("name", "probs"),
    [("x0", [0.5, 0.5]), ("mid", [0.5, 0.5]),  # converging: the step reads mid and x0
     ("hi", [0.9, 0.1]),                        # still the original class: lo moves to mid, mid towards hi
     ("lo", [0.1, 0.9])],                       # crossed: hi moves to mid, mid towards lo
)
def test_core_refuses_non_finite_points_it_reads(name, probs):
    """BisectionState's points are finite by construction (checked once, midpoints of finite points); the core,
    called directly, finds a NaN where it reads one during the step and names the array and record."""
    for bad in (np.nan, np.inf):
        args = core_args(mid_probs=np.array([probs, probs]))
        args[name][1, 0] = bad
        with pytest.raises(ValueError, match=f"{name} must be finite \\(found NaN or Inf in record 1\\)"):
            _core.bisection_update(**args)


def test_core_checks_steps_before_a_step():
    with pytest.raises(ValueError, match=r"steps\[1\] = 9223372036854775807 must be in \[0, max_steps\)"):
        _core.bisection_update(**core_args(steps=np.array([0, 2**63 - 1])))


def core_args(**overrides):
    n, d = 2, 3
    args = {
        "x0": np.zeros((n, d)), "lo": np.zeros((n, d)), "hi": np.ones((n, d)), "mid": np.full((n, d), 0.5),
        "rows": np.arange(n), "mid_probs": np.full((n, 2), 0.5), "orig_class": np.zeros(n, dtype=np.int64),
        "active": np.ones(n, dtype=bool), "converged": np.zeros(n, dtype=bool), "distance": np.full(n, np.nan),
        "steps": np.zeros(n, dtype=np.int64), "theta": 1e-4, "max_steps": 10,
    }
    args.update(overrides)
    return args


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"x0": np.zeros((2, 3), dtype=np.int64)}, "x0 must be a float32 or float64"),
        ({"lo": np.zeros((2, 3), dtype=np.float32)}, "lo must have the dtype of x0"),
        ({"mid": np.zeros((2, 4))}, "mid has shape"),
        ({"hi": np.ones((3, 2)).T}, "hi must be C-contiguous"),
        ({"rows": np.array([1, 0])}, "rows must be the increasing indices of active records"),
        ({"rows": np.array([0, 5])}, "rows"),
        ({"rows": np.array([0, 1], dtype=np.int32)}, "rows has dtype int32"),
        ({"active": np.array([True, False])}, "rows must be the increasing indices of active records"),
        ({"active": np.ones(3, dtype=bool)}, "active has 3 entries"),
        ({"steps": np.zeros(2, dtype=np.float64)}, "steps has dtype float64"),
        ({"distance": np.zeros(2, dtype=np.float32)}, "distance has dtype float32"),
        ({"mid_probs": np.full((3, 2), 0.5)}, "rows has 2 entries, expected 3"),
        ({"theta": 0.0}, "theta"),
        ({"max_steps": 0}, "max_steps"),
    ],
)
def test_core_rejects_bad_arrays_directly(overrides, match):
    with pytest.raises(ValueError, match=match):
        _core.bisection_update(**core_args(**overrides))


# ---- property test -----------------------------------------------------------------------------


@st.composite
def bisection_problems(draw):
    n = draw(st.integers(1, 6))
    d = draw(st.integers(1, 5))
    c = draw(st.integers(2, 5))
    dtype = draw(st.sampled_from([np.float64, np.float32, np.int64]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    weights = rng.normal(size=(c, d))
    bias = rng.normal(size=c)
    x0 = (rng.normal(size=(n, d)) * 3).astype(dtype)
    hi = (rng.normal(size=(n, d)) * 3).astype(dtype)
    orig = rng.integers(0, c + draw(st.sampled_from([0, 0, 0, 1])), n)
    theta = draw(st.sampled_from([1e-4, 1e-2, 0.3]))
    poison = draw(st.sampled_from([None, None, None, np.nan, np.inf]))
    return x0, hi, orig, weights, bias, theta, poison


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bisection_problems())
def test_property_reference_or_value_error(problem):
    x0, hi, orig, weights, bias, theta, poison = problem
    clean = linear_model(weights, bias)
    calls = []

    def predict(points):
        probs = clean(points)
        calls.append(len(points))
        if poison is not None and len(calls) == 2:
            probs[0, 0] = poison
        return probs

    state = BisectionState(x0, x0, hi, orig, theta=theta, max_steps=20)
    if orig.max() >= weights.shape[0]:
        with pytest.raises(ValueError, match="orig_class"):
            state.run(predict)
        return
    if poison is not None:
        try:
            state.run(predict)
        except ValueError as err:
            assert "mid_probs contains NaN or Inf" in str(err) and len(calls) == 2
            return
        assert len(calls) < 2  # finished before the poisoned query
    else:
        state.run(predict)
    calls.clear()
    distance, steps, converged, *_ = numpy_bisection(x0, x0, hi, orig, clean, theta, 20)
    np.testing.assert_array_equal(state.steps, steps)
    np.testing.assert_array_equal(state.converged, converged)
    np.testing.assert_allclose(state.distance, distance, rtol=1e-12)


# ---- CUDA ------------------------------------------------------------------------------------------


@pytest.mark.skipif(not cuda_available(), reason="needs a CUDA build of tfmia and a visible GPU")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cuda_matches_cpu(dtype):
    rng = np.random.default_rng(3)
    weights, bias = rng.normal(size=(4, 50)), rng.normal(size=4)
    predict = linear_model(weights, bias)
    x0 = rng.normal(size=(500, 50)).astype(dtype)
    hi = (x0 + rng.normal(scale=5.0, size=x0.shape)).astype(dtype)
    orig = predict(x0).argmax(axis=1)
    states = [BisectionState(x0, x0, hi, orig, theta=1e-4, device=dev) for dev in ("cpu", "cuda")]
    for state in states:
        state.run(predict)
    cpu, gpu = states
    np.testing.assert_array_equal(gpu.steps, cpu.steps)
    np.testing.assert_array_equal(gpu.converged, cpu.converged)
    np.testing.assert_array_equal(gpu._mid, cpu._mid)
    np.testing.assert_allclose(gpu.distance, cpu.distance, rtol=1e-13)


@pytest.mark.skipif(not cuda_available(), reason="needs a CUDA build of tfmia and a visible GPU")
def test_cuda_rejects_nan_without_changes():
    state = BisectionState(X, X, np.ones((2, 3)), [0, 1], device="cuda")
    with pytest.raises(ValueError, match="row 1"):
        state.update([[0.5, 0.5], [np.nan, 0.5]])
    assert not state.steps.any()
