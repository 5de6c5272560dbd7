"""Training data for shadow models when the attacker has none (Shokri et al. 2017, section V-C).

* :func:`model_based` -- Algorithm 1: hill climbing on the target's
  confidence for a class, batched so that many records climb at once and each
  step costs one model query for the whole batch.
* :func:`from_marginals` -- statistics-based: every feature drawn
  independently from its (per-class) marginal distribution.
* :func:`noisy_real` -- real records with a fraction of their binary features flipped.

Algorithm 1 for one record and class c, as implemented::

    x <- random record; y*_c <- 0; j <- 0; k <- k_max
    repeat iter_max times:
        y <- f_target(x)                                  (one query)
        if y_c >= y*_c:                                   accept
            if y_c > conf_min and argmax(y) == c:
                with probability y_c: return x            (sample)
            x* <- x; y*_c <- y_c; j <- 0
        else:
            j <- j + 1
            if j > rej_max: k <- max(k_min, ceil(k / 2)); j <- 0
        x <- x* with k random features changed (binary: flipped, others: resampled)
    give up

Queries are counted per record (a returned record's count includes its
final query).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ._validate import as_float_array, check_fraction, check_positive_int

__all__ = ["SynthesisResult", "model_based", "from_marginals", "noisy_real"]


@dataclasses.dataclass(frozen=True)
class SynthesisResult:
    """Records synthesized for one class.

    ``x`` holds only the successful records; ``queries`` the number of
    target queries each attempt made (successful or not), ``success`` which
    attempts returned a record.
    """

    x: np.ndarray
    target_class: int
    queries: np.ndarray
    success: np.ndarray

    @property
    def y(self) -> np.ndarray:
        return np.full(self.x.shape[0], self.target_class, dtype=np.int64)

    @property
    def queries_per_record(self) -> float:
        """Target queries spent per synthesized record (failed attempts included)."""
        n = int(self.success.sum())
        return float(self.queries.sum()) / n if n else math.inf


def _random_records(rng, n, binary, low, high):
    x = rng.uniform(low, high, size=(n, binary.size))
    x[:, binary] = rng.integers(0, 2, size=(n, int(binary.sum())))
    return x


def _random_feature_mask(rng, k: np.ndarray, d: int) -> np.ndarray:
    """(len(k), d) mask with exactly k[i] randomly chosen True entries in row i."""
    order = rng.random((k.size, d)).argsort(axis=1)
    mask = np.zeros((k.size, d), dtype=bool)
    np.put_along_axis(mask, order, np.arange(d)[None, :] < k[:, None], axis=1)
    return mask


def model_based(
    predict_proba,
    num_features: int,
    target_class: int,
    n_records: int,
    *,
    k_max: int = 16,
    k_min: int = 1,
    conf_min: float = 0.8,
    rej_max: int = 10,
    iter_max: int = 200,
    binary=True,
    feature_range: tuple[float, float] = (0.0, 1.0),
    seed: int = 0,
) -> SynthesisResult:
    """Algorithm 1 for ``n_records`` records of ``target_class``, all climbing at once.

    Args:
        predict_proba: callable mapping an (m, num_features) float32 batch to (m, C) probabilities
            (e.g. ``lambda x: model.predict(x, verbose=0)`` for a softmax model).
        num_features: record length d.
        target_class: the class c whose confidence is climbed.
        n_records: attempts (records climbing in parallel).
        k_max, k_min, conf_min, rej_max, iter_max: the algorithm's constants (see module docstring).
        binary: True (all features binary), False (none) or a boolean mask of length d.
        feature_range: (low, high) for non-binary features, sampled uniformly.
        seed: seeds every random choice.
    """
    d = check_positive_int(num_features, "num_features")
    n = check_positive_int(n_records, "n_records")
    k_max = check_positive_int(k_max, "k_max")
    k_min = check_positive_int(k_min, "k_min")
    if k_min > k_max or k_max > d:
        raise ValueError(f"need 1 <= k_min <= k_max <= num_features, got k_min={k_min}, k_max={k_max}, d={d}")
    rej_max = check_positive_int(rej_max, "rej_max", minimum=0)
    iter_max = check_positive_int(iter_max, "iter_max")
    conf_min = check_fraction(conf_min, "conf_min", inclusive=True)
    binary = np.broadcast_to(np.asarray(binary, dtype=bool), (d,)).copy()
    low, high = map(float, feature_range)
    if not low < high:
        raise ValueError(f"feature_range must be (low, high) with low < high, got {feature_range!r}")
    rng = np.random.default_rng(seed)

    x = _random_records(rng, n, binary, low, high)
    best_x = x.copy()
    best_conf = np.zeros(n)
    rejections = np.zeros(n, dtype=np.int64)
    k = np.full(n, k_max, dtype=np.int64)
    queries = np.zeros(n, dtype=np.int64)
    success = np.zeros(n, dtype=bool)
    active = np.ones(n, dtype=bool)
    for _ in range(iter_max):
        rows = np.flatnonzero(active)
        if rows.size == 0:
            break
        probs = np.asarray(predict_proba(x[rows].astype(np.float32)), dtype=np.float64)
        if probs.ndim != 2 or probs.shape[0] != rows.size or not 0 <= target_class < probs.shape[1]:
            raise ValueError(f"predict_proba returned shape {probs.shape}; expected ({rows.size}, C > target_class)")
        queries[rows] += 1
        conf = probs[:, target_class]
        accepted = conf >= best_conf[rows]
        sampled = accepted & (conf > conf_min) & (probs.argmax(axis=1) == target_class) & (rng.uniform(size=rows.size) < conf)
        done = rows[sampled]
        success[done] = True
        best_x[done] = x[done]
        active[done] = False
        keep = rows[accepted & ~sampled]
        best_x[keep] = x[keep]
        best_conf[keep] = conf[accepted & ~sampled]
        rejections[keep] = 0
        rejected = rows[~accepted]
        rejections[rejected] += 1
        halve = rejected[rejections[rejected] > rej_max]
        k[halve] = np.maximum(k_min, np.ceil(k[halve] / 2).astype(np.int64))
        rejections[halve] = 0
        # Propose: change k random features of the best record so far.
        move = np.flatnonzero(active)
        proposal = best_x[move]
        change = _random_feature_mask(rng, k[move], d)
        flip = change & binary
        proposal[flip] = 1.0 - proposal[flip]
        redraw = change & ~binary
        proposal[redraw] = rng.uniform(low, high, size=int(redraw.sum()))
        x[move] = proposal
    return SynthesisResult(x=best_x[success].astype(np.float32), target_class=int(target_class), queries=queries, success=success)


def from_marginals(x, y, n_per_class: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Records whose features are drawn independently from each class's empirical marginals.

    For every class c present in ``y``, feature j of a synthetic record is a
    value drawn uniformly from column j of the class-c records (so binary
    features become Bernoulli with the class's frequency).  Returns ``(x, y)``.
    """
    x = as_float_array(x, "x", ndim=2)
    y = np.asarray(y)
    if y.shape != (x.shape[0],):
        raise ValueError(f"y must have one label per row of x ({x.shape[0]}), got shape {y.shape}")
    n_per_class = check_positive_int(n_per_class, "n_per_class")
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for c in np.unique(y):
        rows = x[y == c]
        pick = rng.integers(0, rows.shape[0], size=(n_per_class, rows.shape[1]))
        xs.append(np.take_along_axis(rows, pick, axis=0))
        ys.append(np.full(n_per_class, c))
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.int64)


def noisy_real(x, fraction: float, *, binary=True, seed: int = 0) -> np.ndarray:
    """Copy of binary records with round(fraction * d_binary) randomly chosen binary features flipped per record."""
    x = as_float_array(x, "x", ndim=2)
    fraction = check_fraction(fraction, "fraction", inclusive=True)
    binary = np.broadcast_to(np.asarray(binary, dtype=bool), (x.shape[1],))
    bin_cols = np.flatnonzero(binary)
    if not np.all(np.isin(x[:, bin_cols], (0.0, 1.0))):
        raise ValueError("x: the features marked binary must be 0 or 1")
    flips = int(round(fraction * bin_cols.size))
    rng = np.random.default_rng(seed)
    out = x.astype(np.float32, copy=True)
    flip = _random_feature_mask(rng, np.full(out.shape[0], flips), bin_cols.size)
    block = out[:, bin_cols]
    block[flip] = 1.0 - block[flip]
    out[:, bin_cols] = block
    return out
