"""Whether outputs are probabilities or logits is declared, never guessed from their values."""

import keras
import numpy as np
import pytest
from _models import digits, digits_mlp
from scipy.special import log_softmax, softmax

from tfmia.attacks import MetricAttack
from tfmia.data import AttackInputs
from tfmia.defenses import Rounding, TopK
from tfmia.features.predictions import outputs_are_logits
from tfmia.training import build_model


@pytest.fixture(scope="module")
def softmax_model():
    return build_model(digits_mlp, seed=0)


@pytest.fixture(scope="module")
def records():
    x, y = digits()
    return x[:40], y[:40]


@pytest.mark.parametrize("defense", [TopK(1), TopK(3), Rounding(1)])
def test_defended_model_records_are_read_as_probabilities(softmax_model, records, defense):
    """(DefendedModel, x, y): signals from the defended probabilities, not from a softmax of them."""
    x, y = records
    defended = defense.wrap(softmax_model)
    probs = defended.predict(x)
    inputs = AttackInputs.from_model(defended, x, y)
    assert not inputs.from_logits
    # The loss a reader of probabilities computes (floored at 1e-30), in float64 by hand.
    expected = -np.log(np.maximum(probs[np.arange(len(y)), y].astype(np.float64), 1e-30))
    np.testing.assert_allclose(inputs.signals["loss"], expected, rtol=1e-12)
    # The old guess (logits, because the rows do not sum to 1) gives a different loss.
    guessed = -log_softmax(probs.astype(np.float64), axis=1)[np.arange(len(y)), y]
    assert not np.allclose(guessed, expected)


def test_output_tuples_must_declare_probabilities_or_logits(softmax_model, records):
    """Top-1 rows do not sum to 1: the old sniff took them for logits. Bare pairs are now refused."""
    x, y = records
    top1 = TopK(1)(softmax_model.predict(x, verbose=0), False)[0]
    attack = MetricAttack("loss", class_dependent=False)
    with pytest.raises(ValueError, match="does not say whether the outputs are probabilities or logits"):
        attack.fit((top1, y), (top1, y))
    declared = AttackInputs(probs=top1, labels=y, sum_tol=None)
    expected = np.log(np.maximum(top1[np.arange(len(y)), y].astype(np.float64), 1e-30))
    np.testing.assert_allclose(attack.values(declared), expected, rtol=1e-12)


def _head(activation):
    return keras.Sequential([keras.Input((64,)), keras.layers.Dense(10, activation=activation)])


@pytest.mark.parametrize(
    ("model_fn", "expected"),
    [
        (lambda: _head("softmax"), False),
        (lambda: _head(None), True),
        (lambda: _head("log_softmax"), True),
        (lambda: keras.Sequential([keras.Input((64,)), keras.layers.Dense(10), keras.layers.Softmax()]), False),
        (lambda: keras.Sequential([keras.Input((64,)), keras.layers.Dense(10), keras.layers.Activation("softmax")]),
         False),
    ],
)
def test_keras_models_declare_their_outputs_by_their_output_layer(model_fn, expected):
    assert outputs_are_logits(model_fn()) is expected


def test_functional_model_is_read_from_the_layer_that_produces_its_output():
    inputs = keras.Input((64,))
    scores = keras.layers.Dense(10, name="scores")(inputs)
    probs = keras.layers.Softmax(name="probs")(scores)
    # A side branch created after the output layer must not be mistaken for it.
    keras.layers.Dense(3, activation="sigmoid")(inputs)
    assert outputs_are_logits(keras.Model(inputs, probs)) is False
    assert outputs_are_logits(keras.Model(inputs, scores)) is True


class _Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(10)

    def call(self, x):
        return self.dense(x)


class _Declared:
    outputs_are_logits = True

    def predict(self, x, batch_size=256, verbose=0):
        return np.asarray(x, dtype=np.float64)[:, :10]


def test_undeclared_outputs_are_refused_not_guessed(records):
    x, y = records
    for model in (_head("sigmoid"), _head("relu")):
        with pytest.raises(ValueError, match="cannot tell whether model .* outputs logits or probabilities.*from_logits"):
            AttackInputs.from_model(model, x, y)
    with pytest.raises(ValueError, match="output layer cannot be identified"):
        outputs_are_logits(_Subclassed())
    with pytest.raises(ValueError, match="cannot tell whether the outputs of a object"):
        outputs_are_logits(object())
    # An explicit declaration always works, and an object may declare itself.
    inputs = AttackInputs.from_model(_head("sigmoid"), x, y, from_logits=False)
    assert not inputs.from_logits
    declared = AttackInputs.from_model(_Declared(), x, y)
    assert declared.from_logits
    np.testing.assert_array_equal(declared.logits, np.asarray(x, np.float64)[:, :10])


def test_logits_true_reads_the_input_of_a_final_softmax_activation(records):
    """Activation('softmax') heads: the logits are the activation's input, computed here by hand."""
    x, y = records
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10, name="dense"),
                              keras.layers.Activation("softmax")])
    kernel, bias = (np.asarray(w, np.float64) for w in model.get_layer("dense").get_weights())
    inputs = AttackInputs.from_model(model, x, y, logits=True)
    expected = np.asarray(x, np.float64) @ kernel + bias
    # float32 matmul of 64 terms against a float64 one: a few float32 ulps of the largest partial sums.
    tolerance = 64 * np.finfo(np.float32).eps * np.abs(x).max() * np.abs(kernel).max() + 1e-6
    np.testing.assert_allclose(inputs.logits, expected, rtol=0, atol=tolerance)
    np.testing.assert_allclose(softmax(inputs.logits, axis=1), model.predict(x, verbose=0), atol=1e-5)


def test_logits_true_on_a_sigmoid_head_is_refused(records):
    x, y = records
    with pytest.raises(ValueError, match="logits=True reads the scores before a final softmax.*'sigmoid'"):
        AttackInputs.from_model(_head("sigmoid"), x, y, logits=True)


def test_labels_must_be_indices_or_exactly_one_hot(softmax_model, records):
    x, y = records
    one_hot = np.eye(10)[y]
    np.testing.assert_array_equal(AttackInputs.from_model(softmax_model, x, one_hot).labels, y)
    soft = np.random.default_rng(0).uniform(size=(len(y), 10))
    with pytest.raises(ValueError, match="y of shape .* is not one-hot"):
        AttackInputs.from_model(softmax_model, x, soft)
    with pytest.raises(ValueError, match="one-hot rows of 10 classes"):
        AttackInputs.from_model(softmax_model, x, np.eye(3)[y % 3])


def test_complex_inputs_are_refused(softmax_model, records):
    x, y = records
    with pytest.raises(ValueError, match="x must hold real numbers.*complex"):
        AttackInputs.from_model(softmax_model, x.astype(np.complex128), y)
