"""Records as bounded batches, checked against the model's input.

Every white-box extractor walks its records the same way: arrays ``x`` (with
labels ``y``) are sliced, a ``tf.data.Dataset`` of ``(x, y)`` batches is
iterated and each of its batches split to at most ``batch_size`` records, so
memory follows ``batch_size`` whatever the source.  Each batch is checked
against the model's declared input shape, so a wrong image size or channel
count fails with a ``ValueError`` naming ``x`` instead of deep inside a layer.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from .._validate import check_positive_int, class_indices

__all__ = ["iter_batches", "model_input_shape", "check_batch", "as_label_vector"]


def model_input_shape(model) -> tuple | None:
    """Per-record input shape the model declares (None entries = any size), or None if unknown."""
    inputs = getattr(model, "inputs", None)
    if inputs is None:
        return None
    if len(inputs) != 1:
        raise ValueError(f"white-box features need a single-input model; {model.name!r} has {len(inputs)} inputs")
    return tuple(inputs[0].shape[1:])


def check_batch(x: np.ndarray, expected: tuple | None, name: str = "x") -> None:
    """Raise ValueError unless each record of ``x`` has the model's input shape."""
    if expected is None:
        return
    got = tuple(x.shape[1:])
    if len(got) != len(expected) or any(e is not None and e != g for e, g in zip(expected, got)):
        want = tuple("any" if e is None else e for e in expected)
        raise ValueError(f"{name} has records of shape {got} but the model expects {want} (size and channels)")


def as_label_vector(y, name: str = "y") -> np.ndarray:
    """Class indices from 1-D labels, an (N, 1) column or one-hot rows."""
    return class_indices(y, name)


def _as_float(x) -> np.ndarray:
    x = np.asarray(x)
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise ValueError(f"x must hold numbers, got dtype {x.dtype}")
    return x if x.dtype in (np.float32, np.float64) else x.astype(np.float32)


def iter_batches(
    model, x, y=None, *, batch_size: int, need_labels: bool = True, verbose: int = 0
) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """Yield ``(x_batch, y_batch)`` numpy pairs of at most ``batch_size`` records.

    ``x`` is an array with labels ``y`` (``y`` may be None when
    ``need_labels`` is False), or a ``tf.data.Dataset`` yielding ``(x, y)``
    batches, or ``x`` batches when labels are not needed.  With ``verbose``
    a progress bar advances as the caller finishes each batch.
    """
    check_positive_int(batch_size, "batch_size")
    progress = _progress_bar(x, verbose)
    for xb, yb in _batches(model, x, y, batch_size, need_labels):
        yield xb, yb
        if progress is not None:
            progress.add(xb.shape[0])


def _batches(model, x, y, batch_size: int, need_labels: bool):
    """:func:`iter_batches` without the progress bar."""
    import tensorflow as tf

    expected = model_input_shape(model)
    if isinstance(x, tf.data.Dataset):
        if y is not None:
            raise ValueError("y must be None when x is a tf.data.Dataset of (x, y) batches")
        empty = True
        for element in x:
            if isinstance(element, (tuple, list)):
                if len(element) < 2:
                    raise ValueError("the dataset must yield (x, y) batches")
                xb, yb = _as_float(element[0]), as_label_vector(element[1])
            elif need_labels:
                raise ValueError("the dataset must yield (x, y) batches (labels are needed)")
            else:
                xb, yb = _as_float(element), None
            check_batch(xb, expected)
            if yb is not None and yb.shape[0] != xb.shape[0]:
                raise ValueError(f"a dataset batch has {xb.shape[0]} inputs but {yb.shape[0]} labels")
            for start in range(0, xb.shape[0], batch_size):
                empty = False
                yield xb[start : start + batch_size], None if yb is None else yb[start : start + batch_size]
        if empty:
            raise ValueError("x (the dataset) is empty")
        return
    x = _as_float(x)
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"x must be a non-empty batch of records (N, ...), got shape {x.shape}")
    check_batch(x, expected)
    if y is None:
        if need_labels:
            raise ValueError("y (the true labels) is required when x is an array")
        labels = None
    else:
        labels = as_label_vector(y)
        if labels.shape[0] != x.shape[0]:
            raise ValueError(f"x has {x.shape[0]} records but y has {labels.shape[0]} labels")
    for start in range(0, x.shape[0], batch_size):
        yield x[start : start + batch_size], None if labels is None else labels[start : start + batch_size]


def _progress_bar(x, verbose: int):
    """A Keras Progbar over the records of ``x`` (unknown length for datasets), or None when quiet."""
    if not verbose:
        return None
    import keras

    total = None if not hasattr(x, "shape") else int(x.shape[0])
    return keras.utils.Progbar(total, unit_name="record")
