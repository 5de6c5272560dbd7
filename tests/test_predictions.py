"""Batched inference: same outputs as Keras in inference mode, for every batch split."""

import gc
import weakref

import numpy as np
import pytest

from _models import dense_magnitudes, digits_mlp, float32_softmax_rtol, float32_sum_atol
from tfmia.features.predictions import _INFERENCE_FUNCTIONS, predict


def _dropout_model():
    import keras

    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dropout(0.9),  # active only in training mode
        keras.layers.Dense(10, activation="softmax"),
    ])
    return model


@pytest.mark.parametrize("batch_size", [1, 7, 64, 1000])
def test_predict_equals_the_model_in_inference_mode(batch_size):
    import keras

    keras.utils.set_random_seed(0)
    model = _dropout_model()
    x = np.random.default_rng(0).normal(size=(131, 64)).astype(np.float32)
    expected = np.asarray(model(x, training=False))
    got = predict(model, x, batch_size=batch_size)
    assert got.shape == (131, 10)
    np.testing.assert_allclose(got, expected, rtol=float32_softmax_rtol(model, x))  # other batches, other kernels


def test_predict_accepts_other_dtypes_and_wrappers():
    model = digits_mlp()
    x = np.random.default_rng(1).integers(0, 16, size=(20, 64)).astype(np.uint8)
    expected = np.asarray(model(x.astype(np.float32), training=False))
    np.testing.assert_allclose(predict(model, x, batch_size=8), expected, rtol=float32_softmax_rtol(model, x))

    class Wrapper:  # anything with a Keras-like predict goes through it
        def predict(self, x, batch_size, verbose):
            return np.full((len(x), 3), batch_size, dtype=np.float32)

    np.testing.assert_array_equal(predict(Wrapper(), x, batch_size=5), np.full((20, 3), 5, np.float32))


def test_the_inference_cache_does_not_keep_models_alive():
    model = digits_mlp()
    predict(model, np.zeros((3, 64), np.float32))
    predict(model, np.zeros((3, 64), np.float32), logits=True)
    assert set(_INFERENCE_FUNCTIONS[model]) == {False, True}
    model_ref = weakref.ref(model)
    del model
    gc.collect()
    assert model_ref() is None


def test_predict_rejects_a_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size"):
        predict(digits_mlp(), np.zeros((3, 64), np.float32), batch_size=0)


# Float32 rounds 1 - d to 1 when d < 2**-25 (half the spacing of float32 just below 1), and a
# softmax row's true-class probability is 1 / (1 + sum_i exp(-m_i)) ~ 1 - sum_i exp(-m_i) for
# margins m_i = z_y - z_i.  With 9 other classes every margin > ln(9 / 2**-25) ~ 19.5 saturates
# on any float32 code path (exp, sum and division each off by an ulp or so change nothing).
MIN_MARGIN, MAX_MARGIN, OTHER_LOGIT = 24.0, 60.0, 4.0


def _saturating_model(head="dense"):
    """A softmax classifier that saturates at exactly 1.0 in float32 by construction.

    Hidden layer: ReLU of the first 10 inputs (identity weights); head: 40 x identity, so the
    logits are 40 * x[:, :10].  Inputs from :func:`_saturating_inputs` put one coordinate in
    [0.7, 1.5] (logit 28 to 60) and the others in [0, 0.1] (logits <= 4): margins 24 to 60.
    """
    import keras

    inputs = keras.Input((64,))
    hidden = keras.layers.Dense(16, activation="relu", name="hidden")(inputs)
    if head == "dense":
        outputs = keras.layers.Dense(10, activation="softmax", name="head")(hidden)
    else:
        outputs = keras.layers.Softmax()(keras.layers.Dense(10, name="head")(hidden))
    model = keras.Model(inputs, outputs)
    model.get_layer("hidden").set_weights([np.eye(64, 16, dtype=np.float32), np.zeros(16, np.float32)])
    head_kernel = np.zeros((16, 10), np.float32)
    head_kernel[:10] = (MAX_MARGIN / 1.5) * np.eye(10)
    model.get_layer("head").set_weights([head_kernel, np.zeros(10, np.float32)])
    return model


def _saturating_inputs(n, seed):
    """Rows whose true class (i mod 10) has input in [0.7, 1.5] and every other class input in [0, 0.1]."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    x = rng.uniform(0, OTHER_LOGIT / (MAX_MARGIN / 1.5), size=(n, 64))
    x[np.arange(n), labels] = rng.uniform(0.7, 1.5, n)
    return x.astype(np.float32), labels


def _logits_by_hand(model, x):
    """ReLU(x @ W1 + b1) @ W2 + b2 in float64 from the layers' weights, computed outside tfmia and TensorFlow."""
    w1, b1 = (w.astype(np.float64) for w in model.get_layer("hidden").get_weights())
    w2, b2 = (w.astype(np.float64) for w in model.get_layer("head").get_weights())
    return np.maximum(x.astype(np.float64) @ w1 + b1, 0) @ w2 + b2


@pytest.mark.parametrize("head", ["dense", "softmax_layer"])
def test_logits_of_a_softmax_model_and_the_losses_they_keep(head):
    from tfmia.data import AttackInputs
    from tfmia.signals import compute

    model = _saturating_model(head)
    x, y = _saturating_inputs(300, seed=2)
    expected = _logits_by_hand(model, x)
    margins = expected[np.arange(300), y][:, None] - np.where(np.eye(10, dtype=bool)[y], -np.inf, expected)
    assert margins.min() > MIN_MARGIN - 1e-4 and np.all(expected.argmax(axis=1) == y)  # the construction holds

    probs = AttackInputs.from_model(model, x, y)
    logits = AttackInputs.from_model(model, x, y, logits=True, batch_size=64)
    assert not probs.from_logits and logits.from_logits
    # float32 logits of magnitude <= 60 computed by TensorFlow: a few ulps (2**-23 * 60 ~ 7e-6) apart from float64.
    np.testing.assert_allclose(logits.logits, expected, rtol=1e-5, atol=1e-4)

    loss_from_probs = compute(probs.probs, y)["loss"]
    loss_from_logits = compute(logits.logits, y, from_logits=True)["loss"]
    shifted = expected - expected.max(axis=1, keepdims=True)  # y is the argmax: shifted[y] = 0
    reference = np.log1p(np.exp(shifted).sum(axis=1, where=shifted < 0))  # -log softmax_y in float64
    np.testing.assert_array_equal(loss_from_probs, 0.0)  # every float32 probability row ties at p_y = 1
    assert np.all(loss_from_logits > 0)
    # exp(-m) of a margin off by d is off by a factor exp(d): d <= 1e-4 (the logits' tolerance above) gives 1e-4.
    np.testing.assert_allclose(loss_from_logits, reference, rtol=1e-3, atol=1e-30)
    assert len(np.unique(loss_from_logits)) > 0.9 * len(y)  # the logits keep them apart


def test_logits_of_a_model_that_already_outputs_them():
    from _models import digits_logits_mlp
    from tfmia.data import AttackInputs

    model = digits_logits_mlp()
    x = np.random.default_rng(3).normal(size=(20, 64)).astype(np.float32)
    inputs = AttackInputs.from_model(model, x, np.zeros(20, int), logits=True)
    expected = np.asarray(model(x, training=False))
    atol = float32_sum_atol(dense_magnitudes(model, x))  # two float32 paths: a few ulps of what is summed
    assert np.all(np.abs(inputs.logits - expected) <= atol)


def test_logits_bad_input():
    import keras
    from tfmia.data import AttackInputs

    conv_head = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(10, 8, activation="softmax"),
                                  keras.layers.Reshape((10,))])
    x, y = np.zeros((4, 64), np.float32), np.zeros(4, int)
    with pytest.raises(ValueError, match="logits=True reads the scores before a final softmax"):
        AttackInputs.from_model(conv_head, x.reshape(4, 8, 8, 1), y, logits=True)
    with pytest.raises(ValueError, match="either logits=True or from_logits"):
        AttackInputs.from_model(digits_mlp(), x, y, logits=True, from_logits=False)
    with pytest.raises(ValueError, match="needs a Keras model"):
        predict(object(), x, logits=True)
