"""Distance to the decision boundary (Rezaei & Liu 2021, section 5.4; ALGORITHMS.md "White-box features").

For a record ``x`` predicted as class ``c`` (the true class for a correctly
classified record), walk away from ``c`` along the per-sample L2-normalised
gradient of ``L_c(x) = -log p_c(x)``::

    x_{k+1} = clip(x_k + s * g_k / ||g_k||_2),   g_k = grad_x L_c(x_k)

(the reference normalised the whole batch at once, which collapses to a sign
step; here every record's step has L2 length exactly ``s`` before clipping).
When the predicted class of ``x_k`` is no longer ``c``, the boundary lies
between ``x_{k-1}`` and ``x_k``; bisection (the core's
:class:`~tfmia.bisection.BisectionState`) halves that segment until the gap
``p_c(m) - max_{j != c} p_j(m)`` at the midpoint ``m`` is below ``theta``.
The distance is ``||m - x||_2`` from the ORIGINAL record (the reference
measured from a drifting origin).

Misclassified records are walked from their predicted class: walking away
from a true class that is not predicted would never meet the boundary of the
region the record lies in.  Failures are reported, never dropped: a record whose gradient
vanishes or whose clipped step cannot move (``stalled``), that does not cross
within ``max_steps`` steps, or whose bisection does not reach ``theta`` within
``max_bisections`` halvings gets distance NaN, and :class:`BoundaryDistances`
counts each cause.  Model queries per record are recorded: one forward and
backward pass per gradient step (including the first, at ``x``) and one
forward pass per bisection step.

Records are processed ``batch_size`` at a time in inference mode; within a
batch, the input gradient of the summed per-record losses is each record's
own gradient because inference-mode layers do not mix records.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..bisection import BisectionState
from .._validate import check_positive_int
from ._batching import iter_batches
from .gradients import per_sample_loss
from .predictions import outputs_are_logits

__all__ = ["BoundaryDistances", "BoundaryExtractor", "boundary_distance"]


@dataclasses.dataclass(frozen=True)
class BoundaryDistances:
    """Boundary distances of N records and how they were found.

    Attributes:
        distance: (N,) float64 L2 distance from the record to the boundary; NaN for failures.
        original_class: (N,) the class predicted at the record, walked away from.
        crossed: (N,) whether the walk left the original class within ``max_steps``.
        stalled: (N,) the gradient vanished, or clipping stopped every step, before crossing.
        converged: (N,) bisection reached ``|gap| < theta`` (False where not crossed).
        gradient_queries: (N,) forward + backward passes spent on the record.
        bisection_queries: (N,) forward passes spent bisecting.
    """

    distance: np.ndarray
    original_class: np.ndarray
    crossed: np.ndarray
    stalled: np.ndarray
    converged: np.ndarray
    gradient_queries: np.ndarray
    bisection_queries: np.ndarray

    def __len__(self) -> int:
        return int(self.distance.shape[0])

    @property
    def queries(self) -> np.ndarray:
        """Model queries per record (gradient steps plus bisection steps)."""
        return self.gradient_queries + self.bisection_queries

    @property
    def failures(self) -> int:
        """Records without a distance (NaN)."""
        return int(np.count_nonzero(~self.converged))

    def failure_counts(self) -> dict[str, int]:
        """Failures by cause: stalled, not crossed within the step budget, bisection not converged."""
        return {
            "stalled": int(np.count_nonzero(self.stalled)),
            "not_crossed": int(np.count_nonzero(~self.crossed & ~self.stalled)),
            "not_converged": int(np.count_nonzero(self.crossed & ~self.converged)),
        }

    @classmethod
    def concatenate(cls, parts) -> "BoundaryDistances":
        parts = list(parts)
        return cls(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in dataclasses.fields(cls)})


class BoundaryExtractor:
    """Finds boundary distances for batches of records (see the module docstring).

    Args:
        model: a single-input Keras classifier.
        step_size: L2 length ``s`` of each gradient step; None: ``0.01 * sqrt(d)`` for d input values.
        max_steps: gradient steps before a record counts as not crossing.
        max_bisections: bisection steps before a record counts as not converged.
        theta: bisection stops when ``|p_c - max_{j != c} p_j| < theta``.
        clip: ``(low, high)`` valid input range, or None.
        from_logits: whether the outputs are logits; None reads the model's final activation.
    """

    def __init__(
        self,
        model,
        *,
        step_size: float | None = None,
        max_steps: int = 100,
        max_bisections: int = 40,
        theta: float = 1e-4,
        clip: tuple[float, float] | None = None,
        from_logits: bool | None = None,
    ):
        import tensorflow as tf

        if step_size is not None and not (math.isfinite(step_size) and step_size > 0):
            raise ValueError(f"step_size must be a positive finite number or None, got {step_size!r}")
        if not (math.isfinite(theta) and 0 < theta < 1):
            raise ValueError(f"theta must be in (0, 1), got {theta!r}")
        if clip is not None:
            if len(clip) != 2 or not clip[0] < clip[1]:
                raise ValueError(f"clip must be a (low, high) pair with low < high, got {clip!r}")
            clip = (float(clip[0]), float(clip[1]))
        self.model = model
        self.step_size = step_size
        self.max_steps = check_positive_int(max_steps, "max_steps")
        self.max_bisections = check_positive_int(max_bisections, "max_bisections")
        self.theta = float(theta)
        self.clip = clip
        self.from_logits = outputs_are_logits(model) if from_logits is None else bool(from_logits)
        self._probs_and_grad = tf.function(self._probs_and_grad_fn, reduce_retracing=True)
        self._probs = tf.function(self._probs_fn, reduce_retracing=True)

    columns = ("boundary_distance",)

    def _to_probs(self, outputs):
        import tensorflow as tf

        outputs = tf.cast(outputs, tf.float32)
        return tf.nn.softmax(outputs) if self.from_logits else outputs

    def _probs_fn(self, x):
        return self._to_probs(self.model(x, training=False))

    def _probs_and_grad_fn(self, x, classes):
        """Probabilities at x, the class walked from (argmax where ``classes`` < 0), and grad_x of its loss."""
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(x)
            outputs = self.model(x, training=False)
            probs = self._to_probs(outputs)
            classes = tf.where(classes < 0, tf.argmax(probs, axis=1, output_type=tf.int32), classes)
            loss = tf.reduce_sum(per_sample_loss(outputs, classes, self.from_logits))
        return probs, classes, tape.gradient(loss, x)

    def __call__(self, x: np.ndarray) -> BoundaryDistances:
        """Boundary distances for one batch of records."""
        n, shape = x.shape[0], x.shape[1:]
        dtype = np.dtype(self.model.inputs[0].dtype) if getattr(self.model, "inputs", None) else np.float32
        origin = np.asarray(x, dtype=dtype).reshape(n, -1)
        if self.clip is not None and (origin.min() < self.clip[0] or origin.max() > self.clip[1]):
            raise ValueError(f"x has values outside clip={self.clip}")
        step = self.step_size if self.step_size is not None else 0.01 * math.sqrt(origin.shape[1])
        current, previous = origin.copy(), origin.copy()
        classes = np.full(n, -1, dtype=np.int32)
        alive = np.ones(n, dtype=bool)
        crossed = np.zeros(n, dtype=bool)
        stalled = np.zeros(n, dtype=bool)
        gradient_queries = np.zeros(n, dtype=np.int64)
        for k in range(self.max_steps + 1):
            rows = np.flatnonzero(alive)
            if rows.size == 0:
                break
            probs, used, grads = self._probs_and_grad(current[rows].reshape(-1, *shape), classes[rows])
            probs, grads = np.asarray(probs), np.asarray(grads).reshape(rows.size, -1).astype(np.float64)
            gradient_queries[rows] += 1
            if k == 0:
                classes[rows] = np.asarray(used)
            else:
                flipped = probs.argmax(axis=1) != classes[rows]
                crossed[rows[flipped]] = True
                alive[rows[flipped]] = False
                rows, grads = rows[~flipped], grads[~flipped]
            if k == self.max_steps or rows.size == 0:
                break
            norms = np.linalg.norm(grads, axis=1)
            moved = current[rows] + step * grads / np.where(norms > 0, norms, 1.0)[:, None]
            if self.clip is not None:
                np.clip(moved, *self.clip, out=moved)
            moved = moved.astype(dtype)
            stuck = ~(norms > 0) | np.all(moved == current[rows], axis=1)
            stalled[rows[stuck]] = True
            alive[rows[stuck]] = False
            rows, moved = rows[~stuck], moved[~stuck]
            previous[rows] = current[rows]
            current[rows] = moved
        distance = np.full(n, np.nan)
        converged = np.zeros(n, dtype=bool)
        bisection_queries = np.zeros(n, dtype=np.int64)
        rows = np.flatnonzero(crossed)
        if rows.size:
            state = BisectionState(
                origin[rows].reshape(-1, *shape),
                previous[rows].reshape(-1, *shape),
                current[rows].reshape(-1, *shape),
                classes[rows],
                theta=self.theta,
                max_steps=self.max_bisections,
            )
            distance[rows] = state.run(lambda points: np.asarray(self._probs(points)))
            converged[rows] = state.converged
            bisection_queries[rows] = state.steps
        return BoundaryDistances(
            distance=distance,
            original_class=classes.astype(np.int64),
            crossed=crossed,
            stalled=stalled,
            converged=converged,
            gradient_queries=gradient_queries,
            bisection_queries=bisection_queries,
        )

    def features(self, x: np.ndarray) -> np.ndarray:
        """The distance as an (n, 1) feature column, NaN for failures."""
        return self(x).distance[:, None]


def boundary_distance(model, x, y=None, *, batch_size: int = 64, verbose: int = 0, **options) -> BoundaryDistances:
    """Boundary distance of every record of ``x`` (an array or a dataset of ``x`` or ``(x, y)`` batches).

    ``options`` are those of :class:`BoundaryExtractor` (``step_size``,
    ``max_steps``, ``max_bisections``, ``theta``, ``clip``, ``from_logits``);
    labels are not needed.
    """
    extractor = BoundaryExtractor(model, **options)
    parts = [extractor(xb) for xb, _ in
             iter_batches(model, x, y, batch_size=batch_size, need_labels=False, verbose=verbose)]
    return BoundaryDistances.concatenate(parts)
