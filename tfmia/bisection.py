"""Batched bisection towards the decision boundary (Rezaei & Liu's boundary distance).

From each record x0 an attack stepped along the loss gradient until the
predicted class changed; the last point still predicted as the original class
is ``lo``, the first predicted otherwise ``hi``.  :class:`BisectionState`
bisects every record's segment at once: the caller queries the model at
:meth:`~BisectionState.midpoints` and passes the probabilities to
:meth:`~BisectionState.update`, which for every queried record computes

    gap = p_orig(mid) - max_{j != orig} p_j(mid)

and either stops it (``|gap| < theta``: converged, distance = ||mid - x0||_2
from the ORIGINAL x0), or moves ``lo`` (gap > 0, still the original class) or
``hi`` (otherwise) to the midpoint.  A record stops as a failure (distance NaN)
after ``max_steps`` queries without converging.  The arrays live here; each
update is one pass of the C++ core over the queried records.

Only records still active are queried: ``midpoints()`` returns their points
in record order and ``update()`` expects their probabilities in the same
order, so finished records cost no model queries.

Example::

    state = BisectionState(x, lo, hi, y_pred, theta=1e-4)
    distance = state.run(lambda points: model.predict(points, verbose=0))
"""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from . import _core
from ._device import resolve
from ._validate import as_float_array, as_labels, check_finite, check_positive_int

__all__ = ["BisectionState"]


def _check_probability_rows(probs: np.ndarray, eps: float) -> None:
    """Refuse rows that cannot be class probabilities: an entry below 0 or above
    1, or a row sum above 1.  The slack is the rounding of a sum of C numbers in
    [0, 1] at the precision the model produced them in (C ulps of 1, ``eps``
    the machine epsilon of the caller's dtype: float16 rows are widened to
    float64 before this check), so softmax outputs of any precision pass.
    NaN/Inf are left to the core, which names the record."""
    slack = probs.shape[1] * eps
    with np.errstate(invalid="ignore"):
        outside = (probs < 0) | (probs > 1 + slack)
        over = probs.sum(axis=1, dtype=np.float64) > 1 + slack
    bad = np.flatnonzero((outside.any(axis=1) | over) & np.isfinite(probs).all(axis=1))
    if bad.size:
        r = int(bad[0])
        raise ValueError(
            f"mid_probs must hold class probabilities (entries in [0, 1], rows summing to at most 1), "
            f"but row {r} is {probs[r, :6].tolist()}{' ...' if probs.shape[1] > 6 else ''}: "
            "pass the model's softmax outputs, not logits"
        )


class BisectionState:
    """Bisection of N segments [lo, hi] towards the boundary of the class of x0.

    Parameters
    ----------
    x0 : array_like, shape (N, ...)
        The original records; distances are measured from them.  float32 and
        float64 keep their dtype (integers become float64); read, not copied.
    lo, hi : array_like, shape like x0
        Segment ends: ``lo`` still predicted as ``orig_class``, ``hi`` not.
        Copied (in x0's dtype) and updated in place.
    orig_class : array_like of int, shape (N,)
        The class predicted at x0 (checked against the number of classes at
        the first update).
    theta : float
        Stop when the original class and the strongest other class differ by
        less than this in probability (default 1e-4, as Rezaei & Liu).
    max_steps : int
        Queries per record before it stops as a failure.
    device : {"cpu", "cuda", "auto"}
        Where updates run (same results).
    """

    def __init__(self, x0, lo, hi, orig_class, theta=1e-4, *, max_steps=50, device="cpu"):
        x0 = check_finite(as_float_array(x0, "x0"), "x0")
        if x0.ndim < 2:
            raise ValueError(f"x0 must have shape (N, ...) with at least one feature, got shape {x0.shape}")
        n = x0.shape[0]
        self._shape = x0.shape[1:]
        self._x0 = x0.reshape(n, -1)
        self._lo = self._copy_like_x0(lo, "lo", x0)
        self._hi = self._copy_like_x0(hi, "hi", x0)
        self._orig = as_labels(orig_class, "orig_class", n=n)
        if isinstance(theta, bool) or not isinstance(theta, numbers.Real) or not math.isfinite(theta) or theta <= 0:
            raise ValueError(f"theta must be a finite number > 0, got {theta!r}")
        self._theta = float(theta)
        self._max_steps = check_positive_int(max_steps, "max_steps")
        self._use_cuda = resolve(device) == "cuda"
        self._mid = self._midpoints(self._lo, self._hi)
        self._active = np.ones(n, dtype=bool)
        self._converged = np.zeros(n, dtype=bool)
        self._distance = np.full(n, np.nan)
        self._steps = np.zeros(n, dtype=np.int64)

    @staticmethod
    def _copy_like_x0(points, name, x0):
        arr = as_float_array(points, name)
        if arr.shape != x0.shape:
            raise ValueError(f"{name} has shape {arr.shape}, expected the shape of x0 {x0.shape}")
        check_finite(arr, name)
        with np.errstate(over="ignore"):
            copy = np.array(arr, dtype=x0.dtype, order="C", copy=True).reshape(x0.shape[0], -1)
        if not (np.isfinite(copy.min()) and np.isfinite(copy.max())):  # finite values that overflowed the cast
            raise ValueError(f"{name} holds values beyond the range of x0's dtype {x0.dtype}")
        return copy

    @staticmethod
    def _midpoints(lo, hi):
        """(lo + hi) / 2 in double, rounded once to the points' dtype (the kernel's
        formula, bisection_row.hpp), halves added where the sum overflows."""
        with np.errstate(over="ignore"):
            total = lo.astype(np.float64) + hi
        mid = total * 0.5
        overflow = ~np.isfinite(total)
        if overflow.any():
            mid[overflow] = lo[overflow] * 0.5 + hi[overflow].astype(np.float64) * 0.5
        return mid.astype(lo.dtype)

    def midpoints(self) -> np.ndarray:
        """The points to query next: the midpoints of the active records, in
        record order, shape ``(n_active, ...)`` like x0."""
        rows = np.flatnonzero(self._active)
        return self._mid[rows].reshape((len(rows),) + self._shape)

    def update(self, mid_probs) -> None:
        """One bisection step from the class probabilities at :meth:`midpoints`.

        ``mid_probs`` has shape ``(n_active, C)``, rows in the order of
        ``midpoints()``.  Raises ValueError, changing nothing, when a
        probability is NaN/Inf, when a row is not a probability vector (an
        entry outside [0, 1] or a sum above 1: logits passed by mistake, whose
        "gap" would be compared with ``theta`` as if it were a probability),
        or when an ``orig_class`` is not below C.
        """
        rows = np.flatnonzero(self._active)
        probs = as_float_array(mid_probs, "mid_probs", ndim=2, allow_empty=True)
        if probs.shape[0] != len(rows):
            raise ValueError(
                f"mid_probs has {probs.shape[0]} rows, expected one per active record ({len(rows)}, "
                "in the order of midpoints())"
            )
        if len(rows) == 0:
            return
        given = getattr(mid_probs, "dtype", None)
        precision = given if given is not None and np.issubdtype(given, np.floating) else probs.dtype
        _check_probability_rows(probs, float(np.finfo(precision).eps))
        _core.bisection_update(
            self._x0, self._lo, self._hi, self._mid, rows, probs, self._orig, self._active, self._converged,
            self._distance, self._steps, self._theta, self._max_steps, self._use_cuda,
        )
        beyond = rows[np.isinf(self._distance[rows])]
        if beyond.size:
            warnings.warn(
                f"the boundary distance of records {beyond[:10].tolist()} exceeds the float64 range; recorded as inf",
                RuntimeWarning,
                stacklevel=2,
            )

    def run(self, predict) -> np.ndarray:
        """Bisect until every record has converged or used ``max_steps`` queries.

        ``predict`` maps a batch of points ``(K, ...)`` to their class
        probabilities ``(K, C)`` (e.g. ``model.predict``).  Returns
        :attr:`distance`.
        """
        while self._active.any():
            self.update(predict(self.midpoints()))
        return self.distance

    @staticmethod
    def _read_only(a):
        view = a.view()
        view.flags.writeable = False
        return view

    @property
    def active(self) -> np.ndarray:
        """Records still bisecting (bool, N)."""
        return self._read_only(self._active)

    @property
    def converged(self) -> np.ndarray:
        """Records that reached ``|gap| < theta`` (bool, N)."""
        return self._read_only(self._converged)

    @property
    def distance(self) -> np.ndarray:
        """||mid - x0||_2 at convergence; NaN where not (yet) converged (float64, N)."""
        return self._read_only(self._distance)

    @property
    def steps(self) -> np.ndarray:
        """Model queries used per record (int64, N)."""
        return self._read_only(self._steps)

    @property
    def failures(self) -> int:
        """Records that stopped without converging (the step budget ran out)."""
        return int(np.count_nonzero(~self._active & ~self._converged))

    def __repr__(self) -> str:
        n = len(self._active)
        return (
            f"BisectionState(n={n}, active={int(self._active.sum())}, converged={int(self._converged.sum())}, "
            f"failures={self.failures}, theta={self._theta:g})"
        )
