"""Tiny Keras models and data shared by the tests (module-level so process pools can pickle them)."""

import functools

import numpy as np

from tfmia.datasets import load_digits


def digits_mlp(hidden: int = 64, learning_rate: float = 1e-2):
    """A small softmax MLP on the 64 digit pixels; overfits a few hundred records in a few epochs."""
    import keras

    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(hidden, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(keras.optimizers.Adam(learning_rate), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def digits_logits_mlp(hidden: int = 32):
    """Same shape as digits_mlp, but outputs logits."""
    import keras

    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(hidden, activation="relu"), keras.layers.Dense(10)])
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def uncompiled_mlp():
    import keras

    return keras.Sequential([keras.Input((64,)), keras.layers.Dense(10, activation="softmax")])


small_mlp = functools.partial(digits_mlp, 32)


@functools.lru_cache(maxsize=1)
def digits():
    d = load_digits()
    return d.x, d.y


def prob_inputs(probs, labels):
    """Probability rows and labels as the AttackInputs an attack takes (outputs declared as probabilities)."""
    from tfmia.data import AttackInputs

    return AttackInputs(probs=probs, labels=labels)


FLOAT32_EPS = float(np.finfo(np.float32).eps)


def float32_sum_atol(magnitudes, ulps: int = 4):
    """How far a float32 evaluation of sums with these magnitudes (sum |terms|) may lie from another, or from exact.

    Each rounding in a float32 sum is at most half an ulp of a partial sum, itself at
    most sum |terms|; summed in another order (other kernels, FMA or not), the errors
    of the n roundings largely cancel (a random walk: sqrt(n)/2 ulps, 4 for n = 64), so
    a few ulps of sum |terms| bound the difference: ``ulps * eps32 * sum |terms|``.
    """
    return ulps * FLOAT32_EPS * np.asarray(magnitudes, np.float64)


def dense_magnitudes(model, x):
    """``(..(|x| |W1| + |b1|)..) |Wk| + |bk|`` over a model's Dense layers, in float64.

    It bounds, per output, the magnitudes summed on the way to it (ReLU and dropout in
    inference mode only shrink them): the scale of float32 rounding in those outputs.
    """
    import keras

    magnitude = np.abs(np.asarray(x, np.float64))
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dense):
            kernel, bias = (np.abs(w.astype(np.float64)) for w in layer.get_weights())
            magnitude = magnitude @ kernel + bias
        elif layer.get_weights():
            raise ValueError(f"dense_magnitudes handles Dense layers only, not {type(layer).__name__}")
    return magnitude


def float32_softmax_rtol(model, x, ulps: int = 4) -> float:
    """Relative tolerance between two float32 TensorFlow evaluations of a Dense (ReLU) ... Dense softmax model.

    Two code paths (batch sizes, oneDNN kernels, FMA or not) may sum each dot product in
    a different order, so a logit may differ by d = ``float32_sum_atol(dense_magnitudes(...))``.
    Softmax turns absolute logit differences up to d into a relative probability difference
    of at most 2 d, plus about an ulp each for exp and the division:
    rtol = 2 ulps eps32 max(magnitudes) + 4 eps32.
    """
    return 2 * float(float32_sum_atol(dense_magnitudes(model, x), ulps).max()) + 4 * FLOAT32_EPS


def random_probs(n, c, seed, sharpness=3.0):
    """Random probability rows with a chosen label boosted."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    logits = rng.normal(size=(n, c)) + sharpness * np.eye(c)[labels] * rng.uniform(0, 1, size=(n, 1))
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True), labels
