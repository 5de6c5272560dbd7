"""Per-sample membership signals from a classifier's outputs, in one fused pass.

``compute(preds, labels)`` reduces every row of an (N, C) array of
probabilities or logits to the eight signals the metric attacks threshold
(Song & Mittal 2021, Rezaei & Liu 2021, Carlini et al. 2022).  The work happens
in the C++ core: one pass over each row while it is in cache, vectorised
exp/log, rows in parallel, validation fused into the same pass.

With p the softmax row, y the label, C the number of classes and
L30 = -log(1e-30):

From probabilities (``from_logits=False``), every log argument floored at
1e-30 as in Song & Mittal's reference code:

=================  ===========================================================
loss               -log(max(p_y, 1e-30))
confidence         p_y
max                max_i p_i
sd                 population standard deviation of the row (ddof 0)
entropy            sum_i p_i * -log(max(p_i, 1e-30))
modified_entropy   (1 - p_y) * -log(max(p_y, 1e-30))
                   + sum_{i != y} p_i * -log(max(1 - p_i, 1e-30))
correct            first argmax == y
logit_confidence   log(p_y + 1e-45) - log(sum_{j != y} p_j + 1e-45)
                   (LiRA's reference sums the other probabilities rather
                   than forming 1 - p_y)
=================  ===========================================================

From logits (``from_logits=True``), through a stable log-softmax
(m = max_i z_i, lse = m + log sum_i exp(z_i - m)):

=================  ===========================================================
loss               lse - z_y, unfloored (Keras' from_logits cross-entropy)
confidence         exp(z_y - lse)
max                exp(m - lse)
sd, correct        as above, over p = exp(z - lse)
entropy            sum_i p_i (lse - z_i)
modified_entropy   (1 - p_y) min(lse - z_y, L30)
                   + sum_{i != y} p_i min(-log(1 - p_i), L30),
                   with 1 - p_i formed without cancellation
logit_confidence   z_y - logsumexp_{j != y} z_j, exact even where exp underflows
=================  ===========================================================

Float outputs have the input's float dtype (computed in float64); ``correct``
is boolean.

Two modes for the log(1 - p_i) of the modified entropy from probabilities:

* default (``reference=False``): log(1 - p_i) is computed from p_i itself,
  without cancellation (log1p-style), to within an ulp.  A row with p_y = 1
  and tiny other p_i gets a modified entropy of about sum_{i != y} p_i^2:
  small, but it still ranks such rows.
* ``reference=True``: log(max(fl(1 - p_i), 1e-30)), with 1 - p_i rounded to
  float64 first: the formula of Song & Mittal's reference code and of
  TensorFlow Privacy's modified entropy.  For p_i <= 2^-54, fl(1 - p_i) = 1
  and the term is 0, so the row above gets exactly 0, as in the reference;
  otherwise the result agrees with numpy's float64 evaluation of that formula
  to within rounding (the core's log is below one ulp, its sums run in
  another order).  float32 input is widened to float64 first, so 1 - p_i is
  rounded in float64 (numpy on the float32 array itself would round it in
  float32, to 1 for p_i <= 2^-25).

Every other signal is the same in both modes.  From logits, 1 - p_i is
always formed without cancellation; ``reference=True`` is refused there.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping

import numpy as np

from . import _core
from ._device import resolve
from ._validate import as_float_array, as_labels, check_finite, check_flag

__all__ = ["SIGNAL_NAMES", "MEMBER_SIGN", "compute", "member_scores"]

SIGNAL_NAMES = (
    "loss",
    "confidence",
    "max",
    "sd",
    "entropy",
    "modified_entropy",
    "correct",
    "logit_confidence",
)

#: +1 where a higher value points to a member, -1 where a lower value does.
MEMBER_SIGN = {
    "loss": -1,
    "confidence": +1,
    "max": +1,
    "sd": +1,
    "entropy": -1,
    "modified_entropy": -1,
    "correct": +1,
    "logit_confidence": +1,
}


def compute(
    preds, labels, from_logits=False, *, sum_tol=1e-3, device="cpu", reference=False
) -> dict[str, np.ndarray]:
    """Compute every per-sample signal of ``preds`` in one pass.

    Parameters
    ----------
    preds : array_like, shape (N, C)
        Probabilities (``from_logits=False``) or logits, C >= 2.  float32 and
        float64 keep their dtype; integer and boolean arrays become float64.
    labels : array_like, shape (N,)
        True class of each row, integers in [0, C).
    from_logits : bool
        Whether ``preds`` holds logits.
    sum_tol : float or None
        Probability rows must sum to 1 within this tolerance.  ``None`` skips
        the check, for defended outputs that need not sum to 1 (top-k
        truncation, rounding).  Negative entries and NaN/Inf are rejected
        either way, and with ``None`` entries above 1 + 1e-3 too.
    device : {"cpu", "cuda", "auto"}
        Where to run; both give the same numbers up to summation order.
    reference : bool
        Probabilities only: compute every ``log(1 - p_i)`` of the modified
        entropy as the reference code does, ``log(max(fl(1 - p_i), 1e-30))``
        with ``1 - p_i`` rounded to float64 first, instead of accurately (see
        the module docstring).  ``ValueError`` with ``from_logits=True``.

    Returns
    -------
    dict
        Keys :data:`SIGNAL_NAMES`; 1-D arrays of length N (see the module
        docstring for the formulas).

    Raises
    ------
    ValueError
        Naming the offending argument: wrong shape or dtype, fewer than 2
        classes, labels out of range or of the wrong length, NaN/Inf, negative
        probabilities, rows that do not sum to 1, ``reference=True`` with
        logits, or values so large that a signal overflows the dtype (logits
        spread wider than its range).
    """
    preds = as_float_array(preds, "preds", ndim=2)
    if preds.shape[1] < 2:
        raise ValueError(f"preds must have at least 2 classes, got shape {preds.shape}")
    labels = as_labels(labels, "labels", n=preds.shape[0], num_classes=preds.shape[1])
    from_logits = check_flag(from_logits, "from_logits")
    if sum_tol is not None:
        real = isinstance(sum_tol, numbers.Real) and not isinstance(sum_tol, bool)
        if not real or not math.isfinite(sum_tol) or sum_tol < 0:
            raise ValueError(f"sum_tol must be a finite number >= 0 or None, got {sum_tol!r}")
        sum_tol = float(sum_tol)
    reference = check_flag(reference, "reference")
    use_cuda = resolve(device) == "cuda"
    return dict(
        _core.signals(preds, labels, from_logits, sum_tol, reference=reference, use_cuda=use_cuda)
    )


def member_scores(signals: dict[str, np.ndarray], name: str) -> np.ndarray:
    """Signal ``name`` oriented so that a higher score means "more likely a member".

    Returns ``MEMBER_SIGN[name] * signals[name]`` as float64 (``correct``
    becomes 1.0 / 0.0).
    """
    if not isinstance(name, str) or name not in MEMBER_SIGN:
        raise ValueError(f"name must be one of {SIGNAL_NAMES}, got {name!r}")
    if not isinstance(signals, Mapping):
        raise ValueError(f"signals must be a dict of signal arrays (from compute), got {type(signals).__name__}")
    if name not in signals:
        raise ValueError(f"signals has no {name!r} entry (keys: {sorted(signals)})")
    values = check_finite(as_float_array(signals[name], f"signals[{name!r}]", ndim=1), f"signals[{name!r}]")
    return MEMBER_SIGN[name] * values.astype(np.float64)
