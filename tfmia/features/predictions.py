"""Model outputs in inference mode, batched, with logits-vs-probabilities detection."""

from __future__ import annotations

import weakref

import numpy as np

from .._validate import as_labels, check_positive_int

__all__ = ["predict_outputs", "outputs_are_logits", "predict"]


def outputs_are_logits(model) -> bool:
    """True unless the model ends in a softmax (activation or ``Softmax`` layer)."""
    import keras

    last = model.layers[-1] if getattr(model, "layers", None) else None
    if last is None:
        return True
    if isinstance(last, keras.layers.Softmax):
        return False
    activation = getattr(last, "activation", None)
    return not (activation is keras.activations.softmax or getattr(activation, "__name__", "") == "softmax")


def _logits_function(model):
    """``batch -> pre-softmax scores`` of a Keras model that ends in a softmax.

    For a final ``Dense(..., activation="softmax")`` layer the scores are
    ``h @ kernel + bias`` of its input ``h``; for a final ``Softmax`` layer,
    its input.  Needs a model with a functional graph (Sequential or
    functional, built on an ``Input``).
    """
    import keras

    last = model.layers[-1]
    try:
        inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
        body = keras.Model(inputs, last.input)
    except (AttributeError, ValueError) as exc:
        raise ValueError(
            "logits=True needs a Sequential or functional model built on an Input, "
            f"so that the input of its final layer can be read ({exc})"
        ) from None
    if isinstance(last, keras.layers.Softmax):
        return body
    if not isinstance(last, keras.layers.Dense):
        raise ValueError(
            f"logits=True reads the logits of a final Dense or Softmax layer; this model ends in "
            f"{type(last).__name__} {last.name!r}"
        )

    def dense_logits(batch, training=False):
        hidden = body(batch, training=training)
        scores = keras.ops.matmul(keras.ops.cast(hidden, last.kernel.dtype), last.kernel)
        return scores + last.bias if last.use_bias else scores

    return dense_logits


# Compiled inference functions per live Keras model (outputs, and logits when
# asked), so that auditing the same model again -- every epoch, in a
# callback -- reuses their traces.
_INFERENCE_FUNCTIONS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _inference_function(model, logits: bool = False):
    """``tf.function`` computing ``model(batch, training=False)``, or its logits; holds the model weakly.

    The logits function holds a sub-model sharing ``model``'s layers, not
    ``model`` itself, so the cache entry still goes when the model does.
    """
    import tensorflow as tf

    logits = logits and not outputs_are_logits(model)
    functions = _INFERENCE_FUNCTIONS.setdefault(model, {})
    function = functions.get(logits)
    if function is None:
        if logits:
            forward = _logits_function(model)
        else:
            model_ref = weakref.ref(model)

            def forward(batch, training=False):
                return model_ref()(batch, training=training)

        function = tf.function(lambda batch: forward(batch, training=False), reduce_retracing=True)
        functions[logits] = function
    return function


def predict(model, x, *, batch_size: int = 256, logits: bool = False) -> np.ndarray:
    """``model`` outputs for array input ``x`` in inference mode (``training=False``).

    A Keras model with one array input runs batch by batch through a cached
    ``tf.function`` -- about 1.5x faster than ``model.predict`` on 2 CPU cores
    for a small CNN, whose per-call data-adapter overhead dominates
    (``benchmarks/bench_callback.py``).  Other models and inputs (several
    inputs, wrappers with their own ``predict``) go through ``model.predict``.

    ``logits=True`` returns the pre-softmax scores of a model that ends in a
    softmax (see :func:`_logits_function`) instead of its probabilities.
    """
    import keras

    check_positive_int(batch_size, "batch_size")
    is_keras = isinstance(model, keras.Model)
    if logits and not is_keras:
        raise ValueError(f"logits=True needs a Keras model, got {type(model).__name__}")
    if is_keras and isinstance(x, np.ndarray) and x.ndim >= 1 and len(x) > 0:
        function = _inference_function(model, logits)
        out = [function(x[start:start + batch_size]) for start in range(0, len(x), batch_size)]
        if any(isinstance(part, (list, tuple, dict)) for part in out):
            raise ValueError("model must have a single output (the class scores)")
        return np.concatenate([np.asarray(part) for part in out])
    if logits:
        raise ValueError("logits=True needs x as one non-empty numpy array")
    out = model.predict(x, batch_size=batch_size, verbose=0)
    if isinstance(out, (list, tuple, dict)):
        raise ValueError("model must have a single output (the class scores)")
    return np.asarray(out)


def predict_outputs(model, x, y=None, *, batch_size: int = 256, from_logits: bool | None = None,
                    logits: bool = False):
    """Run ``model`` over records and return ``(outputs, labels, is_logits)``.

    ``x`` is an array (or tuple of arrays) with labels ``y``, or a
    ``tf.data.Dataset`` of ``(x, y)`` batches (then ``y`` must be None).
    Outputs are float32/float64 N x C.  ``is_logits`` follows
    :func:`outputs_are_logits` unless ``from_logits`` is given.
    ``logits=True``: the pre-softmax scores of a model ending in a softmax
    (array input only; see :func:`predict`).
    """
    import tensorflow as tf

    if logits and from_logits is not None:
        raise ValueError("give either logits=True or from_logits, not both")
    if isinstance(x, tf.data.Dataset):
        if logits:
            raise ValueError("logits=True needs x as an array, not a tf.data.Dataset")
        if y is not None:
            raise ValueError("y must be None when x is a tf.data.Dataset of (x, y) batches")
        outputs, labels = [], []
        for batch in x:
            if not isinstance(batch, (tuple, list)) or len(batch) < 2:
                raise ValueError("the dataset must yield (x, y) batches")
            outputs.append(np.asarray(model(batch[0], training=False)))
            labels.append(np.asarray(batch[1]).reshape(-1))
        if not outputs:
            raise ValueError("the dataset is empty")
        out, lab = np.concatenate(outputs), np.concatenate(labels)
    else:
        if y is None:
            raise ValueError("y (the true labels) is required when x is an array")
        out = predict(model, x, batch_size=batch_size, logits=logits)
        lab = np.asarray(y).reshape(-1) if np.ndim(y) > 1 and np.shape(y)[-1] == 1 else np.asarray(y)
    if out.ndim != 2:
        raise ValueError(f"model outputs must be N x C class scores, got shape {out.shape}")
    if lab.ndim == 2:  # one-hot labels
        lab = lab.argmax(axis=1)
    labels = as_labels(lab, "y", n=out.shape[0], num_classes=out.shape[1])
    if logits:
        is_logits = True
    else:
        is_logits = outputs_are_logits(model) if from_logits is None else bool(from_logits)
    return out, labels, is_logits
