"""One-run privacy auditing: an epsilon lower bound from a single training run.

Steinke, Nasr & Jagielski, "Privacy Auditing with One (1) Training Run"
(NeurIPS 2023, arXiv:2305.08846).  The protocol:

1. draw m canaries and include each in the training set independently with
   probability 1/2 (:func:`draw_canaries`, :meth:`Canaries.training_set`);
2. train once; score every canary with any membership attack (higher = more
   likely included);
3. guess IN for the ``k_pos`` highest scores and OUT for the ``k_neg`` lowest,
   abstain on the rest: ``r = k_pos + k_neg`` guesses, ``v`` of them correct.
   ``k_pos`` and ``k_neg`` are fixed before looking at the scores.  Taking the
   best of several ``(k_pos, k_neg)`` on the same scores makes the bound
   invalid (a multiple-testing error) unless the level is corrected, e.g.
   dividing ``p_value`` by the number of choices tried (Bonferroni).

The paper's main theorem: if training is (epsilon, delta)-DP, then for every v

    P[V >= v] <= p(epsilon, delta) = beta + 2 m delta alpha,       q = e^eps / (1 + e^eps),
    beta  = P[Binomial(r, q) >= v],
    alpha = max_{i = 1..v} (1 / i) P[v - i <= Binomial(r, q) < v]

(capped at 1).  So ``p(epsilon, delta)`` is a p-value: if it is below the
chosen level, (epsilon, delta)-DP is rejected at that level, i.e. with
confidence ``1 - p_value`` training is not (epsilon, delta)-DP.
:func:`one_run_epsilon` returns ``epsilon_lower = sup{epsilon >= 0 :
p(epsilon, delta) < p_value}`` (0 when even epsilon = 0 is not rejected):
the largest epsilon for which the observed v would still be significant.

``p`` is non-decreasing in epsilon whenever ``2 m delta <= 1``: with ``B ~
Binomial(r, q)``, ``d beta / dq = D = r P[Binomial(r - 1, q) = v - 1]`` and
``d/dq P[v - i <= B < v] >= -D``, so each ``beta + (2 m delta / i) P[v - i
<= B < v]`` has derivative ``>= D (1 - 2 m delta / i) >= 0``, and so has
their maximum.  The supremum is then found by bisection, and since every
epsilon below it is rejected too, it is a valid lower bound at the stated
level.  Larger delta (beyond 1 / (2m), far above any DP guarantee worth
auditing, which takes delta well below 1 / n) is refused.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import special, stats

from ._validate import as_float_array, as_labels, as_membership, check_fraction, check_positive_int

__all__ = ["one_run_epsilon", "one_run_p_value", "correct_guesses", "draw_canaries", "Canaries"]

_BISECTION_STEPS = 200


def correct_guesses(scores, included, k_pos: int, k_neg: int) -> tuple[int, int]:
    """``(r, v)``: the number of guesses and of correct ones.

    IN for the ``k_pos`` highest scores, OUT for the ``k_neg`` lowest.  Ties
    are broken by position: among equal scores the canary given earlier
    ranks lower (a stable ascending sort), which does not depend on which
    canaries were included, so the test stays valid.
    """
    scores = as_float_array(scores, "scores", ndim=1)
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores must be finite (found NaN or Inf)")
    m = scores.shape[0]
    included = as_membership(included, "included", n=m)
    k_pos = check_positive_int(k_pos, "k_pos", minimum=0)
    k_neg = check_positive_int(k_neg, "k_neg", minimum=0)
    if k_pos + k_neg > m:
        raise ValueError(f"k_pos + k_neg = {k_pos + k_neg} guesses exceed the m = {m} canaries")
    order = np.argsort(scores, kind="stable")
    guessed_in, guessed_out = order[m - k_pos:], order[:k_neg]
    v = int(included[guessed_in].sum()) + int((~included[guessed_out]).sum())
    return k_pos + k_neg, v


def _check_delta(delta, m: int) -> float:
    try:
        delta = float(delta)
    except (TypeError, ValueError):
        raise ValueError(f"delta must be a number in [0, 1), got {delta!r}") from None
    if not 0.0 <= delta < 1.0:
        raise ValueError(f"delta must be in [0, 1), got {delta!r}")
    if 2 * m * delta > 1.0:
        raise ValueError(f"delta must be at most 1 / (2 m) = {1 / (2 * m):.3g} for m = {m} canaries, got {delta!r}: "
                         "beyond it the theorem's p-value is not monotone in epsilon (DP guarantees take delta "
                         "far below 1 / n)")
    return delta


def one_run_p_value(epsilon: float, *, r: int, v: int, m: int, delta: float = 0.0) -> float:
    """The theorem's p-value ``min(1, beta + 2 m delta alpha)`` of v correct guesses out of r (module docstring)."""
    m = check_positive_int(m, "m")
    r = check_positive_int(r, "r", minimum=0)
    v = check_positive_int(v, "v", minimum=0)
    if not v <= r <= m:
        raise ValueError(f"need v <= r <= m, got v = {v}, r = {r}, m = {m}")
    delta = _check_delta(delta, m)
    epsilon = float(epsilon)
    if not epsilon >= 0.0:
        raise ValueError(f"epsilon must be >= 0, got {epsilon!r}")
    q = special.expit(epsilon)
    beta = stats.binom.sf(v - 1, r, q)
    alpha = 0.0
    if delta > 0.0 and v > 0:
        below = stats.binom.pmf(np.arange(v - 1, -1, -1), r, q)  # P[B = v - 1], P[B = v - 2], ..., P[B = 0]
        alpha = float(np.max(np.cumsum(below) / np.arange(1, v + 1)))
    return float(min(1.0, beta + 2.0 * m * delta * alpha))


def one_run_epsilon(scores, included, k_pos: int, k_neg: int, *, delta: float = 0.0, p_value: float = 0.05) -> float:
    """Steinke et al.'s one-run lower bound on epsilon (module docstring).

    Args:
        scores: (m,) attack scores of the canaries, higher = more likely included.
        included: (m,) bool, canary i was in the training set.
        k_pos, k_neg: guesses IN for the k_pos highest, OUT for the k_neg
            lowest scores (ties: :func:`correct_guesses`); fixed in advance.
        delta: the delta of the (epsilon, delta)-DP hypothesis, in [0, 1)
            and at most 1 / (2m).
        p_value: the significance level in (0, 1).

    Returns:
        ``sup{epsilon >= 0 : p(epsilon, delta) < p_value}``, 0 when no
        epsilon is rejected: with confidence ``1 - p_value`` training is not
        (epsilon, delta)-DP for any epsilon below it.
    """
    r, v = correct_guesses(scores, included, k_pos, k_neg)
    m = len(scores)
    delta = _check_delta(delta, m)
    level = check_fraction(p_value, "p_value")

    def rejected(epsilon: float) -> bool:
        return one_run_p_value(epsilon, r=r, v=v, m=m, delta=delta) < level

    if r == 0 or not rejected(0.0):
        return 0.0
    low, high = 0.0, 1.0
    while rejected(high):  # terminates: p -> P[Binomial(r, 1) >= v] = 1 as epsilon grows
        low, high = high, 2.0 * high
    for _ in range(_BISECTION_STEPS):
        middle = 0.5 * (low + high)
        if middle in (low, high):
            break
        if rejected(middle):
            low = middle
        else:
            high = middle
    return low


@dataclasses.dataclass(frozen=True)
class Canaries:
    """Canary records drawn from a dataset, and which of them go into training.

    ``x``, ``y``: the canaries (labels possibly mislabelled); ``included``:
    canary i is trained on; ``indices``: their positions in the source data.
    """

    x: np.ndarray
    y: np.ndarray
    included: np.ndarray
    indices: np.ndarray

    def training_set(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """The source data ``(x, y)`` without its canary records, then the included canaries appended."""
        x, y = np.asarray(x), np.asarray(y)
        if x.shape[0] != y.shape[0] or x.shape[0] <= int(self.indices.max()) or x.shape[1:] != self.x.shape[1:]:
            raise ValueError("x, y must be the source data the canaries were drawn from")
        keep = np.ones(x.shape[0], dtype=bool)
        keep[self.indices] = False
        return (np.concatenate([x[keep], self.x[self.included]]),
                np.concatenate([y[keep], self.y[self.included].astype(y.dtype, copy=False)]))


def draw_canaries(x, y, m: int, *, seed: int, mislabel: bool = False, num_classes: int | None = None) -> Canaries:
    """Draw ``m`` distinct records of ``(x, y)`` as canaries, each included with probability 1/2.

    With ``mislabel`` every canary's label is replaced by a different class,
    uniformly among the other ``num_classes - 1`` (default ``num_classes``:
    largest label + 1): a mislabelled record is learnt only by memorising it,
    which makes the canaries easier to detect.  All draws come from
    ``numpy.random.default_rng(seed)``.
    """
    x = np.asarray(x)
    y = as_labels(y, "y", n=x.shape[0])
    m = check_positive_int(m, "m")
    if m > y.size:
        raise ValueError(f"m = {m} canaries exceed the {y.size} records")
    classes = int(y.max()) + 1 if num_classes is None else check_positive_int(num_classes, "num_classes")
    if classes <= int(y.max()):
        raise ValueError(f"num_classes = {classes} but y holds label {int(y.max())}")
    rng = np.random.default_rng(check_positive_int(seed, "seed", minimum=0))  # None would draw unreproducibly
    indices = np.sort(rng.choice(y.size, size=m, replace=False))
    included = rng.random(m) < 0.5
    labels = y[indices]
    if mislabel:
        if classes < 2:
            raise ValueError("mislabel needs num_classes >= 2")
        labels = (labels + rng.integers(1, classes, size=m)) % classes
    return Canaries(x=x[indices], y=labels, included=included, indices=indices)
