"""Tiny Keras recipes, digits splits and the signal formulas shared by the SeqMIA, TrajectoryMIA, LiRA,
distillation and recorder tests (logit models come from ``_models``)."""

import numpy as np

from tfmia.datasets import load_digits
from tfmia.splits import partition


def tiny_model_fn():
    """64 -> 16 ReLU -> dropout -> 10 softmax, Adam: small enough to train in a blink, with a random layer."""
    import keras

    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    return model


def memorising_model_fn():
    """64 -> 64 ReLU -> dropout -> 10 softmax, Adam: enough capacity to memorise 60 randomly labelled digits in 20 epochs."""
    import keras

    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    return model


def three_class_model_fn():
    """A model whose output size (3) differs from the digits teachers' (10)."""
    import keras

    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def digits_parts(size: int = 60, seed: int = 0, *, random_labels: bool = False):
    """Digits split into target/shadow train/test of ``size`` records each and the remainder.

    ``random_labels``: every record's label drawn uniformly at random (seeded), so that a
    model can only memorise its training records: members and non-members then differ
    sharply on any model of the recipe, which end-to-end attack tests rely on.
    """
    d = load_digits()
    y = np.random.default_rng(seed).integers(0, 10, len(d.y)) if random_labels else d.y
    return partition(d.x, y, {"target_train": size, "target_test": size, "shadow_train": size,
                              "shadow_test": size}, seed=seed)


def softmax(z):
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def numpy_rows(probs, labels):
    """[loss, max, SD, entropy, modified entropy] written out from ALGORITHMS.md, logs floored at 1e-30."""
    p = np.asarray(probs, dtype=np.float64)
    n = np.arange(p.shape[0])
    log = lambda a: np.log(np.maximum(a, 1e-30))  # noqa: E731
    p_y = p[n, labels]
    loss = -log(p_y)
    entropy = -(p * log(p)).sum(axis=1)
    others = p.copy()
    others[n, labels] = 0.0
    mentr = -(1 - p_y) * log(p_y) - (others * log(1 - others)).sum(axis=1)
    return np.stack([loss, p.max(axis=1), p.std(axis=1), entropy, mentr], axis=1)
