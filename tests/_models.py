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


def random_probs(n, c, seed, sharpness=3.0):
    """Random probability rows with a chosen label boosted."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    logits = rng.normal(size=(n, c)) + sharpness * np.eye(c)[labels] * rng.uniform(0, 1, size=(n, 1))
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True), labels
