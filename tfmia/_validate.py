"""Argument checking shared by every public function.

The rule throughout tfmia: bad input raises ``ValueError`` whose message names
the argument, never a crash in the C++ core and never a silently wrong number.
These helpers convert what can be converted losslessly (integer or boolean
arrays to float64, non-contiguous arrays to contiguous copies, integral float
labels to int64) and reject the rest.  Checks that need a pass over the data
(NaN/Inf, probability rows) are fused into the C++ kernels instead, so that the
Python layer never allocates a temporary the size of the input.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = [
    "as_float_array",
    "as_labels",
    "as_membership",
    "class_indices",
    "check_finite",
    "check_same_length",
    "check_positive_int",
    "check_num_classes",
    "check_flag",
    "check_positive_number",
    "check_fraction",
]


def _as_array(x, name: str) -> np.ndarray:
    """``np.asarray(x)``, raising ValueError naming ``name`` for what numpy cannot make an array of."""
    try:
        return np.asarray(x)
    except Exception as exc:  # ragged lists and other non-arrays
        raise ValueError(f"{name} must be an array of numbers: {exc}") from None


def as_float_array(x, name: str, *, ndim: int | tuple[int, ...] | None = None, allow_empty: bool = False) -> np.ndarray:
    """Return ``x`` as a C-contiguous float32 or float64 array.

    float32 and float64 arrays keep their dtype; integer and boolean arrays
    become float64; anything else (complex, object, strings) is rejected.
    """
    arr = _as_array(x, name)
    if arr.dtype in (np.float32, np.float64):
        pass
    elif arr.dtype == np.float16 or np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_:
        arr = arr.astype(np.float64)
    else:
        raise ValueError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in allowed:
            want = " or ".join(f"{d}-D" for d in allowed)
            raise ValueError(f"{name} must be {want}, got shape {arr.shape}")
    if not allow_empty and arr.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    return np.ascontiguousarray(arr)


def check_finite(arr: np.ndarray, name: str) -> np.ndarray:
    """Return the float array ``arr``, raising unless every entry is finite.

    Its min and max are NaN if any entry is NaN and infinite if any is, so
    two reductions decide without a temporary the size of ``arr``.
    """
    if arr.size and not (np.isfinite(arr.min()) and np.isfinite(arr.max())):
        raise ValueError(f"{name} must be finite (found NaN or Inf)")
    return arr


def as_labels(y, name: str, *, n: int | None = None, num_classes: int | None = None) -> np.ndarray:
    """Return class labels as a contiguous 1-D int64 array.

    Accepts integer arrays and float arrays holding whole numbers (Keras users
    often carry labels as float32).  Checks the length against ``n`` and the
    range against ``num_classes`` when given.
    """
    arr = _as_array(y, name)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D class indices, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty")
    if np.issubdtype(arr.dtype, np.integer):
        if arr.dtype.kind == "u" and arr.max() > np.iinfo(np.int64).max:
            raise ValueError(f"{name} holds a class index beyond int64: {int(arr.max())}")
        arr = arr.astype(np.int64, copy=False)
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise ValueError(f"{name} must hold whole-number class indices")
        arr = arr.astype(np.int64)
    else:
        raise ValueError(f"{name} must hold integer class indices, got dtype {arr.dtype}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} entries, expected {n}")
    if arr.min() < 0:
        raise ValueError(f"{name} must be non-negative, found {int(arr.min())}")
    if num_classes is not None and arr.max() >= num_classes:
        raise ValueError(f"{name} must be < num_classes={num_classes}, found {int(arr.max())}")
    return np.ascontiguousarray(arr)


def class_indices(y, name: str, *, n: int | None = None, num_classes: int | None = None) -> np.ndarray:
    """True labels as class indices: 1-D indices, an (N, 1) column, or exactly one-hot (N, C) rows.

    Two-dimensional labels are accepted only when every row is one-hot (0/1
    entries, a single 1); soft labels or scores are refused rather than
    arg-maxed.  Returns :func:`as_labels` of the indices.
    """
    lab = np.asarray(y)
    if lab.ndim == 2 and lab.shape[1] == 1:
        lab = lab[:, 0]
    elif lab.ndim == 2:
        if num_classes is not None and lab.shape[1] != num_classes:
            raise ValueError(f"{name} of shape {lab.shape} must be class indices or one-hot rows of {num_classes} classes")
        one_hot = lab.dtype.kind in "biuf" and np.all((lab == 0) | (lab == 1)) and np.all(lab.sum(axis=1) == 1)
        if not one_hot:
            raise ValueError(f"{name} of shape {lab.shape} is not one-hot (a single 1 per row, zeros elsewhere); "
                             "give class indices")
        lab = lab.argmax(axis=1)
    return as_labels(lab, name, n=n, num_classes=num_classes)


def as_membership(is_member, name: str = "is_member", *, n: int | None = None) -> np.ndarray:
    """Return ground-truth membership bits as a contiguous 1-D bool array.

    Accepts booleans or the integers 0/1; anything else is rejected rather
    than thresholded.
    """
    arr = _as_array(is_member, name)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty")
    if arr.dtype != np.bool_:
        if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
            raise ValueError(f"{name} must be boolean or 0/1, got dtype {arr.dtype}")
        if not np.all((arr == 0) | (arr == 1)):
            raise ValueError(f"{name} must contain only 0/1 (or booleans)")
        arr = arr.astype(bool)
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} entries, expected {n}")
    return np.ascontiguousarray(arr)


def check_same_length(**arrays) -> int:
    """Raise unless every array has the same first dimension; return it."""
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{name} has {n}" for name, n in lengths.items())
        raise ValueError(f"length mismatch: {detail}")
    return next(iter(lengths.values()))


def check_positive_int(value, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` as an int, raising unless it is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


#: The most entries a per-class table may have (the thresholds of num_classes
#: classes, the num_classes x (bins + 1) histogram edges): the C++ core checks
#: a declared class count against it before allocating, and sizes its working
#: memory by the classes the labels hold.
MAX_TABLE_ENTRIES = 2**24


def check_num_classes(value, name: str = "num_classes", *, per_class: int = 1) -> int:
    """Return ``value`` as an int in [1, MAX_TABLE_ENTRIES / per_class].

    ``per_class`` is the number of table entries each class takes.
    """
    num_classes = check_positive_int(value, name)
    if num_classes * per_class > MAX_TABLE_ENTRIES:
        table = f" with {per_class} entries per class makes {num_classes * per_class} entries," if per_class > 1 else ""
        raise ValueError(f"{name}={num_classes}{table} more than the per-class table limit 2**24 = {MAX_TABLE_ENTRIES}")
    return num_classes


def check_flag(value, name: str) -> bool:
    """Return ``value`` as a bool, raising unless it is ``True`` or ``False`` (numpy's too)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_positive_number(value, name: str, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a finite float > 0 (>= 0 when ``allow_zero``)."""
    bound = ">= 0" if allow_zero else "> 0"
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number {bound}, got {value!r}") from None
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return v


def check_fraction(value, name: str, *, inclusive: bool = False) -> float:
    """Return ``value`` as a float in (0, 1) (or [0, 1] when ``inclusive``)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in (0, 1), got {value!r}") from None
    ok = (0.0 <= v <= 1.0) if inclusive else (0.0 < v < 1.0)
    if not ok:
        bounds = "[0, 1]" if inclusive else "(0, 1)"
        raise ValueError(f"{name} must be in {bounds}, got {value!r}")
    return v
