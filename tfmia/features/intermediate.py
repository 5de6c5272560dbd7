"""Intermediate layer outputs as attack features (Rezaei & Liu 2021, section 5.2).

The attacker reads the activations of one layer for each record.  By default
that is the *input* of the model's final ``Dense`` layer (the penultimate
representation: InceptionV3's 2048-d average pool, a CNN's last hidden
layer); any layer's *output* can be chosen by index into ``model.layers`` or by
name.  Activations are computed in inference mode, a batch at a time, and
flattened to one row per record.
"""

from __future__ import annotations

import numpy as np

from ._batching import iter_batches

__all__ = ["IntermediateExtractor", "intermediate_outputs", "resolve_layer_output"]


def _final_dense_input(model):
    import keras

    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    if not dense:
        raise ValueError(
            f"model {model.name!r} has no Dense layer, so there is no default feature layer; "
            "pass layer= (index or name)"
        )
    return dense[-1].input, f"input of {dense[-1].name!r}"


def resolve_layer_output(model, layer=None):
    """The symbolic tensor to read and a description of it.

    ``layer=None``: the input of the last ``Dense`` layer in ``model.layers``;
    an int: the output of ``model.layers[layer]`` (negative counts from the
    end); a str: the output of the layer with that name.
    """
    if getattr(model, "inputs", None) is None:
        raise ValueError(
            f"model {model.name!r} has no symbolic inputs (a subclassed or unbuilt model); "
            "intermediate features need a Sequential or functional model built with an Input"
        )
    if layer is None:
        return _final_dense_input(model)
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer, str)):
        raise ValueError(f"layer must be None, an index into model.layers or a layer name, got {layer!r}")
    if isinstance(layer, str):
        names = [candidate.name for candidate in model.layers]
        if layer not in names:
            raise ValueError(f"layer {layer!r} is not a layer of model {model.name!r}; its layers are {names}")
        chosen = model.layers[names.index(layer)]
    else:
        count = len(model.layers)
        if not -count <= int(layer) < count:
            raise ValueError(f"layer index {int(layer)} is out of range for model {model.name!r} with {count} layers")
        chosen = model.layers[int(layer)]
    output = chosen.output
    if isinstance(output, (list, tuple, dict)):
        raise ValueError(f"layer {chosen.name!r} has several outputs; choose a layer with one output")
    return output, f"output of {chosen.name!r}"


class IntermediateExtractor:
    """Reads one layer's activations for batches of records (see the module docstring).

    Args:
        model: a Sequential or functional Keras model.
        layer: None (input of the final Dense layer), an index into ``model.layers`` or a layer name.
    """

    def __init__(self, model, layer=None):
        import keras
        import tensorflow as tf

        tensor, self.description = resolve_layer_output(model, layer)
        self.model = model
        self._reader = keras.Model(model.inputs, tensor)
        self._run = tf.function(lambda x: self._reader(x, training=False), reduce_retracing=True)
        self.width = int(np.prod(tensor.shape[1:]))

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(f"activation_{i}" for i in range(self.width))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Activations of the batch ``x``, one flattened float32 row per record."""
        out = np.asarray(self._run(x))
        return out.reshape(out.shape[0], -1)


def intermediate_outputs(model, x, y=None, *, layer=None, batch_size: int = 256, verbose: int = 0) -> np.ndarray:
    """Activations of ``layer`` for every record of ``x``, as an (N, width) float32 array.

    ``x`` is an array or a ``tf.data.Dataset`` of ``x`` or ``(x, y)``
    batches; labels are not needed.  See :class:`IntermediateExtractor` for
    ``layer``.
    """
    extractor = IntermediateExtractor(model, layer)
    return np.concatenate([extractor(xb) for xb, _ in
                           iter_batches(model, x, y, batch_size=batch_size, need_labels=False, verbose=verbose)])
