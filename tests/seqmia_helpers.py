"""Tiny Keras recipes, digits splits and the signal formulas shared by the SeqMIA, TrajectoryMIA, LiRA,
distillation and recorder tests (logit models come from ``_models``)."""

import functools

import numpy as np

from tfmia.datasets import load_digits
from tfmia.splits import partition


def dropout_mlp(hidden: int):
    """64 -> ``hidden`` ReLU -> dropout 0.2 -> 10 softmax, Adam 0.01: a small recipe with a random layer."""
    import keras

    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(hidden, activation="relu"),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    return model


tiny_model_fn = functools.partial(dropout_mlp, 16)  # trains in a blink
memorising_model_fn = functools.partial(dropout_mlp, 64)  # memorises 60 randomly labelled digits in 20 epochs


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


def _neg_log_change(x, dx):
    """The most ``-log`` can change when ``x`` moves by ``dx``: ``-log(1 - dx / x)``, infinite once dx >= x."""
    ratio = np.divide(dx, x, out=np.full_like(dx, np.inf), where=x > 0)
    with np.errstate(divide="ignore"):
        return -np.log1p(-np.minimum(ratio, 1.0))


def rows_tolerance(probs, labels, rtol):
    """How far :func:`numpy_rows` may move when every probability moves by ``rtol`` of itself plus a float32 ulp.

    Two float32 inference paths give probabilities ``rtol`` apart (``_models.float32_softmax_rtol``),
    each also rounded to float32.  With ``dp = rtol p + ulp32(p)`` and ``q = 1 - p``:
    loss ``|d log p_y| <= -log(1 - dp_y / p_y)``; max and SD move by at most ``max dp``;
    entropy by ``sum |log p_i + 1| dp_i``; modified entropy by
    ``|log p_y| dp_y + q_y (-log(1 - dp_y / p_y)) + sum_{i != y} (|log q_i| dp_i + p_i (-log(1 - dp_i / q_i)))``
    (infinite where a probability or its complement is within dp of 0: float32 does not fix the value there).
    """
    p = np.asarray(probs, dtype=np.float64)
    n = np.arange(p.shape[0])
    dp = rtol * p + np.spacing(np.abs(p).astype(np.float32)).astype(np.float64)
    q = 1.0 - p
    log_p, log_q = np.log(np.maximum(p, 1e-30)), np.log(np.maximum(q, 1e-30))
    p_y, q_y, dp_y = p[n, labels], q[n, labels], dp[n, labels]
    loss = _neg_log_change(p_y, dp_y)
    spread = dp.max(axis=1)
    entropy = (np.abs(log_p + 1) * dp).sum(axis=1)
    others = np.abs(log_q) * dp + p * _neg_log_change(q, dp)
    others[n, labels] = 0.0
    mentr = np.abs(log_p[n, labels]) * dp_y + q_y * loss + others.sum(axis=1)
    return np.stack([loss, spread, spread, entropy, mentr], axis=1)


def assert_rows_close(rows, probs, labels, rtol, columns=slice(None)):
    """``rows`` (tfmia's) equal :func:`numpy_rows` of ``probs`` from another float32 path within :func:`rows_tolerance`.

    On top: 8 float32 ulps of each value for the arithmetic of the signals themselves.
    ``columns`` picks the columns of :func:`numpy_rows` that ``rows`` holds.
    """
    expected = numpy_rows(probs, labels)[:, columns]
    bound = rows_tolerance(probs, labels, rtol)[:, columns] + 8 * np.finfo(np.float32).eps * (1 + np.abs(expected))
    excess = np.abs(np.asarray(rows, np.float64) - expected) - bound
    assert np.all(excess <= 0), f"rows differ beyond the float32 tolerance by up to {excess.max():.3g}"
