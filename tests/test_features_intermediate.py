"""Intermediate layer outputs against the same layers computed in numpy."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from _models import float32_softmax_rtol, float32_sum_atol  # noqa: E402

from tfmia.features.intermediate import intermediate_outputs  # noqa: E402


@pytest.fixture(scope="module")
def mlp():
    keras.utils.set_random_seed(2)
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(6, activation="relu", name="hidden"),
            keras.layers.Dropout(0.5, name="drop"),  # inference mode: identity
            keras.layers.Dense(3, activation="softmax", name="out"),
        ]
    )
    x = np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32)
    return model, x


def hidden_numpy(model, x):
    """ReLU(x @ W + b) in float64, and the tolerance of a float32 evaluation of it (ReLU only shrinks errors)."""
    w, b = (a.astype(np.float64) for a in model.get_layer("hidden").get_weights())
    x = x.astype(np.float64)
    return np.maximum(x @ w + b, 0), float32_sum_atol(np.abs(x) @ np.abs(w) + np.abs(b))


def assert_within(got, expected, atol):
    assert np.all(np.abs(got - expected) <= atol), np.max(np.abs(got - expected) - atol)


def test_default_is_the_input_of_the_final_dense_layer(mlp):
    model, x = mlp
    assert_within(intermediate_outputs(model, x, batch_size=3), *hidden_numpy(model, x))


def test_layer_by_name_and_by_index(mlp):
    model, x = mlp
    hidden, atol = hidden_numpy(model, x)
    assert_within(intermediate_outputs(model, x, layer="hidden"), hidden, atol)
    assert_within(intermediate_outputs(model, x, layer=0), hidden, atol)
    w, b = model.get_layer("out").get_weights()
    z = hidden @ w + b
    softmax = np.exp(z - z.max(1, keepdims=True))
    softmax /= softmax.sum(1, keepdims=True)
    np.testing.assert_allclose(intermediate_outputs(model, x, layer=-1), softmax, rtol=float32_softmax_rtol(model, x))


def test_convolutional_outputs_are_flattened_and_datasets_work():
    keras.utils.set_random_seed(3)
    inputs = keras.Input((5, 5, 2))
    conv = keras.layers.Conv2D(3, 2, name="conv")(inputs)
    outputs = keras.layers.Dense(2)(keras.layers.Flatten()(conv))
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(1).random((6, 5, 5, 2), dtype=np.float32)
    kernel, bias = model.get_layer("conv").get_weights()
    patches = np.lib.stride_tricks.sliding_window_view(x.astype(np.float64), (2, 2), axis=(1, 2))  # (n, 4, 4, c, 2, 2)
    expected = np.einsum("nijcab,abcf->nijf", patches, kernel) + bias
    atol = float32_sum_atol(np.einsum("nijcab,abcf->nijf", np.abs(patches), np.abs(kernel)) + np.abs(bias))
    ours = intermediate_outputs(model, x, layer="conv")
    assert_within(ours, expected.reshape(6, -1), atol.reshape(6, -1))
    data = tf.data.Dataset.from_tensor_slices((x, np.zeros(6))).batch(4)  # batches of 4 and 2: maybe other kernels
    assert_within(intermediate_outputs(model, data, layer="conv"), ours, atol.reshape(6, -1))
    assert intermediate_outputs(model, x).shape == (6, 48)  # the Flatten output feeding the Dense


def test_bad_input(mlp):
    model, x = mlp
    with pytest.raises(ValueError, match=r"'nope' is not a layer .*\['hidden', 'drop', 'out'\]"):
        intermediate_outputs(model, x, layer="nope")
    with pytest.raises(ValueError, match="out of range"):
        intermediate_outputs(model, x, layer=3)
    with pytest.raises(ValueError, match="layer must be"):
        intermediate_outputs(model, x, layer=1.5)
    with pytest.raises(ValueError, match=r"x has records of shape \(5,\)"):
        intermediate_outputs(model, np.zeros((2, 5), np.float32))
    no_dense = keras.Sequential([keras.Input((4,)), keras.layers.Softmax()])
    with pytest.raises(ValueError, match="no Dense layer"):
        intermediate_outputs(no_dense, x)
