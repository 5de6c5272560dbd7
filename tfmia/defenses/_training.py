"""What the training-time defences share: a Keras model base class that rebuilds a compiled
model's graph, per-step stateless seeds, and helpers for labels, predictions and extra records.

The defences keep every random choice reproducible without stateful RNGs:
the randomness of training step ``t`` (the optimizer's ``iterations`` before
the update) comes from TensorFlow's stateless generators keyed by
``(seed, t)`` (:func:`step_seed`).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from .._validate import class_indices as label_indices
from ..features.predictions import outputs_are_logits

__all__ = ["DefenceModel", "rebuild", "step_seed", "labelled_records", "class_indices", "probabilities",
           "log_probabilities"]


class DefenceModel(keras.Model):
    """Base of the defended models: a functional model holding its defence, built by :func:`rebuild`.

    Subclasses implement ``train_step`` and end it with :meth:`finish_step`.
    """

    def __init__(self, *args, defense, **kwargs):
        super().__init__(*args, **kwargs)
        self.defense = defense
        self.num_classes = int(self.outputs[0].shape[-1])
        self.is_logits = outputs_are_logits(self)

    def finish_step(self, loss, x, y, y_pred, sample_weight):
        """Record the step's loss (weighted by the batch size, as Keras's own ``train_step``) and
        return the logs of the compiled metrics."""
        self._loss_tracker.update_state(loss, sample_weight=tf.shape(y_pred)[0])
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)


def rebuild(model, cls, *, single_input: bool = False, **kwargs):
    """``cls`` over ``model``'s graph, compiled with the arguments ``model`` was compiled with.

    ``cls`` is a :class:`DefenceModel` subclass; ``kwargs`` go to its
    constructor (``defense=...``); ``single_input``
    refuses models with several inputs (for defences that draw extra records
    from one array).  The new model shares
    ``model``'s layers (and weights) and its optimizer object.  The compile
    arguments are read from Keras's record of the ``compile`` call
    (``model._compile_config``), so custom losses and metrics need no
    serialisation round trip.
    """
    if not isinstance(model, keras.Model):
        raise ValueError(f"model must be a keras.Model, got {type(model).__name__}")
    if not model.compiled:
        raise ValueError(f"model must be compiled (optimizer and loss); {model.name!r} is not")
    try:
        inputs, outputs = model.inputs, model.outputs
    except AttributeError:
        raise ValueError(
            f"model must be a Sequential or functional model with a known input shape "
            f"(start it with keras.Input); {model.name!r} is a {type(model).__name__} without one"
        ) from None
    if single_input and len(inputs) != 1:
        raise ValueError(f"model must have a single input for {cls.__name__}, {model.name!r} has {len(inputs)}")
    if len(outputs) != 1:
        raise ValueError(f"model must have a single output (the class scores), {model.name!r} has {len(outputs)}")
    new = cls(inputs=inputs[0] if len(inputs) == 1 else model.input, outputs=outputs[0],
              name=f"{model.name}_{cls.__name__.lower()}", **kwargs)
    new.compile(**model._compile_config.config)
    return new


def step_seed(seed: int, iterations, streams: int):
    """``streams`` independent stateless seeds for the training step ``iterations`` of a run seeded ``seed``.

    ``tf.random.experimental.stateless_split([seed, iterations], streams)``: a
    (streams, 2) int64 tensor, the same for the same seed and step.
    """
    key = tf.stack([tf.constant(seed, tf.int64), tf.cast(tf.convert_to_tensor(iterations), tf.int64)])
    return tf.random.experimental.stateless_split(key, num=streams)


def labelled_records(records, name: str) -> tuple[np.ndarray, np.ndarray]:
    """An ``(x, y)`` pair of arrays as (float32 inputs, int64 class indices).

    ``y`` holds class indices (N or N x 1) or one-hot rows (N x C, turned into indices).
    """
    if not (isinstance(records, tuple) and len(records) == 2):
        raise ValueError(f"{name} must be an (x, y) tuple of arrays, got {type(records).__name__}")
    x, y = np.asarray(records[0]), np.asarray(records[1])
    if not np.issubdtype(x.dtype, np.number) or x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"{name}: x must be a non-empty numeric array of records, got dtype {x.dtype} shape {x.shape}")
    y = label_indices(y, f"{name}: y", n=x.shape[0])
    return x.astype(np.float32), y


def class_indices(y, num_classes: int):
    """Integer class of each label in a batch: sparse labels as they are, one-hot (or soft) rows by argmax."""
    y = tf.convert_to_tensor(y)
    if y.shape.rank == 2 and y.shape[-1] == num_classes:
        return tf.argmax(y, axis=-1, output_type=tf.int32)
    return tf.reshape(tf.cast(y, tf.int32), [-1])


def probabilities(outputs, is_logits: bool):
    """The prediction vectors as probabilities (softmax of logits)."""
    return tf.nn.softmax(outputs, axis=-1) if is_logits else outputs


def log_probabilities(outputs, is_logits: bool):
    """log p of the prediction vectors: log-softmax of logits, or the log of probabilities floored at 1e-30."""
    return tf.nn.log_softmax(outputs, axis=-1) if is_logits else tf.math.log(tf.maximum(outputs, 1e-30))
