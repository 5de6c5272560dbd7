"""Batched inference: same outputs as Keras in inference mode, for every batch split."""

import gc
import weakref

import numpy as np
import pytest

from tests._models import digits_mlp
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
    assert model in _INFERENCE_FUNCTIONS
    model_ref = weakref.ref(model)
    del model
    gc.collect()
    assert model_ref() is None


def test_predict_rejects_a_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size"):
        predict(digits_mlp(), np.zeros((3, 64), np.float32), batch_size=0)
