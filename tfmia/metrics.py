"""ROC curve, AUC, TPR at low FPR and exact binomial intervals.

Members are the positive class.  For every distinct score ``s`` (descending)
the ROC has the point

.. math::

    \\mathrm{FPR}(s) = \\frac{\\#\\{\\text{non-members}: x \\ge s\\}}{n_\\text{out}}, \\qquad
    \\mathrm{TPR}(s) = \\frac{\\#\\{\\text{members}: x \\ge s\\}}{n_\\text{in}},

after a first point (0, 0) at threshold +inf.  The curve and the AUC are
those of scikit-learn to the last bit: :func:`roc_curve` equals
``sklearn.metrics.roc_curve(is_member, scores, drop_intermediate=False)``
and :func:`auc` equals ``sklearn.metrics.roc_auc_score(is_member, scores)``
(same points, same float64 operations, and numpy's pairwise summation of the
trapezoids replicated in the core).  They are computed by a radix sort in
the C++ core.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
import scipy.stats

from . import _core
from ._device import resolve
from ._validate import as_float_array, as_membership, check_fraction

__all__ = ["LowFPRWarning", "auc", "clopper_pearson", "low_fpr_index", "roc_counts", "roc_curve", "tpr_at_fpr"]


class LowFPRWarning(UserWarning):
    """A target FPR is below the resolution 1 / (number of non-members)."""


def _scores_and_membership(scores, is_member) -> tuple[np.ndarray, np.ndarray]:
    s = as_float_array(scores, "scores", ndim=1)
    m = as_membership(is_member, "is_member", n=len(s))
    return s, m


def roc_counts(scores, is_member, *, device: str = "cpu") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The integer counts the ROC curve is built from.

    Returns
    -------
    fps, tps : (K + 1,) int64
        Non-members and members with score >= ``thresholds[k]``.
    thresholds : (K + 1,) float64
        +inf, then the K distinct scores in decreasing order.

    ``roc_curve`` is ``(fps / fps[-1], tps / tps[-1], thresholds)``; the counts
    are what confidence intervals need.
    """
    s, m = _scores_and_membership(scores, is_member)
    return _core.roc_counts(s, m, resolve(device) == "cuda")


def roc_curve(scores, is_member, *, device: str = "cpu") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds), equal to scikit-learn's with drop_intermediate=False.

    Parameters
    ----------
    scores : array_like, 1-D
        Attack scores (higher = more likely a member), finite.
    is_member : array_like, 1-D
        Ground truth, booleans or 0/1, with both members and non-members.
    device : {"cpu", "cuda", "auto"}
        Where to sort; the result is the same.
    """
    s, m = _scores_and_membership(scores, is_member)
    return _core.roc_curve(s, m, resolve(device) == "cuda")


def auc(scores, is_member, *, device: str = "cpu") -> float:
    """Area under the ROC curve, equal to ``sklearn.metrics.roc_auc_score`` bit for bit.

    The trapezoidal rule over the curve with collinear intermediate points
    dropped, as scikit-learn computes it.
    """
    s, m = _scores_and_membership(scores, is_member)
    return _core.roc_auc(s, m, resolve(device) == "cuda")


def tpr_at_fpr(scores, is_member, fpr, *, device: str = "cpu"):
    """Largest TPR among the ROC points whose FPR is at most ``fpr`` (no interpolation).

    Parameters
    ----------
    scores, is_member : array_like, 1-D
        As for :func:`roc_curve`.
    fpr : float or sequence of floats in [0, 1]
        Target false positive rate(s).

    Returns
    -------
    float, or a float64 array for a sequence of targets.  A target below the
    resolution 1 / (number of non-members) gives NaN and a
    :class:`LowFPRWarning`: the data cannot tell a TPR at that FPR.
    """
    scalar = isinstance(fpr, numbers.Real)
    targets = _rates(fpr, "fpr")
    fps, tps, _ = roc_counts(scores, is_member, device=device)
    last, too_low = low_fpr_index(fps, targets, stacklevel=3)
    result = np.where(too_low, np.nan, tps[last] / tps[-1])
    return float(result) if scalar else np.asarray(result, dtype=np.float64)


def low_fpr_index(fps, targets, *, stacklevel: int = 2):
    """For each target FPR, the ROC point with the largest TPR among those with FPR <= target.

    ``fps`` are the cumulative non-member counts of :func:`roc_counts`.  Since
    TPR never decreases along the curve, that point is the last one whose FPR
    is within the target.  Returns ``(index, below_resolution)``; targets
    below 1 / (number of non-members) cannot be resolved by the data: they
    are flagged (their TPR must be reported as NaN) and a
    :class:`LowFPRWarning` says so.
    """
    fps = _counts(fps, "fps")
    if fps.ndim != 1 or fps.size == 0 or fps[-1] < 1 or np.any(fps < 0) or np.any(np.diff(fps) < 0):
        raise ValueError("fps must be the non-decreasing non-member counts of roc_counts, ending above 0")
    targets = _rates(targets, "targets")
    n_out = fps[-1]
    index = np.searchsorted(fps / n_out, targets, side="right") - 1
    too_low = targets < 1.0 / n_out
    if np.any(too_low):
        below = np.atleast_1d(targets)[np.atleast_1d(too_low)]
        warnings.warn(
            f"target FPR {', '.join(f'{t:g}' for t in below)} below the resolution "
            f"1/n_non_members = 1/{n_out} = {1.0 / n_out:g}; returning NaN",
            LowFPRWarning,
            stacklevel=stacklevel + 1,
        )
    return index, too_low


def _rates(values, name: str) -> np.ndarray:
    """A number or 1-D sequence of real numbers in [0, 1] as float64 (complex, bool, strings refused)."""
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError):  # ragged sequences
        arr = None
    if arr is None or arr.dtype.kind not in "iuf" or arr.ndim > 1 or not np.all((arr >= 0) & (arr <= 1)):
        raise ValueError(f"{name} must be a number or a 1-D sequence of numbers in [0, 1], got {values!r}")
    return arr.astype(np.float64)


def _counts(values, name: str) -> np.ndarray:
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must hold integers, got {values!r}") from None
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise ValueError(f"{name} must hold integers, got dtype {arr.dtype}")
    if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
        raise ValueError(f"{name} must hold whole numbers")
    return arr.astype(np.int64)


def clopper_pearson(k, n, confidence: float = 0.95):
    """Exact (Clopper-Pearson) two-sided binomial confidence interval for k successes in n trials.

    .. math::

        \\text{lo} = B^{-1}\\!\\left(\\tfrac{\\alpha}{2}; k, n - k + 1\\right), \\qquad
        \\text{hi} = B^{-1}\\!\\left(1 - \\tfrac{\\alpha}{2}; k + 1, n - k\\right),

    with :math:`\\alpha = 1 - \\text{confidence}`, lo = 0 at k = 0 and hi = 1 at
    k = n (``scipy.stats.beta`` quantiles).  This is the interval of
    ``scipy.stats.binomtest(k, n).proportion_ci(method="exact")``, which finds
    the same quantiles by root finding (to about 2e-12).  ``k`` and ``n``
    broadcast; returns floats for scalar input, else arrays.
    """
    kk = _counts(k, "k")
    nn = _counts(n, "n")
    confidence = check_fraction(confidence, "confidence")
    if np.any(nn < 1):
        raise ValueError("n must be >= 1")
    try:
        kk, nn = np.broadcast_arrays(kk, nn)
    except ValueError:
        raise ValueError(f"k and n must broadcast, got shapes {kk.shape} and {nn.shape}") from None
    if np.any((kk < 0) | (kk > nn)):
        raise ValueError("k must be in [0, n]")
    alpha = (1.0 - confidence) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        lo = np.where(kk == 0, 0.0, scipy.stats.beta.ppf(alpha, kk, nn - kk + 1))
        hi = np.where(kk == nn, 1.0, scipy.stats.beta.isf(alpha, kk + 1, nn - kk))
    if lo.ndim == 0:
        return float(lo), float(hi)
    return lo, hi
