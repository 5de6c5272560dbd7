"""DP-SGD: one step against a hand-computed clipped-and-noised update, accounting against dp-accounting."""

import math
import pickle

import keras
import numpy as np
import pytest
import tensorflow as tf
from _models import digits, digits_mlp

from tfmia.defenses import DPSGD, defended, dp_sgd_epsilon, make_private
from tfmia.defenses.dp_sgd import DPSGDModel
from tfmia.training import build_model


def tiny_model(learning_rate=0.5):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="tanh"),
                              keras.layers.Dense(2, activation="softmax")])
    model.compile(keras.optimizers.SGD(learning_rate), "sparse_categorical_crossentropy")
    return model


def tiny_data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(6, 3)).astype("float32") * 2, np.array([0, 1, 1, 0, 1, 0])


def per_example_gradients(model, x, y, weights):
    """One example at a time with GradientTape: the loss of example i alone (times its weight)."""
    grads = []
    for i in range(len(x)):
        with tf.GradientTape() as tape:
            loss = weights[i] * keras.losses.sparse_categorical_crossentropy(y[i:i + 1], model(x[i:i + 1]))[0]
        grads.append([g.numpy().astype(np.float64) for g in tape.gradient(loss, model.trainable_variables)])
    return grads


def gradient_norms(grads):
    return np.array([math.sqrt(sum(float(np.sum(g ** 2)) for g in gs)) for gs in grads])


def expected_step(model, x, y, weights, clip, sigma, seed, step, lr):
    """w - lr * (sum_i clip(g_i) + sigma * C * z) / b with z the documented stateless draw of this step."""
    grads = per_example_gradients(model, x, y, weights)
    norms = gradient_norms(grads)
    summed = [sum(gs[k] * min(1.0, clip / n) for gs, n in zip(grads, norms)) for k in range(len(grads[0]))]
    key = tf.random.experimental.stateless_split(tf.constant([seed, step], tf.int64), num=1)[0]
    sizes = [int(np.prod(v.shape)) for v in model.trainable_variables]
    z = tf.random.stateless_normal([sum(sizes)], seed=key).numpy().astype(np.float64)
    noise = np.split(z, np.cumsum(sizes)[:-1])
    new = [v.numpy().astype(np.float64) - lr * (s + sigma * clip * n.reshape(s.shape)) / len(x)
           for v, s, n in zip(model.trainable_variables, summed, noise)]
    return new


@pytest.mark.parametrize("weighted", [False, True])
def test_one_step_matches_direct_computation(weighted):
    x, y = tiny_data()
    weights = np.linspace(0.5, 2.0, len(x)) if weighted else np.ones(len(x))
    keras.utils.set_random_seed(1)
    model = tiny_model()
    reference = tiny_model()
    reference.set_weights(model.get_weights())
    norms = gradient_norms(per_example_gradients(reference, x, y, weights))
    clip = float(np.median(norms))  # some examples are clipped, some are not
    assert (norms > clip).any() and (norms < clip).any()
    expected = expected_step(reference, x, y, weights, clip, 0.7, 5, 0, 0.5)

    private = make_private(model, l2_norm_clip=clip, noise_multiplier=0.7, seed=5)
    assert isinstance(private, DPSGDModel)
    private.fit(x, y, sample_weight=weights if weighted else None, batch_size=len(x), epochs=1, shuffle=False,
                verbose=0)
    for got, want in zip(private.trainable_variables, expected):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)
    # the private model trained the layers of the original model
    for a, b in zip(model.get_weights(), private.get_weights()):
        assert np.array_equal(a, b)


def test_second_step_uses_the_next_noise_and_seeds_reproduce():
    x, y = tiny_data()

    def two_steps(seed):
        keras.utils.set_random_seed(1)
        private = make_private(tiny_model(), l2_norm_clip=0.5, noise_multiplier=1.0, seed=seed)
        start = tiny_model()
        start.set_weights(private.get_weights())
        private.fit(x, y, batch_size=3, epochs=1, shuffle=False, verbose=0)
        return start, private

    start, private = two_steps(seed=3)
    after_one = expected_step(start, x[:3], y[:3], np.ones(3), 0.5, 1.0, 3, 0, 0.5)
    for v, w in zip(start.trainable_variables, after_one):
        v.assign(w.astype(np.float32))
    after_two = expected_step(start, x[3:], y[3:], np.ones(3), 0.5, 1.0, 3, 1, 0.5)
    for got, want in zip(private.trainable_variables, after_two):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)

    again = two_steps(seed=3)[1]
    other = two_steps(seed=4)[1]
    assert all(np.array_equal(a, b) for a, b in zip(private.get_weights(), again.get_weights()))
    assert not all(np.array_equal(a, b) for a, b in zip(private.get_weights(), other.get_weights()))


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
def test_trains_a_real_classifier_and_weights_load_into_the_plain_model(tmp_path):
    x, y = digits()
    model_fn = defended(digits_mlp, DPSGD(l2_norm_clip=1.0, noise_multiplier=0.5, seed=0))
    model_fn = pickle.loads(pickle.dumps(model_fn))  # runs on process pools
    private = build_model(model_fn, seed=0)
    history = private.fit(x[:600], y[:600], batch_size=50, epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert private.evaluate(x[1000:], y[1000:], verbose=0)[1] > 0.6
    private.save_weights(tmp_path / "dp.weights.h5")
    plain = digits_mlp()
    plain.load_weights(tmp_path / "dp.weights.h5")
    np.testing.assert_array_equal(plain.predict(x[:20], verbose=0), private.predict(x[:20], verbose=0))


def test_functional_model_with_dropout_and_convolution():
    x, y = digits()
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    h = keras.layers.Dropout(0.1)(keras.layers.Flatten()(h))
    model = keras.Model(inputs, keras.layers.Dense(10)(h))
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    private = make_private(model, 1.0, 0.3, seed=1)
    before = [v.numpy().copy() for v in private.trainable_variables]
    history = private.fit(x[:200].reshape(-1, 8, 8, 1), y[:200], batch_size=50, epochs=1, verbose=0)
    assert set(history.history) == {"loss", "accuracy"}
    assert np.isfinite(history.history["loss"]).all()
    # every variable, the convolution's included, took noisy clipped steps
    after = [v.numpy() for v in private.trainable_variables]
    assert len(before) == 4 and not any(np.array_equal(b, a) for b, a in zip(before, after))


def test_epsilon_against_dp_accounting():
    import dp_accounting

    for sigma, q, steps, delta in [(1.1, 256 / 60000, 60 * 235, 1e-5), (0.8, 0.02, 500, 1e-3)]:
        accountant = dp_accounting.rdp.RdpAccountant()
        accountant.compose(dp_accounting.SelfComposedDpEvent(
            dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), steps))
        eps = dp_sgd_epsilon(noise_multiplier=sigma, sampling_rate=q, steps=steps, delta=delta)
        assert eps == accountant.get_epsilon(delta)
        # an independent accountant (privacy loss distributions) is tighter than RDP, but not by much
        pld = dp_accounting.pld.PLDAccountant()
        pld.compose(dp_accounting.SelfComposedDpEvent(
            dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), steps))
        assert 0.5 * eps < pld.get_epsilon(delta) <= eps
    defense = DPSGD(1.0, 1.1)
    assert defense.epsilon(60000, batch_size=256, epochs=60, delta=1e-5) == dp_sgd_epsilon(
        noise_multiplier=1.1, sampling_rate=256 / 60000, steps=60 * 235, delta=1e-5)
    assert DPSGD(1.0, 2.0).epsilon(1000, batch_size=50, epochs=5, delta=1e-5) < \
        DPSGD(1.0, 1.0).epsilon(1000, batch_size=50, epochs=5, delta=1e-5)


@pytest.mark.parametrize("kwargs, match", [
    ({"l2_norm_clip": 1.0, "noise_multiplier": 0.0}, "noise_multiplier"),
    ({"l2_norm_clip": 1.0, "noise_multiplier": -1.0}, "noise_multiplier"),
    ({"l2_norm_clip": 0.0, "noise_multiplier": 1.0}, "l2_norm_clip"),
    ({"l2_norm_clip": float("nan"), "noise_multiplier": 1.0}, "l2_norm_clip"),
    ({"l2_norm_clip": 1.0, "noise_multiplier": 1.0, "seed": -1}, "seed"),
])
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DPSGD(**kwargs)


@pytest.mark.parametrize("kwargs, match", [
    ({"delta": 0.0}, "delta"), ({"delta": 1.0}, "delta"), ({"delta": -1e-5}, "delta"),
    ({"noise_multiplier": 0}, "noise_multiplier"), ({"sampling_rate": 1.5}, "sampling_rate"),
    ({"sampling_rate": 0}, "sampling_rate"), ({"steps": 0}, "steps"),
])
def test_bad_accounting_input(kwargs, match):
    args = {"noise_multiplier": 1.0, "sampling_rate": 0.01, "steps": 100, "delta": 1e-5, **kwargs}
    with pytest.raises(ValueError, match=match):
        dp_sgd_epsilon(**args)
    with pytest.raises(ValueError, match="batch_size"):
        DPSGD(1.0, 1.0).epsilon(100, batch_size=200, epochs=1, delta=1e-5)


def test_bad_models():
    with pytest.raises(ValueError, match="compiled"):
        make_private(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]), 1.0, 1.0)
    bn = keras.Sequential([keras.Input((3,)), keras.layers.BatchNormalization(), keras.layers.Dense(2)])
    bn.compile("sgd", "mse")
    with pytest.raises(ValueError, match="BatchNormalization"):
        make_private(bn, 1.0, 1.0)

    class Subclassed(keras.Model):
        def call(self, x):
            return x

    sub = Subclassed()
    sub.compile("sgd", "mse")
    with pytest.raises(ValueError, match="functional"):
        make_private(sub, 1.0, 1.0)
    with pytest.raises(ValueError, match="defense"):
        defended(tiny_model, "dp")


@pytest.mark.filterwarnings("ignore::tfmia.metrics.LowFPRWarning")
def test_shadow_attack_with_a_defended_model_fn_is_adaptive():
    from tfmia.attacks import LiRA, SeqMIA, ShadowModelAttack
    from tfmia.data import AttackInputs
    from tfmia.training import FitConfig, fit_model

    x, y = digits()
    defense = DPSGD(l2_norm_clip=1.0, noise_multiplier=0.5, seed=0)
    target = build_model(defended(digits_mlp, defense), seed=1)
    fit_model(target, x[:200], y[:200], FitConfig(epochs=2, batch_size=50))
    members = AttackInputs.from_model(target, x[:200], y[:200])
    non_members = AttackInputs.from_model(target, x[200:400], y[200:400])
    settings = {"n_shadows": 1, "attack_model": "logreg", "fit_config": FitConfig(epochs=2, batch_size=50),
                "train_size": 200, "progress": False}
    adaptive = ShadowModelAttack(defended(digits_mlp, defense), **settings).fit(x[400:1000], y[400:1000])
    assert adaptive.evaluate(members, non_members).adaptive is True
    assert ShadowModelAttack(digits_mlp, **settings).adaptive is None
    recipe = FitConfig(epochs=1)
    assert LiRA(defended(digits_mlp, defense), fit=recipe, n_models=2).adaptive is True
    assert LiRA(digits_mlp, fit=recipe, n_models=2).adaptive is None
    assert SeqMIA(defended(digits_mlp, defense), fit=recipe, distill_epochs=2).adaptive is True
