"""DP-SGD (Abadi et al., CCS 2016, Algorithm 1) for Keras 3 on TensorFlow, and its privacy accounting.

Each training step on a batch of ``b`` examples computes

    g_i = grad_w loss(x_i, y_i)                      per example (``tf.vectorized_map``)
    c_i = g_i * min(1, C / ||g_i||_2)                 the norm of all trainable gradients together
    g   = (sum_i c_i + N(0, (sigma C)^2 I)) / b
    w  <- optimizer.apply(g)                          the compiled optimizer (SGD: w - lr * g)

with clip norm ``C = l2_norm_clip`` and ``sigma = noise_multiplier``.  The
per-example loss is the compiled loss of that example alone plus the model's
additional losses (weight and activity regularisers), all of it clipped, as in
TensorFlow Privacy.  The noise of step ``t`` (the optimizer's ``iterations``
before the update) is ``sigma * C * tf.random.stateless_normal([P], s)`` with
``s = tf.random.experimental.stateless_split([seed, t], 1)[0]``, ``P`` the
number of trainable parameters, cut into the trainable variables in order:
the same seed gives the same noise, and a test can recompute it.

Use it on any compiled Sequential or functional classifier::

    private = make_private(model, l2_norm_clip=1.0, noise_multiplier=1.1, seed=0)
    private.fit(x, y, epochs=..., batch_size=256)            # trains model's layers
    eps = dp_sgd_epsilon(noise_multiplier=1.1, sampling_rate=256 / len(x),
                         steps=epochs * math.ceil(len(x) / 256), delta=1e-5)

``private`` shares ``model``'s layers and optimizer; its weights load into the
undefended architecture.  TensorFlow Privacy's ``DPKeras*Optimizer`` classes
are ``tf.keras`` (Keras 2) optimizers and do not run on Keras 3, hence this module.

Layers that mix the examples of a batch (``BatchNormalization`` in training
mode) have no per-example gradients and are refused; use Layer or Group
normalisation.  Convolution filter gradients fall back to a loop inside
``tf.vectorized_map`` (same numbers, slower).

Accounting: ``epochs * ceil(N / b)`` compositions of the Poisson-subsampled
Gaussian mechanism with sampling rate ``q = b / N``, by the Rényi-DP accountant
of Google's ``dp-accounting`` package (``pip install tfmia[dp]``).
``model.fit`` draws shuffled fixed-size batches, not Poisson samples; counting
them as Poisson subsampling at ``q = b / N`` is the usual approximation (TF
Privacy's ``compute_dp_sgd_privacy`` makes it too), not a proof for shuffling.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from .._validate import check_fraction, check_positive_int, check_positive_number
from ._training import DefenceModel, rebuild, step_seed
from .adaptive import TrainingDefense

__all__ = ["DPSGD", "DPSGDModel", "make_private", "dp_sgd_epsilon"]


def dp_sgd_epsilon(*, noise_multiplier: float, sampling_rate: float, steps: int, delta: float) -> float:
    """epsilon of ``steps`` DP-SGD steps at ``delta``: RDP accountant of ``dp-accounting``.

    The event is ``SelfComposedDpEvent(PoissonSampledDpEvent(sampling_rate,
    GaussianDpEvent(noise_multiplier)), steps)`` with the accountant's default
    Rényi orders.
    """
    sigma = check_positive_number(noise_multiplier, "noise_multiplier")
    q = check_positive_number(sampling_rate, "sampling_rate")
    if q > 1:
        raise ValueError(f"sampling_rate must be in (0, 1], got {sampling_rate!r}")
    steps = check_positive_int(steps, "steps")
    delta = check_fraction(delta, "delta")
    try:
        import dp_accounting
    except ImportError:
        raise ImportError("privacy accounting needs the dp-accounting package: pip install 'tfmia[dp]'") from None
    event = dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), steps
    )
    accountant = dp_accounting.rdp.RdpAccountant()
    accountant.compose(event)
    return float(accountant.get_epsilon(delta))


class DPSGD(TrainingDefense):
    """DP-SGD with clip norm ``l2_norm_clip`` and noise multiplier ``noise_multiplier`` (module docstring).

    Args:
        l2_norm_clip: C > 0, the bound on each example's gradient norm.
        noise_multiplier: sigma > 0; the noise standard deviation is sigma * C.
        seed: seeds the noise (integer >= 0).
    """

    def __init__(self, l2_norm_clip: float, noise_multiplier: float, *, seed: int = 0):
        self.l2_norm_clip = check_positive_number(l2_norm_clip, "l2_norm_clip")
        self.noise_multiplier = check_positive_number(noise_multiplier, "noise_multiplier")
        self.seed = check_positive_int(seed, "seed", minimum=0)

    def config(self) -> dict:
        return {"l2_norm_clip": self.l2_norm_clip, "noise_multiplier": self.noise_multiplier, "seed": self.seed}

    def apply(self, model):
        private = rebuild(model, DPSGDModel, defense=self)
        mixing = [layer.name for layer in _all_layers(private) if isinstance(layer, keras.layers.BatchNormalization)]
        if mixing:
            raise ValueError(
                f"model: DP-SGD needs per-example gradients, which BatchNormalization layers {mixing} do not have "
                "(they mix the examples of a batch); use LayerNormalization or GroupNormalization"
            )
        return private

    def epsilon(self, n_train: int, *, batch_size: int, epochs: int, delta: float) -> float:
        """epsilon after ``epochs`` epochs of ``model.fit(batch_size=batch_size)`` on ``n_train`` records."""
        n_train = check_positive_int(n_train, "n_train")
        batch_size = check_positive_int(batch_size, "batch_size")
        if batch_size > n_train:
            raise ValueError(f"batch_size ({batch_size}) must not exceed n_train ({n_train})")
        epochs = check_positive_int(epochs, "epochs")
        return dp_sgd_epsilon(noise_multiplier=self.noise_multiplier, sampling_rate=batch_size / n_train,
                              steps=epochs * math.ceil(n_train / batch_size), delta=delta)


def _all_layers(model):
    """The layers of ``model`` and of the models nested in it."""
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


def make_private(model, l2_norm_clip: float, noise_multiplier: float, *, seed: int = 0):
    """``model``'s graph, compiled as ``model``, trained by DP-SGD (``DPSGD(...).apply(model)``)."""
    return DPSGD(l2_norm_clip, noise_multiplier, seed=seed).apply(model)


class DPSGDModel(DefenceModel):
    """A functional model whose ``train_step`` is DP-SGD (build it with :func:`make_private`)."""

    def _clipped_per_example(self, x, y, sample_weight):
        """(losses, predictions, clipped gradients stacked over the batch) by ``tf.vectorized_map``."""
        variables = self.trainable_variables
        clip = self.defense.l2_norm_clip

        def one(example):
            xi, yi, *wi = keras.tree.map_structure(lambda t: t[None], example)
            with tf.GradientTape() as tape:
                pred = self(xi, training=True)
                loss = self.compute_loss(x=xi, y=yi, y_pred=pred, sample_weight=wi[0] if wi else None)
            grads = tape.gradient(loss, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
            norm = tf.sqrt(tf.add_n([tf.reduce_sum(tf.square(g)) for g in grads]))
            scale = tf.minimum(tf.constant(1.0, norm.dtype), clip / norm)  # norm 0 -> C/0 = inf -> 1
            return loss, pred[0], [g * tf.cast(scale, g.dtype) for g in grads]

        elems = (x, y) if sample_weight is None else (x, y, sample_weight)
        return tf.vectorized_map(one, elems)

    def _noise(self):
        variables = self.trainable_variables
        sizes = [int(np.prod(v.shape)) for v in variables]
        seed = step_seed(self.defense.seed, self.optimizer.iterations, 1)[0]
        flat = tf.random.stateless_normal([sum(sizes)], seed=seed)
        std = self.defense.noise_multiplier * self.defense.l2_norm_clip
        return [std * tf.cast(tf.reshape(part, v.shape), v.dtype) for part, v in zip(tf.split(flat, sizes), variables)]

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if y is None:
            raise ValueError("DP-SGD training needs labels y")
        losses, y_pred, clipped = self._clipped_per_example(x, y, sample_weight)
        batch = tf.cast(tf.shape(losses)[0], clipped[0].dtype)
        grads = [(tf.reduce_sum(c, axis=0) + n) / batch for c, n in zip(clipped, self._noise())]
        self.optimizer.apply(grads, self.trainable_variables)
        return self.finish_step(tf.reduce_mean(losses), x, y, y_pred, sample_weight)
