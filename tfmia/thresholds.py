"""Balanced-accuracy thresholds of Song & Mittal's metric attacks.

A record is called a member iff its score ``value >= t``.  For one class the
threshold maximises the balanced accuracy on the shadow data,

.. math::

    \\mathrm{acc}(t) = \\tfrac12 \\left( \\frac{\\#\\{x \\in \\text{in} : x \\ge t\\}}{n_\\text{in}}
                    + \\frac{\\#\\{x \\in \\text{out} : x < t\\}}{n_\\text{out}} \\right),

over the candidates ``t`` = the observed values (members, then non-members,
in the given order); ties go to the first maximiser in that order.  This is
the authors' ``_thre_setting`` to the last bit -- same candidates, same
float64 arithmetic, same tie rule -- computed by sorting and one sweep in
O(N log N) instead of their O(N^2) loop.

Class-dependent thresholds fit one threshold per true class on that class's
shadow records.  A class without shadow members or without shadow non-members
takes the global (class-independent) threshold and is flagged in
``fallback``; the reference silently used 0 there.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from . import _core
from ._device import resolve
from ._validate import as_float_array, as_labels, check_num_classes

__all__ = ["ClassThresholds", "apply_thresholds", "best_threshold", "class_thresholds", "fit_class_thresholds"]


@dataclasses.dataclass(frozen=True)
class ClassThresholds:
    """Per-class thresholds fitted on shadow data.

    Attributes
    ----------
    thresholds : (num_classes,) float64
        The threshold of each class (the global one where ``fallback``).
    global_threshold : float
        The class-independent threshold fitted on all shadow records.
    fallback : (num_classes,) bool
        Classes that lacked shadow members or non-members.
    balanced_accuracy : (num_classes,) float64
        Each class's best shadow balanced accuracy (NaN where ``fallback``).
    global_balanced_accuracy : float
        The global threshold's balanced accuracy on all shadow records.
    """

    thresholds: np.ndarray
    global_threshold: float
    fallback: np.ndarray
    balanced_accuracy: np.ndarray
    global_balanced_accuracy: float

    def __post_init__(self):
        for name in ("thresholds", "fallback", "balanced_accuracy"):
            getattr(self, name).flags.writeable = False

    def apply(self, values, labels) -> np.ndarray:
        """Membership decisions ``values >= thresholds[labels]``."""
        return apply_thresholds(values, labels, self.thresholds)


def _shadow_values(values_in, values_out) -> tuple[np.ndarray, np.ndarray]:
    """Both sides as 1-D float arrays of one dtype (float32 only if both are)."""
    vin = as_float_array(values_in, "values_in", ndim=1)
    vout = as_float_array(values_out, "values_out", ndim=1)
    dtype = np.result_type(vin, vout)
    return vin.astype(dtype, copy=False), vout.astype(dtype, copy=False)


def _fit(values_in, labels_in, values_out, labels_out, num_classes, *, want_global: bool, device: str):
    num_classes = check_num_classes(num_classes)
    vin, vout = _shadow_values(values_in, values_out)
    lin = as_labels(labels_in, "labels_in", n=len(vin), num_classes=num_classes)
    lout = as_labels(labels_out, "labels_out", n=len(vout), num_classes=num_classes)
    use_cuda = resolve(device) == "cuda"
    return _core.fit_thresholds(vin, lin, vout, lout, num_classes, want_global, use_cuda)


def best_threshold(values_in, values_out, *, device: str = "cpu") -> float:
    """The class-independent threshold (see the module docstring).

    Parameters
    ----------
    values_in, values_out : array_like, 1-D
        Shadow scores of members and non-members (higher = more member-like);
        finite, not empty.
    device : {"cpu", "cuda", "auto"}
        Where to sort; the result is the same.
    """
    vin, vout = _shadow_values(values_in, values_out)
    use_cuda = resolve(device) == "cuda"
    thresholds, _, _, _, _ = _core.fit_thresholds(vin, None, vout, None, 1, False, use_cuda)
    return float(thresholds[0])


def fit_class_thresholds(
    values_in, labels_in, values_out, labels_out, num_classes: int, *, device: str = "cpu"
) -> ClassThresholds:
    """Fit one threshold per true class, with the global one as fallback.

    Parameters
    ----------
    values_in, labels_in : array_like, 1-D
        Shadow members' scores and true classes (integers in [0, num_classes)).
    values_out, labels_out : array_like, 1-D
        Shadow non-members' scores and true classes.
    num_classes : int
        Number of classes, 1 to 2**24; classes no label names take the
        global threshold (``fallback``).
    device : {"cpu", "cuda", "auto"}
        Where to sort; the result is the same.
    """
    thresholds, accuracy, fallback, global_threshold, global_accuracy = _fit(
        values_in, labels_in, values_out, labels_out, num_classes, want_global=True, device=device
    )
    return ClassThresholds(thresholds, global_threshold, fallback, accuracy, global_accuracy)


def class_thresholds(
    values_in, labels_in, values_out, labels_out, num_classes: int, *, device: str = "cpu"
) -> np.ndarray:
    """``fit_class_thresholds(...).thresholds``: num_classes float64 thresholds.

    Fits the global threshold only when some class needs it as fallback.
    """
    thresholds, _, _, _, _ = _fit(
        values_in, labels_in, values_out, labels_out, num_classes, want_global=False, device=device
    )
    return thresholds


def apply_thresholds(values, labels, thresholds) -> np.ndarray:
    """Membership decisions: ``member[i] = values[i] >= thresholds[labels[i]]``.

    Parameters
    ----------
    values : array_like, 1-D
        Scores (finite).
    labels : array_like, 1-D
        True classes, integers in [0, len(thresholds)).
    thresholds : array_like, 1-D
        One threshold per class (from :func:`class_thresholds`), not NaN.
    """
    v = as_float_array(values, "values", ndim=1)
    thr = as_float_array(thresholds, "thresholds", ndim=1).astype(np.float64, copy=False)
    lab = as_labels(labels, "labels", n=len(v), num_classes=len(thr))
    return _core.apply_thresholds(v, lab, thr)
