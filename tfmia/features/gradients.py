"""Per-sample gradient statistics (Rezaei & Liu 2021, section 5.3; ALGORITHMS.md "White-box features").

For each record ``(x, y)`` the loss is the model's training objective on that
record alone, in inference mode::

    L(x, y) = -log p_y(x) + sum(model.losses)

(the true-label cross-entropy plus the regularisation losses Keras collects:
weight regularisers, and activity regularisers evaluated on this record).
From logits, ``-log p_y`` is ``sparse_softmax_cross_entropy_with_logits``;
from probabilities it is ``-log max(p_y, 1e-30)``.  Its gradient ``g``, with
respect to all trainable weights or to the input, is summarised by seven
statistics over the raw signed entries: L1 ``sum|g|``, L2 ``sqrt(sum g^2)``,
``min|g|``, ``max|g|``, ``mean(g)``, skewness (biased, ``scipy.stats.skew``)
and excess kurtosis (biased, ``scipy.stats.kurtosis``).

Per-sample gradients are computed a batch at a time with
``tf.vectorized_map`` over single-record forward/backward passes inside one
``tf.function``.  The per-variable gradients of a batch go straight into the
core's :class:`~tfmia.gradstats.GradientStats` accumulator (merged moments
across variables), so the concatenated gradient never exists.  Gradient
memory is ``batch_size x`` the size of the variables differentiated together
(float32); with ``max_gradient_bytes`` the variables are split into groups
that each fit the budget (one extra forward/backward pass per group), so it is
bounded by ``max(max_gradient_bytes, batch_size x largest variable)``, next to
the activations of ``batch_size`` single-record passes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time

import numpy as np

from .._device import resolve
from ..gradstats import COLUMNS, GradientStats
from .._validate import check_positive_int
from ._batching import iter_batches
from .predictions import outputs_are_logits

__all__ = ["WRT", "COLUMNS", "per_sample_loss", "GradientStatsExtractor", "GradientStatistics", "gradient_statistics"]

WRT = ("weights", "input")
"""What the loss is differentiated with respect to: all trainable weights, or the input."""

PROB_FLOOR = 1e-30
"""Floor on ``p_y`` before the log when the model outputs probabilities (as the signals module)."""


def per_sample_loss(outputs, labels, from_logits: bool):
    """Cross-entropy ``-log p_y`` per record, as a float32 tensor of shape (B,)."""
    import tensorflow as tf

    outputs = tf.cast(outputs, tf.float32)
    labels = tf.cast(labels, tf.int32)
    if from_logits:
        return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=outputs)
    p_y = tf.gather(outputs, labels, axis=1, batch_dims=1)
    return -tf.math.log(tf.maximum(p_y, PROB_FLOOR))


class _DropPforFallbackNotice(logging.Filter):
    """Hides pfor's "<op> uses a while_loop. Fix that!" notice (e.g. Conv2DBackpropFilter).

    The fallback is correct, just not vectorised; the notice would otherwise
    print once per convolution on every trace.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "uses a while_loop" not in record.getMessage()


@contextlib.contextmanager
def quiet_pfor():
    """Silence pfor's while_loop fallback notice while tracing (scoped to the block)."""
    logger, notice_filter = logging.getLogger("tensorflow"), _DropPforFallbackNotice()
    logger.addFilter(notice_filter)
    try:
        yield
    finally:
        logger.removeFilter(notice_filter)


def _variable_groups(variables, batch_size: int, max_gradient_bytes: int | None) -> list[list]:
    """Consecutive groups of variables whose per-sample gradients for a batch fit the byte budget."""
    if max_gradient_bytes is None:
        return [list(variables)]
    groups, current, used = [], [], 0
    for variable in variables:
        size = int(np.prod(variable.shape)) * batch_size * 4
        if current and used + size > max_gradient_bytes:
            groups.append(current)
            current, used = [], 0
        current.append(variable)
        used += size
    if current:
        groups.append(current)
    return groups


class GradientStatsExtractor:
    """Seven gradient statistics per record for batches of records (see the module docstring).

    Args:
        model: a single-input Keras classifier (N x C outputs).
        wrt: ``"weights"`` (all trainable weights) or ``"input"``.
        batch_size: records differentiated together; the padded batch shape is traced once.
        from_logits: whether the outputs are logits; None reads the model's final activation.
        regularization: add ``sum(model.losses)`` to each record's loss.
        max_gradient_bytes: memory budget for one group of per-sample gradients (None: one group).
        device: where the statistics kernel runs (``"cpu"``, ``"cuda"``, ``"auto"``).

    After calls, ``gradient_seconds`` and ``statistics_seconds`` hold the time
    spent computing gradients and in the statistics kernel.
    """

    def __init__(
        self,
        model,
        *,
        wrt: str = "weights",
        batch_size: int = 32,
        from_logits: bool | None = None,
        regularization: bool = True,
        max_gradient_bytes: int | None = 1 << 30,
        device: str = "cpu",
    ):
        import tensorflow as tf

        if wrt not in WRT:
            raise ValueError(f"wrt must be one of {WRT}, got {wrt!r}")
        self.batch_size = check_positive_int(batch_size, "batch_size")
        if max_gradient_bytes is not None:
            check_positive_int(max_gradient_bytes, "max_gradient_bytes")
        if wrt == "weights" and not model.trainable_variables:
            raise ValueError(f"model {model.name!r} has no trainable weights to differentiate (wrt='weights')")
        self.model = model
        self.wrt = wrt
        self.device = resolve(device)  # fail now, not after the first gradient pass
        self.num_classes = int(model.outputs[0].shape[-1]) if getattr(model, "outputs", None) else None
        self.from_logits = outputs_are_logits(model) if from_logits is None else bool(from_logits)
        self.regularization = bool(regularization)
        if wrt == "weights":
            groups = _variable_groups(model.trainable_variables, self.batch_size, max_gradient_bytes)
        else:
            groups = [None]
        self._functions = [tf.function(self._per_example_gradients(group)) for group in groups]
        self.gradient_seconds = 0.0
        self.statistics_seconds = 0.0
        self.size: int | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(f"{self.wrt}_{c}" for c in COLUMNS)

    def _per_example_gradients(self, variables):
        """A function (x, y) -> per-sample gradients: list of (B, *shape) tensors."""
        import tensorflow as tf

        model, from_logits, regularization = self.model, self.from_logits, self.regularization

        def one(args):
            x, y = args
            x = x[None]
            with tf.GradientTape() as tape:
                if variables is None:
                    tape.watch(x)
                loss = per_sample_loss(model(x, training=False), y[None], from_logits)[0]
                if regularization and model.losses:
                    loss = loss + tf.add_n([tf.cast(term, loss.dtype) for term in model.losses])
            sources = [x] if variables is None else variables
            grads = tape.gradient(loss, sources, unconnected_gradients=tf.UnconnectedGradients.ZERO)
            return [tf.cast(g, tf.float32) for g in grads]

        def batch(x, y):
            return tf.vectorized_map(one, (x, y))

        return batch

    def __call__(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The (b, 7) statistics (float64, ``COLUMNS`` order) for a batch of at most ``batch_size`` records."""
        n = x.shape[0]
        if not 0 < n <= self.batch_size:
            raise ValueError(f"a batch must hold 1 to batch_size={self.batch_size} records, got {n}")
        if self.num_classes is not None and y.max() >= self.num_classes:
            raise ValueError(f"y must be < {self.num_classes} (the model's classes), found {int(y.max())}")
        if n < self.batch_size:  # pad to the traced batch shape instead of retracing
            reps = np.resize(np.arange(n), self.batch_size)
            x, y = x[reps], y[reps]
        x = np.asarray(x, dtype=self.model.inputs[0].dtype if getattr(self.model, "inputs", None) else np.float32)
        y = np.asarray(y, dtype=np.int32)
        stats = GradientStats(n, device=self.device)
        for function in self._functions:
            start = time.perf_counter()
            with quiet_pfor():
                grads = [np.asarray(g)[:n] for g in function(x, y)]
            middle = time.perf_counter()
            for g in grads:
                stats.update(g)
            del grads
            self.gradient_seconds += middle - start
            self.statistics_seconds += time.perf_counter() - middle
        start = time.perf_counter()
        values = stats.finalize()
        self.statistics_seconds += time.perf_counter() - start
        self.size = int(stats.count)
        return values


@dataclasses.dataclass(frozen=True)
class GradientStatistics:
    """Gradient statistics of N records.

    Attributes:
        values: (N, 7) float64 in ``columns`` order.
        labels: (N,) the true labels the losses used.
        columns: ``"<wrt>_<statistic>"`` names.
        size: number of gradient entries per record (parameters, or input values).
        gradient_seconds, statistics_seconds: time in gradient computation and in the statistics kernel.
    """

    values: np.ndarray
    labels: np.ndarray
    columns: tuple[str, ...]
    size: int
    gradient_seconds: float
    statistics_seconds: float


def gradient_statistics(
    model,
    x,
    y=None,
    *,
    wrt: str = "weights",
    batch_size: int = 32,
    from_logits: bool | None = None,
    regularization: bool = True,
    max_gradient_bytes: int | None = 1 << 30,
    device: str = "cpu",
    verbose: int = 0,
) -> GradientStatistics:
    """Seven statistics of each record's loss gradient (see the module docstring).

    ``x`` is an array with labels ``y`` or a ``tf.data.Dataset`` of
    ``(x, y)`` batches.  The other arguments are those of
    :class:`GradientStatsExtractor`.
    """
    extractor = GradientStatsExtractor(
        model,
        wrt=wrt,
        batch_size=batch_size,
        from_logits=from_logits,
        regularization=regularization,
        max_gradient_bytes=max_gradient_bytes,
        device=device,
    )
    values, labels = [], []
    for xb, yb in iter_batches(model, x, y, batch_size=batch_size, verbose=verbose):
        values.append(extractor(xb, yb))
        labels.append(yb)
    return GradientStatistics(
        values=np.concatenate(values),
        labels=np.concatenate(labels),
        columns=extractor.columns,
        size=extractor.size,
        gradient_seconds=extractor.gradient_seconds,
        statistics_seconds=extractor.statistics_seconds,
    )
