"""MixupMMD: the MMD penalty on hand-checked batches and one training step against a direct computation."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from _models import digits, digits_mlp

from tfmia.defenses import MixupMMD, mmd2


def test_mmd2_on_a_hand_checked_batch():
    x = np.array([[1.0, 0.0], [0.0, 1.0]])
    y = np.array([[0.5, 0.5], [0.5, 0.5]])
    # ||x1 - x2||^2 = 2, ||x_i - y_j||^2 = 0.5, ||y1 - y2||^2 = 0
    # s = 1: mean K_xx = (1 + e^-1) / 2, mean K_yy = 1, mean K_xy = e^-0.25
    one = (1 + math.exp(-1)) / 2 + 1 - 2 * math.exp(-0.25)
    assert float(mmd2(x, y)) == pytest.approx(one, abs=1e-12)
    assert one == pytest.approx(0.1263381544, abs=1e-9)
    # s = 2 adds (1 + e^-0.25) / 2 + 1 - 2 e^-0.0625
    two = (1 + math.exp(-0.25)) / 2 + 1 - 2 * math.exp(-0.0625)
    assert float(mmd2(x, y, bandwidths=(1.0, 2.0))) == pytest.approx(one + two, abs=1e-12)
    assert float(mmd2(x, x)) == pytest.approx(0.0, abs=1e-12)
    # unequal sample sizes
    assert float(mmd2(x, y[:1])) == pytest.approx(one, abs=1e-12)


def tiny_model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="tanh"),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile(keras.optimizers.SGD(0.5), "sparse_categorical_crossentropy")
    return model


def mmd2_by_pairs(a, b, bandwidths):
    """The biased MMD^2 written out pair by pair."""
    def k(u, v):
        d = tf.reduce_sum((u - v) ** 2)
        return sum(tf.exp(-d / (2 * s * s)) for s in bandwidths)

    def mean_k(p, q):
        return sum(k(p[i], q[j]) for i in range(p.shape[0]) for j in range(q.shape[0])) / (p.shape[0] * q.shape[0])

    return mean_k(a, a) + mean_k(b, b) - 2 * mean_k(a, b)


def test_one_step_matches_direct_computation():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(4, 3)).astype("float32"), np.array([0, 1, 2, 0])
    x_val, y_val = rng.normal(size=(3, 3)).astype("float32"), np.array([2, 0, 1])  # one record per class
    keras.utils.set_random_seed(0)
    model = tiny_model()
    reference = tiny_model()
    reference.set_weights(model.get_weights())
    defended = MixupMMD((x_val, y_val), alpha=0.4, mmd_weight=2.0, bandwidths=(1.0, 0.5), seed=7).apply(model)

    seeds = tf.random.experimental.stateless_split(tf.constant([7, 0], tf.int64), num=3)
    g = tf.random.stateless_gamma([2], seeds[0], alpha=tf.constant([0.4, 0.4])).numpy()
    lam = g[0] / (g[0] + g[1])
    perm = tf.argsort(tf.random.stateless_uniform([4], seeds[1])).numpy()
    mixed = lam * x + (1 - lam) * x[perm]
    matched = x_val[[int(np.flatnonzero(y_val == c)[0]) for c in y]]  # the only validation record of each class
    with tf.GradientTape() as tape:
        out = reference(mixed)
        mix_loss = lam * tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, out)) + \
            (1 - lam) * tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y[perm], out))
        penalty = mmd2_by_pairs(reference(x), tf.constant(reference(matched).numpy()), (1.0, 0.5))
        total = mix_loss + 2.0 * penalty
    grads = tape.gradient(total, reference.trainable_variables)
    expected = [v.numpy() - 0.5 * g.numpy() for v, g in zip(reference.trainable_variables, grads)]

    history = defended.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    np.testing.assert_allclose(history.history["mmd"][0], float(penalty), rtol=1e-5)
    np.testing.assert_allclose(history.history["loss"][0], float(total), rtol=1e-5)
    for got, want in zip(defended.trainable_variables, expected):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
def test_trains_a_real_classifier_and_draws_validation_records_of_the_same_class(tmp_path):
    x, y = digits()
    defense = MixupMMD((x[1000:1300], y[1000:1300]), seed=1)
    model = defense.apply(digits_mlp())
    history = model.fit(x[:300], y[:300], batch_size=50, epochs=3, verbose=0)
    assert model.evaluate(x[1300:], y[1300:], verbose=0)[1] > 0.6
    assert all(np.isfinite(history.history["mmd"]))
    labels = tf.constant(np.tile(np.arange(10), 20), tf.int32)
    drawn = model._validation.draw(labels, tf.constant([1, 2], tf.int64)).numpy()
    sorted_labels = np.sort(y[1000:1300])
    assert np.array_equal(sorted_labels[drawn], labels.numpy())
    model.save_weights(tmp_path / "mixup.weights.h5")
    plain = digits_mlp()
    plain.load_weights(tmp_path / "mixup.weights.h5")
    np.testing.assert_array_equal(plain.predict(x[:10], verbose=0), model.predict(x[:10], verbose=0))


@pytest.mark.parametrize("kwargs, match", [
    ({"alpha": 0.0}, "alpha"), ({"mmd_weight": -1.0}, "mmd_weight"), ({"mmd_weight": 0.0}, "mmd_weight"),
    ({"bandwidths": (1.0, 0.0)}, "bandwidths"), ({"bandwidths": ()}, "bandwidths"), ({"seed": 1.5}, "seed"),
])
def test_bad_parameters(kwargs, match):
    x, y = digits()
    with pytest.raises(ValueError, match=match):
        MixupMMD((x[:10], y[:10]), **kwargs)


def test_validation_must_cover_every_class():
    x, y = digits()
    keep = y[:200] != 3
    with pytest.raises(ValueError, match="every one of the model's 10 classes"):
        MixupMMD((x[:200][keep], y[:200][keep])).apply(digits_mlp())
    with pytest.raises(ValueError, match="validation"):
        MixupMMD((x[:10], y[:10, None].astype(float) + 0.5))
