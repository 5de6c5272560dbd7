"""Per-record metric rows and multi-metric sequences over model snapshots.

SeqMIA (Li et al. 2024, section 4.2) describes record ``i`` by how several
per-sample metrics evolve over a series of models ``M_1 .. M_T`` (the
distillation snapshots, in training order) followed by the original model
``M_{T+1}``::

    S_i[t, m] = metric_m(M_t(x_i), y_i),   t = 1 .. T+1,

a ``(T+1) x M`` matrix, the original model in the LAST row.  The default
metrics are the five of ALGORITHMS.md: loss ``-log p_y``, ``max_k p_k``, the
standard deviation of ``p`` (ddof 0), the entropy and Song & Mittal's modified
entropy, computed by :func:`tfmia.signals.compute`.  TrajectoryMIA (Liu et al.
2022) uses the loss alone.

Everything here is numpy plus inference-mode ``model.predict``; the attacks
build their inputs from these functions, the callbacks record with them.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .. import signals as _signals
from .._validate import as_float_array, as_labels, check_positive_int
from .predictions import outputs_are_logits, predict

__all__ = [
    "SEQUENCE_METRICS",
    "check_metrics",
    "check_records",
    "signal_rows",
    "model_signal_rows",
    "assemble_sequences",
    "select_metrics",
    "shuffle_steps",
    "SequenceScaler",
]

SEQUENCE_METRICS = ("loss", "max", "sd", "entropy", "modified_entropy")
"""The metrics of a SeqMIA sequence, in column order (Li et al. 2024, section 4.2)."""


def check_metrics(metrics, name: str = "metrics") -> tuple[str, ...]:
    """Validate a non-empty subset of :data:`SEQUENCE_METRICS` without repeats; return it as a tuple."""
    if isinstance(metrics, str):
        metrics = (metrics,)
    try:
        metrics = tuple(metrics)
    except TypeError:
        raise ValueError(f"{name} must be a sequence of metric names, got {metrics!r}") from None
    if not metrics:
        raise ValueError(f"{name} must name at least one of {SEQUENCE_METRICS}")
    unknown = [m for m in metrics if m not in SEQUENCE_METRICS]
    if unknown:
        raise ValueError(f"{name}: unknown metric(s) {unknown}; choose from {SEQUENCE_METRICS}")
    if len(set(metrics)) != len(metrics):
        raise ValueError(f"{name} must not repeat a metric, got {metrics}")
    return metrics


def check_records(model, x, y, name: str = "x") -> tuple[np.ndarray, np.ndarray]:
    """Validate records ``(x, y)`` for ``model``: one label per record, per-record shape = the model's input shape.

    The shape is checked when the model declares its input (functional and
    ``Sequential`` models with an ``Input``); otherwise the model decides.
    Returns ``x`` as an array and ``y`` as int64 labels.
    """
    x = np.asarray(x)
    if x.ndim < 1 or x.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one record, got shape {x.shape}")
    y = as_labels(y, f"labels of {name}", n=x.shape[0])
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):  # subclassed or not yet built: no declared input
        inputs = None
    if inputs and len(inputs) == 1:
        expected = tuple(inputs[0].shape[1:])
        got = tuple(x.shape[1:])
        if len(expected) != len(got) or any(e is not None and e != g for e, g in zip(expected, got)):
            raise ValueError(f"{name}: records have shape {got} but the model expects {expected} per record")
    return x, y


def signal_rows(outputs, labels, *, from_logits: bool, metrics=SEQUENCE_METRICS) -> np.ndarray:
    """``(N, M)`` float64 rows ``[metric_1, ..., metric_M]`` of one model's outputs on N records."""
    metrics = check_metrics(metrics)
    computed = _signals.compute(outputs, labels, from_logits)  # validates both, naming them
    return np.stack([np.asarray(computed[m], dtype=np.float64) for m in metrics], axis=1)


def model_signal_rows(model, x, y, *, metrics=SEQUENCE_METRICS, batch_size: int = 256,
                      from_logits: bool | None = None) -> np.ndarray:
    """Run ``model`` over ``x`` in inference mode and return its ``(N, M)`` signal rows.

    Whether the outputs are logits is read from the model's last layer unless
    ``from_logits`` is given (see :func:`~tfmia.features.predictions.outputs_are_logits`).
    """
    outputs = predict(model, x, batch_size=batch_size)
    is_logits = outputs_are_logits(model) if from_logits is None else bool(from_logits)
    return signal_rows(outputs, y, from_logits=is_logits, metrics=metrics)


def assemble_sequences(snapshot_rows, final_rows) -> np.ndarray:
    """Sequences ``(N, T+1, M)`` from snapshot rows ``(T, N, M)`` and the original model's rows ``(N, M)``.

    Step ``t < T`` is snapshot ``t`` (training order); step ``T`` (the last)
    is the original model, as in Li et al. 2024, section 4.2.
    """
    snapshot_rows = as_float_array(snapshot_rows, "snapshot_rows", ndim=3)
    final_rows = as_float_array(final_rows, "final_rows", ndim=2)
    if snapshot_rows.shape[1:] != final_rows.shape:
        raise ValueError(
            f"snapshot_rows (T, N, M) = {snapshot_rows.shape} does not match final_rows (N, M) = {final_rows.shape}"
        )
    return np.concatenate([snapshot_rows, final_rows[None]], axis=0).transpose(1, 0, 2).copy()


def select_metrics(sequences, metrics, *, available=SEQUENCE_METRICS) -> np.ndarray:
    """The columns of ``sequences (N, T, len(available))`` named by ``metrics``, in that order."""
    metrics = check_metrics(metrics)
    available = check_metrics(available, "available")
    sequences = as_float_array(sequences, "sequences", ndim=3)
    if sequences.shape[2] != len(available):
        raise ValueError(f"sequences has {sequences.shape[2]} metrics, expected {len(available)} ({available})")
    missing = [m for m in metrics if m not in available]
    if missing:
        raise ValueError(f"metrics {missing} are not among the recorded metrics {available}")
    return sequences[:, :, [available.index(m) for m in metrics]]


def shuffle_steps(sequences, *, seed: int) -> np.ndarray:
    """Each record's steps in an independent random order: the "shuffled" control.

    Keeps every record's values and destroys the order, so an attack that
    does as well on shuffled sequences does not use the order (Liu et al.
    2022's control for TrajectoryMIA).
    """
    sequences = as_float_array(sequences, "sequences", ndim=3)
    rng = np.random.default_rng(seed)
    order = rng.random(sequences.shape[:2]).argsort(axis=1)
    return np.take_along_axis(sequences, order[:, :, None], axis=1)


@dataclasses.dataclass(frozen=True)
class SequenceScaler:
    """Per-metric standardisation ``(s - mean_m) / std_m`` with statistics of reference sequences.

    SeqMIA's reference feeds raw metrics (losses up to ~69 next to
    probabilities in [0, 1]); standardising each metric with the SHADOW
    sequences' mean and standard deviation (over records and steps) puts them
    on one scale without looking at the target.  A metric with zero spread
    keeps unit scale.
    """

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, sequences) -> "SequenceScaler":
        sequences = as_float_array(sequences, "sequences", ndim=3)
        flat = sequences.reshape(-1, sequences.shape[2])
        std = flat.std(axis=0)
        return cls(mean=flat.mean(axis=0), std=np.where(std > 0, std, 1.0))

    @classmethod
    def identity(cls, n_metrics: int) -> "SequenceScaler":
        check_positive_int(n_metrics, "n_metrics")
        return cls(mean=np.zeros(n_metrics), std=np.ones(n_metrics))

    def transform(self, sequences) -> np.ndarray:
        sequences = as_float_array(sequences, "sequences", ndim=3)
        if sequences.shape[2] != self.mean.shape[0]:
            raise ValueError(
                f"sequences has {sequences.shape[2]} metrics, the scaler was fitted on {self.mean.shape[0]}"
            )
        return ((sequences - self.mean) / self.std).astype(np.float32)
