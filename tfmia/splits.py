"""Reproducible, disjoint, class-balanced partitions of a dataset.

The papers evaluate on disjoint partitions of one pool: target train (the
members) and target test (the non-members), shadow train/test for the
attacker, and a remainder (SeqMIA's distillation set, LiRA's reference pool).
:func:`partition` draws them from a seed, each balanced per class as far as
the class counts allow.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

import numpy as np

from ._validate import as_labels, check_positive_int

__all__ = ["Partitions", "partition", "balanced_indices", "known_subset"]

REMAINDER = "remainder"


def _per_class_quota(size: int, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` split over classes as evenly as possible; the extra ones go to random classes."""
    quota = np.full(num_classes, size // num_classes, dtype=np.int64)
    quota[rng.permutation(num_classes)[: size % num_classes]] += 1
    return quota


def balanced_indices(labels, sizes: Mapping[str, int], *, seed: int, balanced: bool = True) -> dict[str, np.ndarray]:
    """Disjoint index sets of the requested sizes, plus ``"remainder"`` (everything left).

    With ``balanced=True`` each set holds ``size // C`` records of every class
    (the remaining ``size % C`` from randomly chosen classes); otherwise a
    uniform random draw.  Indices within each set are in random order.
    Raises ``ValueError`` naming the set when a class runs out of records.
    """
    labels = as_labels(labels, "labels")
    if REMAINDER in sizes:
        raise ValueError(f"{REMAINDER!r} is reserved for the records left over")
    for name, size in sizes.items():
        check_positive_int(size, f"sizes[{name!r}]")
    total = sum(sizes.values())
    if total > labels.size:
        raise ValueError(f"sizes ask for {total} records but only {labels.size} are available")
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    if not balanced:
        order = rng.permutation(labels.size)
        start = 0
        for name, size in sizes.items():
            out[name] = order[start : start + size]
            start += size
        out[REMAINDER] = order[start:]
        return out
    classes = np.unique(labels)
    pools = {c: rng.permutation(np.flatnonzero(labels == c)) for c in classes}
    used = {c: 0 for c in classes}
    for name, size in sizes.items():
        quota = _per_class_quota(size, classes.size, rng)
        chosen = []
        for c, q in zip(classes, quota):
            if used[c] + q > pools[c].size:
                raise ValueError(
                    f"not enough records of class {int(c)} for {name!r}: need {q}, "
                    f"{pools[c].size - used[c]} left (sizes={dict(sizes)})"
                )
            chosen.append(pools[c][used[c] : used[c] + q])
            used[c] += q
        out[name] = rng.permutation(np.concatenate(chosen))
    out[REMAINDER] = rng.permutation(np.concatenate([pools[c][used[c] :] for c in classes]))
    return out


@dataclasses.dataclass(frozen=True)
class Partitions:
    """Named disjoint index sets into one pool ``(x, y)``."""

    x: np.ndarray
    y: np.ndarray
    indices: dict[str, np.ndarray]
    seed: int

    def __getitem__(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)`` of the named partition."""
        if name not in self.indices:
            raise KeyError(f"no partition {name!r}; have {sorted(self.indices)}")
        idx = self.indices[name]
        return self.x[idx], self.y[idx]

    def size(self, name: str) -> int:
        return int(self.indices[name].size)


def partition(x, y, sizes: Mapping[str, int], *, seed: int, balanced: bool = True) -> Partitions:
    """Split ``(x, y)`` into disjoint named partitions plus ``"remainder"`` (see :func:`balanced_indices`).

    Example (SeqMIA's setting)::

        parts = partition(x, y, {"target_train": 2500, "target_test": 2500,
                                 "shadow_train": 2500, "shadow_test": 2500}, seed=0)
        x_in, y_in = parts["target_train"]
        x_distill, _ = parts["remainder"]
    """
    x = np.asarray(x)
    y = as_labels(y, "y")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x has {x.shape[0]} records but y has {y.shape[0]}")
    return Partitions(x=x, y=y, indices=balanced_indices(y, sizes, seed=seed, balanced=balanced), seed=seed)


def known_subset(labels, fraction: float, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split record indices per class into a known part (``fraction`` of each class) and the rest.

    Rezaei & Liu's setting: the attacker knows the membership of 80 % of each
    class's members and of its non-members and is evaluated on the rest.
    Every class keeps at least one record on each side when it has two or more.
    """
    from ._validate import check_fraction

    fraction = check_fraction(fraction, "known_fraction")
    labels = as_labels(labels, "labels")
    rng = np.random.default_rng(seed)
    known, rest = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = int(round(fraction * idx.size))
        if idx.size >= 2:
            k = min(max(k, 1), idx.size - 1)
        known.append(idx[:k])
        rest.append(idx[k:])
    return np.sort(np.concatenate(known)), np.sort(np.concatenate(rest))
