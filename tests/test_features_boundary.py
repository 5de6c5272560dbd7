"""Boundary distance against the closed form for linear softmax models, and failure reporting."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from tfmia.features.boundary import BoundaryExtractor, boundary_distance  # noqa: E402

THETA = 1e-4


def linear_model(kernel, bias, activation="softmax"):
    model = keras.Sequential([keras.Input((kernel.shape[0],)), keras.layers.Dense(kernel.shape[1], activation=activation)])
    model.layers[0].set_weights([np.asarray(kernel, np.float32), np.asarray(bias, np.float32)])
    return model


def closed_form(x, kernel, bias, a, b):
    """Distance from x to the hyperplane where classes a and b score equally: |(w_a - w_b).x + b_a - b_b| / ||w_a - w_b||."""
    w = kernel[:, a] - kernel[:, b]
    return np.abs(x @ w + bias[a] - bias[b]) / np.linalg.norm(w)


def tolerance(kernel, a, b):
    """|p_a - p_b| < theta at the midpoint puts its logit gap below 2 atanh(theta) (two classes)."""
    return 2 * np.arctanh(THETA) / np.linalg.norm(kernel[:, a] - kernel[:, b]) + 1e-5


@pytest.fixture(scope="module")
def two_class():
    rng = np.random.default_rng(0)
    kernel, bias = rng.normal(size=(5, 2)), rng.normal(size=2)
    return kernel, bias, rng.normal(size=(30, 5)).astype(np.float32)


def test_two_class_softmax_matches_closed_form(two_class):
    kernel, bias, x = two_class
    result = boundary_distance(linear_model(kernel, bias), x, step_size=0.05, max_steps=500, batch_size=8, theta=THETA)
    assert result.failures == 0
    np.testing.assert_allclose(result.distance, closed_form(x, kernel, bias, 0, 1), rtol=0, atol=tolerance(kernel, 0, 1))
    np.testing.assert_array_equal(result.original_class, np.argmax(x @ kernel + bias, axis=1))
    # walking straight at the boundary: ceil(d / s) steps, plus the evaluation at x
    steps = np.ceil(closed_form(x, kernel, bias, 0, 1) / 0.05)
    assert np.all(np.abs(result.gradient_queries - (steps + 1)) <= 1)
    assert np.all(result.bisection_queries >= 1)
    np.testing.assert_array_equal(result.queries, result.gradient_queries + result.bisection_queries)


def test_logits_model_with_a_dormant_third_class(two_class):
    kernel, bias, x = two_class
    kernel3 = np.c_[kernel, np.zeros(5)]
    bias3 = np.r_[bias, -60.0]  # class 2 never competes
    model = linear_model(kernel3, bias3, activation=None)
    result = boundary_distance(model, x, step_size=0.2, max_steps=200, theta=THETA)
    assert result.failures == 0
    np.testing.assert_allclose(result.distance, closed_form(x, kernel, bias, 0, 1), rtol=0, atol=tolerance(kernel, 0, 1))


def test_distance_is_from_the_original_record_with_large_steps(two_class):
    kernel, bias, x = two_class
    # steps much longer than the distances: one step crosses, bisection does the rest
    result = boundary_distance(linear_model(kernel, bias), x, step_size=25.0, theta=THETA)
    assert np.all(result.gradient_queries == 2)
    np.testing.assert_allclose(result.distance, closed_form(x, kernel, bias, 0, 1), rtol=0, atol=tolerance(kernel, 0, 1))


def test_clipping_to_the_input_range():
    # one input, boundary at x = 2; from x = 0.5 the walk goes up
    model = linear_model(np.array([[0.0, 1.0]]), np.array([2.0, 0.0]))
    x = np.array([[0.5]], np.float32)
    inside = boundary_distance(model, x, step_size=0.1, clip=(0.0, 3.0), theta=THETA)
    np.testing.assert_allclose(inside.distance, [1.5], atol=1e-3)
    blocked = boundary_distance(model, x, step_size=0.1, clip=(0.0, 1.0))
    assert np.isnan(blocked.distance[0]) and blocked.stalled[0]
    assert blocked.failure_counts() == {"stalled": 1, "not_crossed": 0, "not_converged": 0}
    assert blocked.gradient_queries[0] == 6  # evaluated at 0.5, 0.6, ..., 1.0, where the step cannot move


def test_failures_are_counted_not_dropped(two_class):
    kernel, bias, x = two_class
    model = linear_model(kernel, bias)
    far = boundary_distance(model, x, step_size=1e-4, max_steps=3)
    assert len(far) == len(x) and np.isnan(far.distance).all()
    assert far.failures == len(x)
    assert far.failure_counts() == {"stalled": 0, "not_crossed": len(x), "not_converged": 0}
    np.testing.assert_array_equal(far.gradient_queries, 4)
    np.testing.assert_array_equal(far.bisection_queries, 0)

    flat = linear_model(np.zeros((5, 2)), np.zeros(2))  # constant output: the gradient vanishes
    stalled = boundary_distance(flat, x[:4])
    assert stalled.failure_counts()["stalled"] == 4 and np.isnan(stalled.distance).all()

    unconverged = boundary_distance(model, x[:4], step_size=25.0, max_bisections=2, theta=1e-9)
    assert unconverged.failure_counts() == {"stalled": 0, "not_crossed": 0, "not_converged": 4}
    np.testing.assert_array_equal(unconverged.bisection_queries, 2)
    assert np.isnan(unconverged.distance).all() and unconverged.crossed.all()


def test_mixed_batch_keeps_each_records_outcome(two_class):
    kernel, bias, x = two_class
    d = closed_form(x, kernel, bias, 0, 1)
    result = boundary_distance(linear_model(kernel, bias), x, step_size=0.05, max_steps=10, theta=THETA)
    near = d < 0.45  # reachable within 10 steps of 0.05 (with one step to spare)
    far = d > 0.55
    assert near.any() and far.any()
    assert np.all(result.converged[near]) and not np.any(result.crossed[far])
    np.testing.assert_allclose(result.distance[near], d[near], atol=tolerance(kernel, 0, 1))


def test_bad_input(two_class):
    kernel, bias, x = two_class
    model = linear_model(kernel, bias)
    for kwargs, message in [
        ({"step_size": -1.0}, "step_size"),
        ({"theta": 0.0}, "theta"),
        ({"clip": (1.0, 0.0)}, "clip"),
        ({"max_steps": 0}, "max_steps"),
        ({"max_bisections": 0}, "max_bisections"),
    ]:
        with pytest.raises(ValueError, match=message):
            BoundaryExtractor(model, **kwargs)
    with pytest.raises(ValueError, match="outside clip"):
        boundary_distance(model, x, clip=(0.0, 1.0))
    with pytest.raises(ValueError, match="x has records of shape"):
        boundary_distance(model, x[:, :4])
