"""Keras attack classifiers over per-record feature sequences, and their training recipe.

Architectures (``build_attack_model``), input ``(N, T, M)``: T steps of M metrics:

``"lstm"``, ``"gru"``  SeqMIA's attention RNN (Li et al. 2024, section 4.3):
                       ``h_1..h_T = RNN(s_1..s_T)`` (one layer, ``hidden`` units),
                       ``a_t = softmax_t(h_t . h_T)`` (dot attention of the last
                       hidden state over all outputs), context ``c = sum_t a_t h_t``,
                       output layer on ``[c ; h_T]``.
``"transformer"``      one Transformer encoder block (Vaswani et al. 2017) over the
                       steps: linear embedding + learned position embedding,
                       self-attention and a feed-forward layer, each residual with
                       layer normalisation, mean-pooled.
``"mlp"``              the steps flattened to one vector, Dense 512-128-32 ReLU
                       (TrajectoryMIA's attack model, Liu et al. 2022): every
                       (step, metric) is a separate input; no sequence structure.

The head is a 2-way softmax (``output="softmax"``, the references) or one
sigmoid unit (layer ``membership``, on the logits of layer
``membership_logits``); either way :func:`member_probability` returns P(member).

Training (:class:`AttackTraining`): weight decay is the coupled L2 penalty of
PyTorch's ``weight_decay`` (gradient ``+ wd * w``), i.e. ``wd / 2 * ||w||^2``
on every kernel and no bias; the learning rate is multiplied by ``lr_decay``
every ``decay_every`` epochs while it exceeds ``min_lr``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import special

from ._validate import as_float_array, as_membership, check_positive_int
from .training import FitConfig, fit_model, seeded

__all__ = ["ARCHITECTURES", "OUTPUTS", "AttackTraining", "build_attack_model", "learning_rate_at",
           "train_attack_model", "member_probability"]

ARCHITECTURES = ("lstm", "gru", "transformer", "mlp")
OUTPUTS = ("softmax", "sigmoid")
OPTIMIZERS = ("adam", "sgd")


@dataclasses.dataclass(frozen=True)
class AttackTraining:
    """How an attack model is trained.  The defaults are SeqMIA's (Li et al. 2024, section 5.1).

    Attributes:
        epochs, batch_size: passes over the shadow sequences and records per step.
        optimizer: "adam" or "sgd" (with ``momentum``).
        learning_rate: initial learning rate.
        weight_decay: coupled L2 weight decay on kernels (not biases).
        lr_decay, decay_every, min_lr: multiply the learning rate by ``lr_decay``
            every ``decay_every`` epochs while it is above ``min_lr`` (``lr_decay=1``: constant).
    """

    epochs: int = 150
    batch_size: int = 100
    optimizer: str = "adam"
    learning_rate: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    lr_decay: float = 0.9
    decay_every: int = 10
    min_lr: float = 5e-4

    def __post_init__(self):
        check_positive_int(self.epochs, "epochs")
        check_positive_int(self.batch_size, "batch_size")
        check_positive_int(self.decay_every, "decay_every")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        for name in ("learning_rate", "lr_decay"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("weight_decay", "min_lr", "momentum"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def learning_rate_at(epoch: int, training: AttackTraining) -> float:
    """Learning rate during epoch ``epoch`` (0-based) under the step decay of ``training``."""
    lr = training.learning_rate
    for finished in range(1, epoch + 1):
        if finished % training.decay_every == 0 and lr > training.min_lr:
            lr *= training.lr_decay
    return lr


def _regularizer(weight_decay: float):
    import keras

    return keras.regularizers.L2(weight_decay / 2) if weight_decay > 0 else None


def _attention_rnn(inputs, cell: str, hidden: int, reg):
    import keras

    layer = keras.layers.LSTM if cell == "lstm" else keras.layers.GRU
    states = layer(hidden, return_sequences=True, return_state=True, kernel_regularizer=reg,
                   recurrent_regularizer=reg, name=cell)(inputs)
    outputs, last = states[0], states[1]  # (B, T, H) and the last hidden state h_T (B, H)
    energies = keras.layers.Dot(axes=(2, 1), name="energies")([outputs, last])  # h_t . h_T
    weights = keras.layers.Softmax(name="attention")(energies)
    context = keras.layers.Dot(axes=(1, 1), name="context")([weights, outputs])  # sum_t a_t h_t
    return keras.layers.Concatenate(name="context_and_last")([context, last])


def _position_embedding_layer():
    import keras

    class PositionEmbedding(keras.layers.Layer):
        """Adds a learned vector per step (order information for self-attention)."""

        def build(self, input_shape):
            self.table = self.add_weight(shape=tuple(input_shape[1:]), initializer="random_normal", name="table")

        def call(self, x):
            return x + self.table

    return PositionEmbedding(name="positions")


def _transformer(inputs, hidden: int, heads: int, reg):
    import keras

    if hidden % heads:
        raise ValueError(f"hidden ({hidden}) must be divisible by heads ({heads})")
    x = keras.layers.Dense(hidden, kernel_regularizer=reg, name="embed")(inputs)
    x = _position_embedding_layer()(x)
    attention = keras.layers.MultiHeadAttention(heads, hidden // heads, kernel_regularizer=reg, name="self_attention")
    attended = attention(x, x)
    x = keras.layers.LayerNormalization(name="norm_1")(keras.layers.Add()([x, attended]))
    ff = keras.layers.Dense(2 * hidden, activation="relu", kernel_regularizer=reg, name="ff_1")(x)
    ff = keras.layers.Dense(hidden, kernel_regularizer=reg, name="ff_2")(ff)
    x = keras.layers.LayerNormalization(name="norm_2")(keras.layers.Add()([x, ff]))
    return keras.layers.GlobalAveragePooling1D(name="pool")(x)


def _mlp(inputs, layers: tuple[int, ...], reg):
    import keras

    x = keras.layers.Flatten(name="flatten")(inputs)
    for i, width in enumerate(layers):
        x = keras.layers.Dense(width, activation="relu", kernel_regularizer=reg, name=f"dense_{i}")(x)
    return x


def build_attack_model(architecture: str, steps: int, n_metrics: int, *, hidden: int = 50, heads: int = 2,
                       mlp_layers=(512, 128, 32), output: str = "softmax", weight_decay: float = 1e-4,
                       seed: int | None = None):
    """An uncompiled Keras attack model for ``(steps, n_metrics)`` inputs (see module docstring)."""
    import keras

    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
    check_positive_int(steps, "steps")
    check_positive_int(n_metrics, "n_metrics")
    check_positive_int(hidden, "hidden")
    check_positive_int(heads, "heads")
    mlp_layers = tuple(check_positive_int(w, "mlp_layers") for w in mlp_layers)
    with seeded(seed):
        reg = _regularizer(weight_decay)
        inputs = keras.Input((steps, n_metrics), name="sequences")
        if architecture in ("lstm", "gru"):
            features = _attention_rnn(inputs, architecture, hidden, reg)
        elif architecture == "transformer":
            features = _transformer(inputs, hidden, heads, reg)
        else:
            features = _mlp(inputs, mlp_layers, reg)
        units = 2 if output == "softmax" else 1
        logits = keras.layers.Dense(units, kernel_regularizer=reg, name="membership_logits")(features)
        outputs = keras.layers.Activation(output, name="membership")(logits)
        return keras.Model(inputs, outputs, name=f"attack_{architecture}")


def _optimizer(training: AttackTraining):
    import keras

    if training.optimizer == "adam":
        return keras.optimizers.Adam(training.learning_rate)
    return keras.optimizers.SGD(training.learning_rate, momentum=training.momentum)


def _check_features(features, model) -> np.ndarray:
    features = as_float_array(features, "features", ndim=3).astype(np.float32, copy=False)
    expected = tuple(model.inputs[0].shape[1:])
    if features.shape[1:] != expected:
        raise ValueError(f"features have shape {features.shape[1:]} per record, the attack model expects {expected}")
    return features


def train_attack_model(model, features, is_member, training: AttackTraining, *, seed: int = 0, verbose: int = 0):
    """Compile ``model`` with ``training``'s optimiser and fit it on (features, is_member); returns the History."""
    import keras

    features = _check_features(features, model)
    is_member = as_membership(is_member, "is_member", n=features.shape[0]).astype(np.float32)
    if is_member.all() or not is_member.any():
        raise ValueError("is_member must contain both members and non-members")
    two_way = model.outputs[0].shape[-1] == 2
    loss = keras.losses.SparseCategoricalCrossentropy() if two_way else keras.losses.BinaryCrossentropy()
    model.compile(optimizer=_optimizer(training), loss=loss)
    schedule = keras.callbacks.LearningRateScheduler(lambda epoch, lr: learning_rate_at(epoch, training))
    target = is_member if two_way else is_member[:, None]
    recipe = FitConfig(epochs=training.epochs, batch_size=training.batch_size)
    return fit_model(model, features, target, recipe, seed=seed, callbacks=[schedule], verbose=verbose)


def member_probability(model, features, *, batch_size: int = 1024) -> np.ndarray:
    """P(member) per record, from the head's logits in float64.

    ``expit(z_member - z_non_member)`` for the 2-way softmax, ``expit(z)`` for
    the sigmoid: the same values as the float32 activation, except that
    confident records do not all round to exactly 1.0 (which would tie
    members with non-members at the top of the ranking, where TPR at low FPR
    is measured) until the log-odds exceed ~37.
    """
    import keras

    features = _check_features(features, model)
    head = keras.Model(model.inputs[0], model.get_layer("membership_logits").output)
    logits = np.asarray(head.predict(features, batch_size=batch_size, verbose=0), dtype=np.float64)
    return special.expit(logits[:, 1] - logits[:, 0] if logits.shape[1] == 2 else logits[:, 0])
