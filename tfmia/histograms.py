"""Per-class histogram likelihoods for Song & Mittal's privacy risk score.

For each true class ``c`` the shadow members' and non-members' metric values
(by default the modified entropy) are binned on shared edges from the class's
minimum to its maximum -- ``bins`` log-spaced edges with values floored at
1e-10 (the default), or linearly spaced -- and each side is normalised by its
own count:

.. math::

    h_\\text{in}[b] = \\frac{\\#\\{x \\in \\text{in}_c : x \\in \\text{bin } b\\}}{|\\text{in}_c|}, \\qquad
    h_\\text{out}[b] = \\frac{\\#\\{x \\in \\text{out}_c : x \\in \\text{bin } b\\}}{|\\text{out}_c|}.

A target value ``v`` of class ``c`` scores

.. math::

    r(v) = \\frac{h_\\text{in}[b]}{h_\\text{in}[b] + h_\\text{out}[b] \\cdot (1 - \\pi) / \\pi}

in its bin ``b`` (values outside the fitted range go to the end bins; an
empty bin borrows from the nearest non-empty one looking outward: b - 1,
b + 1, b - 2, ...), with member prior :math:`\\pi` = 0.5 giving the authors'
``h_in / (h_in + h_out)``.  Edges, histograms and scores equal the authors'
code (np.logspace / np.linspace edges, ``np.histogram`` with weights
``1 / len``) bit for bit for float64 values; float32 values are binned as
numpy would bin them but weighted in float64.

Unlike the reference, a class with no shadow members or no shadow
non-members uses the histograms pooled over all classes (flagged in
``fallback``), and a value whose histograms are empty in every bin (possible
only when rounding of log-spaced edges drops every value) scores the prior.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from . import _core
from ._device import resolve
from ._validate import as_float_array, as_labels, check_flag, check_fraction, check_num_classes, check_positive_int

__all__ = ["ClassHistograms", "MAX_BINS"]

#: The most bins per class: the core counts bins + 2 counters per block of
#: 65536 values, so this bound keeps its tables no larger than the values.
MAX_BINS = 2**16


def _bin_edges(lo, hi, bins: int, log_bins: bool) -> np.ndarray:
    """One class's edges, by the reference's own numpy calls on its min / max scalars.

    Raises ValueError, naming the values, when the range is too wide for
    float64 (hi - lo overflows, so linear edges would be NaN).
    """
    with np.errstate(over="ignore", invalid="ignore"):
        edges = np.logspace(np.log10(lo), np.log10(hi), bins + 1) if log_bins else np.linspace(lo, hi, bins + 1)
    if not np.all(np.isfinite(edges)):
        raise ValueError(
            f"values_in and values_out span [{lo}, {hi}]: too wide for {bins} linear bins in float64 "
            "(the bin width overflows)"
        )
    return edges


@dataclasses.dataclass(frozen=True)
class ClassHistograms:
    """Fitted per-class histograms; build with :meth:`fit`.

    Attributes
    ----------
    edges : (num_classes, bins + 1) float64
        Bin edges of each class (the pooled edges where ``fallback``).
    h_in, h_out : (num_classes, bins) float64
        Normalised histograms of the shadow members and non-members.
    fallback : (num_classes,) bool
        Classes lacking shadow members or non-members, given the pooled histograms.
    log_bins : bool
        Whether the edges are log-spaced (and shadow values floored at 1e-10).
    """

    edges: np.ndarray
    h_in: np.ndarray
    h_out: np.ndarray
    fallback: np.ndarray
    log_bins: bool

    def __post_init__(self):
        for name in ("edges", "h_in", "h_out", "fallback"):
            getattr(self, name).flags.writeable = False

    @property
    def num_classes(self) -> int:
        return self.edges.shape[0]

    @property
    def bins(self) -> int:
        return self.h_in.shape[1]

    @classmethod
    def fit(
        cls,
        values_in,
        labels_in,
        values_out,
        labels_out,
        num_classes: int,
        *,
        bins: int = 5,
        log_bins: bool = True,
        device: str = "cpu",
    ) -> ClassHistograms:
        """Fit the histograms on shadow members (``*_in``) and non-members (``*_out``).

        Parameters
        ----------
        values_in, labels_in : array_like, 1-D
            Shadow members' metric values (finite) and true classes in [0, num_classes).
        values_out, labels_out : array_like, 1-D
            Shadow non-members' values and classes.
        num_classes : int
            Number of classes (>= 1); the edge table of num_classes x (bins + 1)
            entries may hold at most 2**24.  Classes no label names get the
            pooled histograms (``fallback``).
        bins : int
            Number of bins per class, 1 to :data:`MAX_BINS`; default 5 as in the paper.
        log_bins : bool
            Log-spaced edges with values floored at 1e-10 (default), else linear.
        device : {"cpu", "cuda", "auto"}
            Where to count; the result is the same.
        """
        bins = check_positive_int(bins, "bins")
        if bins > MAX_BINS:
            raise ValueError(f"bins must be <= 2**16 = {MAX_BINS}, got {bins}")
        num_classes = check_num_classes(num_classes, per_class=bins + 1)
        log_bins = check_flag(log_bins, "log_bins")
        vin = as_float_array(values_in, "values_in", ndim=1)
        vout = as_float_array(values_out, "values_out", ndim=1)
        dtype = np.result_type(vin, vout)
        vin, vout = vin.astype(dtype, copy=False), vout.astype(dtype, copy=False)
        lin = as_labels(labels_in, "labels_in", n=len(vin), num_classes=num_classes)
        lout = as_labels(labels_out, "labels_out", n=len(vout), num_classes=num_classes)
        use_cuda = resolve(device) == "cuda"

        lo, hi, n_in, n_out = _core.risk_ranges(vin, lin, vout, lout, num_classes, log_bins)
        lacking = (n_in == 0) | (n_out == 0)
        edges = np.empty((num_classes, bins + 1))
        for c in np.flatnonzero(~lacking):
            edges[c] = _bin_edges(lo[c], hi[c], bins, log_bins)
        pooled = None
        if lacking.any():
            pooled = _bin_edges(lo.min(), hi.max(), bins, log_bins).astype(np.float64)
            edges[lacking] = pooled
        h_in, h_out, fallback = _core.risk_histograms(vin, lin, vout, lout, edges, pooled, log_bins, use_cuda)
        return cls(edges, h_in, h_out, fallback, log_bins)

    def member_probability(self, values, labels, *, member_prior: float = 0.5, device: str = "cpu") -> np.ndarray:
        """Privacy risk scores r(v) of target values (not floored) of the given classes.

        Parameters
        ----------
        values : array_like, 1-D
            Target metric values (finite).
        labels : array_like, 1-D
            Their true classes, in [0, num_classes).
        member_prior : float in (0, 1)
            Prior probability of membership; 0.5 reproduces the reference.
        device : {"cpu", "cuda", "auto"}
            Where to score; the result is the same.
        """
        v = as_float_array(values, "values", ndim=1)
        lab = as_labels(labels, "labels", n=len(v), num_classes=self.num_classes)
        prior = check_fraction(member_prior, "member_prior")
        use_cuda = resolve(device) == "cuda"
        return _core.risk_scores(v, lab, self.edges, self.h_in, self.h_out, prior, use_cuda)
