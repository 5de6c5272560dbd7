"""Model outputs in inference mode, batched, with logits-vs-probabilities detection."""

from __future__ import annotations

import weakref

import numpy as np

from .._validate import check_positive_int, class_indices

__all__ = ["predict_outputs", "outputs_are_logits", "predict"]


def _output_layer(model):
    """The layer that produces a Sequential or functional Keras model's output, or None."""
    import keras

    if isinstance(model, keras.Sequential):
        return model.layers[-1] if model.layers else None
    try:
        outputs = model.outputs
    except AttributeError:  # a subclassed model: its output layer is not recorded
        return None
    if not outputs or len(outputs) != 1:
        return None
    history = getattr(outputs[0], "_keras_history", None)
    return getattr(history, "operation", None)


def _final_activation(layer) -> str | None:
    """``"softmax"``, ``"log_softmax"``, ``"linear"`` or another name for the layer's output nonlinearity."""
    import keras

    if isinstance(layer, keras.layers.Softmax):
        return "softmax"
    activation = getattr(layer, "activation", None)
    if activation is None:
        return "linear" if isinstance(layer, keras.layers.Dense) else None
    return getattr(activation, "__name__", type(activation).__name__)


def outputs_are_logits(model) -> bool:
    """Whether ``model``'s outputs are logits (True) or probabilities (False), as the model itself says.

    Never guessed from output values:

    * an object with an ``outputs_are_logits`` attribute declares it (a
      :class:`~tfmia.defenses.DefendedModel` emits probabilities);
    * a Sequential or functional Keras model is read from the layer that
      produces its output: a ``Softmax`` layer or a softmax activation gives
      probabilities; no activation (linear) or ``log_softmax`` gives logits;
    * anything else -- a sigmoid or other final activation, a subclassed
      model whose output layer is not recorded, an object without layers --
      raises ``ValueError``: pass ``from_logits=True`` or ``False`` explicitly.
    """
    declared = getattr(model, "outputs_are_logits", None)
    if isinstance(declared, (bool, np.bool_)):
        return bool(declared)
    import keras

    if not isinstance(model, keras.Model):
        raise ValueError(
            f"cannot tell whether the outputs of a {type(model).__name__} are logits or probabilities; "
            "pass from_logits=True or from_logits=False"
        )
    layer = _output_layer(model)
    activation = None if layer is None else _final_activation(layer)
    if activation == "softmax":
        return False
    if activation in ("linear", "log_softmax"):
        return True
    where = (
        f"its output layer {layer.name!r} has activation {activation!r}"
        if layer is not None
        else "its output layer cannot be identified (a subclassed model?)"
    )
    raise ValueError(
        f"cannot tell whether model {model.name!r} outputs logits or probabilities: {where}; "
        "pass from_logits=True or from_logits=False (class scores must be logits or softmax probabilities)"
    )


def _logits_function(model):
    """``batch -> pre-softmax scores`` of a Keras model that ends in a softmax.

    For a final ``Dense(..., activation="softmax")`` layer the scores are
    ``h @ kernel + bias`` of its input ``h``; for a final ``Softmax`` layer,
    its input.  Needs a model with a functional graph (Sequential or
    functional, built on an ``Input``).
    """
    import keras

    last = _output_layer(model)
    activation = None if last is None else _final_activation(last)
    if activation != "softmax":
        ends = "its output layer cannot be identified" if last is None else f"it ends in activation {activation!r}"
        raise ValueError(f"logits=True reads the scores before a final softmax, but {ends}")
    try:
        inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
        body = keras.Model(inputs, last.input)
    except (AttributeError, ValueError) as exc:
        raise ValueError(
            "logits=True needs a Sequential or functional model built on an Input, "
            f"so that the input of its final layer can be read ({exc})"
        ) from None
    if isinstance(last, (keras.layers.Softmax, keras.layers.Activation)):
        return body
    if not isinstance(last, keras.layers.Dense):
        raise ValueError(
            f"logits=True reads the logits of a final Dense, Softmax or Activation('softmax') layer; "
            f"this model ends in {type(last).__name__} {last.name!r}"
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

    if logits:  # a model without a final softmax already outputs its logits
        layer = _output_layer(model)
        logits = layer is None or _final_activation(layer) not in ("linear", "log_softmax")
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


def _check_real_inputs(x) -> None:
    """Refuse complex, object and string input arrays (a model would silently drop or fail on them)."""
    for part in x if isinstance(x, (tuple, list)) else (x,):
        kind = np.asarray(part).dtype.kind if isinstance(part, (np.ndarray, list)) else None
        if kind is not None and kind not in "biuf":
            raise ValueError(f"x must hold real numbers (bool, integer or float), got dtype {np.asarray(part).dtype}")


def predict_outputs(model, x, y=None, *, batch_size: int = 256, from_logits: bool | None = None,
                    logits: bool = False):
    """Run ``model`` over records and return ``(outputs, labels, is_logits)``.

    ``x`` is an array (or tuple of arrays) with labels ``y``, or a
    ``tf.data.Dataset`` of ``(x, y)`` batches (then ``y`` must be None).
    Labels are class indices or one-hot rows (:func:`tfmia._validate.class_indices`).
    Outputs are float32/float64 N x C.  ``is_logits`` is what the model
    declares (:func:`outputs_are_logits`, which refuses to guess) unless
    ``from_logits`` says so explicitly.  ``logits=True``: the pre-softmax
    scores of a model ending in a softmax (array input only; see
    :func:`predict`).
    """
    import tensorflow as tf

    if logits and from_logits is not None:
        raise ValueError("give either logits=True or from_logits, not both")
    if from_logits is not None and not isinstance(from_logits, (bool, np.bool_)):
        raise ValueError(f"from_logits must be True, False or None, got {from_logits!r}")
    # Known before any inference: whether the outputs will be logits.
    is_logits = True if logits else (outputs_are_logits(model) if from_logits is None else bool(from_logits))
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
            labels.append(np.asarray(batch[1]))
        if not outputs:
            raise ValueError("the dataset is empty")
        out, lab = np.concatenate(outputs), np.concatenate(labels)
    else:
        if y is None:
            raise ValueError("y (the true labels) is required when x is an array")
        _check_real_inputs(x)
        out = predict(model, x, batch_size=batch_size, logits=logits)
        lab = y
    if out.ndim != 2:
        raise ValueError(f"model outputs must be N x C class scores, got shape {out.shape}")
    labels = class_indices(lab, "y", n=out.shape[0], num_classes=out.shape[1])
    return out, labels, is_logits
