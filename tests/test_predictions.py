"""Batched inference: same outputs as Keras in inference mode, for every batch split."""

import gc
import weakref

import numpy as np
import pytest

from _models import digits_mlp
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
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)


def test_predict_accepts_other_dtypes_and_wrappers():
    model = digits_mlp()
    x = np.random.default_rng(1).integers(0, 16, size=(20, 64)).astype(np.uint8)
    expected = np.asarray(model(x.astype(np.float32), training=False))
    np.testing.assert_allclose(predict(model, x, batch_size=8), expected, rtol=1e-5, atol=1e-7)

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


def _saturating_model(head="dense"):
    """A softmax classifier confident enough that float32 probabilities round to exactly 1."""
    import keras

    inputs = keras.Input((64,))
    hidden = keras.layers.Dense(16, activation="relu", name="hidden")(inputs)
    if head == "dense":
        outputs = keras.layers.Dense(10, activation="softmax", name="head")(hidden)
    else:
        outputs = keras.layers.Softmax()(keras.layers.Dense(10, name="head")(hidden))
    model = keras.Model(inputs, outputs)
    kernel, bias = model.get_layer("head").get_weights()
    model.get_layer("head").set_weights([kernel * 5.0, bias])  # margins 3 to 60: most saturate, none underflow
    return model


def _logits_by_hand(model, x):
    """h @ W + b in float64 from the hidden layer's outputs, computed outside tfmia."""
    import keras

    hidden_model = keras.Model(model.inputs[0], model.get_layer("hidden").output)
    hidden = np.asarray(hidden_model(x, training=False), np.float64)
    kernel, bias = (w.astype(np.float64) for w in model.get_layer("head").get_weights())
    return hidden @ kernel + bias


@pytest.mark.parametrize("head", ["dense", "softmax_layer"])
def test_logits_of_a_softmax_model_and_the_losses_they_keep(head):
    from tfmia.data import AttackInputs
    from tfmia.signals import compute

    import keras

    keras.utils.set_random_seed(1)
    model = _saturating_model(head)
    x = np.random.default_rng(2).uniform(0, 16, size=(300, 64)).astype(np.float32)
    expected = _logits_by_hand(model, x)
    y = expected.argmax(axis=1)  # correctly classified, so the saturated ones have loss exactly 0

    probs = AttackInputs.from_model(model, x, y)
    logits = AttackInputs.from_model(model, x, y, logits=True, batch_size=64)
    assert not probs.from_logits and logits.from_logits
    np.testing.assert_allclose(logits.logits, expected, rtol=1e-4, atol=1e-3)

    loss_from_probs = compute(probs.probs, y)["loss"]
    loss_from_logits = compute(logits.logits, y, from_logits=True)["loss"]
    shifted = expected - expected.max(axis=1, keepdims=True)  # y is the argmax: shifted[y] = 0
    reference = np.log1p(np.exp(shifted).sum(axis=1, where=shifted < 0))  # -log softmax_y in float64
    saturated = loss_from_probs == 0
    assert saturated.sum() > 50  # the float32 softmax really ties them
    assert np.all(loss_from_logits[saturated] > 0)
    np.testing.assert_allclose(loss_from_logits, reference, rtol=1e-3, atol=1e-30)
    assert len(np.unique(loss_from_logits[saturated])) > 0.9 * saturated.sum()


def test_logits_of_a_model_that_already_outputs_them():
    from _models import digits_logits_mlp
    from tfmia.data import AttackInputs

    model = digits_logits_mlp()
    x = np.random.default_rng(3).normal(size=(20, 64)).astype(np.float32)
    inputs = AttackInputs.from_model(model, x, np.zeros(20, int), logits=True)
    np.testing.assert_allclose(inputs.logits, np.asarray(model(x, training=False)), rtol=1e-5, atol=1e-6)


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
