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

Ranking records of different classes needs one score per record that keeps
every class's decision (member iff ``score >= 0``) and every class's own
order.  ``value - t`` in float64 keeps the first but not the second: values
much closer together than the rounding step of ``t`` (confident records,
``-loss`` of 1e-22 against a threshold of -0.1) round to one score and tie.
:func:`threshold_margins` measures the distance from ``t`` to ``value`` in
representable float64 steps instead, which loses nothing.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from . import _core
from ._device import resolve
from ._validate import as_float_array, as_labels, check_num_classes

__all__ = [
    "ClassThresholds",
    "apply_thresholds",
    "best_threshold",
    "class_thresholds",
    "fit_class_thresholds",
    "threshold_margins",
]


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

    def margins(self, values, labels) -> np.ndarray:
        """Order-preserving margins of ``values`` above their class's threshold (:func:`threshold_margins`)."""
        return threshold_margins(values, labels, self.thresholds)


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


# Keys of finite or infinite float64 values as int64, in the same order as the
# values: the bit pattern for +0.0 and above, its negation (sign bit cleared)
# below, so -0.0 and +0.0 share key 0 and neighbouring doubles differ by 1.
_INF_KEY = np.int64(np.float64(np.inf).view(np.int64))


def _ordered_keys(x: np.ndarray) -> np.ndarray:
    bits = x.view(np.int64)
    return np.where(bits >= 0, bits, -(bits & np.int64(0x7FFFFFFFFFFFFFFF)))


def _from_ordered_keys(keys: np.ndarray) -> np.ndarray:
    return np.where(keys >= 0, keys, -keys).view(np.float64) * np.where(keys >= 0, 1.0, -1.0)


def threshold_margins(values, labels, thresholds) -> np.ndarray:
    """Scores that rank records across classes and keep each class's decisions and order.

    ``margin[i]`` is the signed number of representable float64 values from
    ``t = thresholds[labels[i]]`` up to ``values[i]``, returned as the float64
    with that position in the ordering of doubles (0 -> 0.0, 1 -> the
    smallest subnormal, ...).  Hence, exactly:

    * ``margin >= 0`` iff ``value >= t`` (the class's decision);
    * within a class, ``margin`` is strictly increasing in ``value``: a shift
      never merges two distinct values, unlike ``value - t`` in floating point;
    * across classes, records rank by how many float64 steps they lie above
      their class's threshold.

    The magnitudes are those of the step counts read as doubles, not of
    ``value - t``; use the values and the thresholds themselves to read the
    metric on its own scale.

    Every step is kept when a value and its threshold have the same sign, as
    every metric of :class:`~tfmia.attacks.MetricAttack` has (confidence
    >= 0; -loss, -entropy, -modified entropy <= 0).  Across signs the count
    can exceed the 2**63 - 2**52 positions on each side of 0 (from -2.0 up
    to 1.0 already fills them): such margins saturate at +/-inf, keeping the
    decision but tying with each other.  No float64 score can do better: a
    map that keeps the sign of ``value - t`` and every step would need more
    negative doubles than exist.

    Parameters
    ----------
    values : array_like, 1-D
        Scores, higher = more member-like; not NaN.
    labels : array_like, 1-D
        True classes, integers in [0, len(thresholds)).
    thresholds : array_like, 1-D
        One threshold per class, not NaN.
    """
    v = as_float_array(values, "values", ndim=1).astype(np.float64, copy=False)
    thr = as_float_array(thresholds, "thresholds", ndim=1).astype(np.float64, copy=False)
    lab = as_labels(labels, "labels", n=len(v), num_classes=len(thr))
    for name, arr in (("values", v), ("thresholds", thr)):
        if np.isnan(arr).any():
            raise ValueError(f"{name} must not contain NaN")
    key_v, key_t = _ordered_keys(v), _ordered_keys(thr)[lab]
    # key_v - key_t can exceed int64 (|key| <= _INF_KEY < 2**63): subtract the halves, saturate, recombine.
    half_limit = _INF_KEY // 2 + 1
    steps = np.clip(key_v // 2 - key_t // 2, -half_limit, half_limit) * 2 + (key_v % 2 - key_t % 2)
    return _from_ordered_keys(np.clip(steps, -_INF_KEY, _INF_KEY))
