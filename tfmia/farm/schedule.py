"""Batches: replica k's steps are those ``fit_model(..., seed=seeds[k])`` would take, run as pack steps."""

from __future__ import annotations

import math

import numpy as np

from ..training import FitConfig


class _ReplicaSteps:
    """Replica k's training steps, as ``fit_model(..., seed=seed)`` takes them, padded to a common width.

    Step s is batch ``s % per_epoch`` of epoch ``s // per_epoch``: the next
    ``batch_size`` members in :func:`~tfmia._shuffled_batches.epoch_order`
    (the last batch of an epoch may be short).  A batch is padded to
    ``width`` with its first row at weight 0.  After its last step the
    replica idles on rows of its own at weight 1 (so that nothing it computes
    divides by zero) and is marked inactive: its update is masked.
    """

    def __init__(self, members: np.ndarray, seed: int, fit: FitConfig, width: int):
        self.members, self.seed, self.fit, self.width = members, seed, fit, width
        self.per_epoch = math.ceil(members.size / fit.batch_size)
        self.total = fit.epochs * self.per_epoch
        self._epoch = (None, None)

    def _block(self, epoch: int):
        """(rows, weights), each (per_epoch, width): the padded batches of ``epoch``."""
        from .._shuffled_batches import epoch_order

        if self._epoch[0] != epoch:
            n, batch = self.members.size, self.fit.batch_size
            order = epoch_order(self.seed, epoch, n) if self.fit.shuffle else np.arange(n)
            rows = np.zeros((self.per_epoch, self.width), np.int64)
            weights = np.zeros((self.per_epoch, self.width), np.float32)
            position = np.arange(n)
            rows[position // batch, position % batch] = self.members[order]
            weights[position // batch, position % batch] = 1.0
            rows = np.where(weights > 0, rows, rows[:, :1])
            self._epoch = (epoch, (rows, weights))
        return self._epoch[1]

    def steps(self, start: int, stop: int):
        """(rows (S, width), weights (S, width)) of steps ``start`` to ``stop``."""
        rows = np.empty((stop - start, self.width), np.int64)
        weights = np.ones((stop - start, self.width), np.float32)
        rows[max(0, self.total - start):] = np.resize(self.members, self.width)  # idle steps
        epochs, batches = np.divmod(np.arange(start, min(stop, self.total)), self.per_epoch)
        for epoch in np.unique(epochs):
            chosen = np.flatnonzero(epochs == epoch)
            block_rows, block_weights = self._block(int(epoch))
            rows[chosen], weights[chosen] = block_rows[batches[chosen]], block_weights[batches[chosen]]
        return rows, weights


def _pack_steps(members: list, seeds: list, fit: FitConfig, chunk: int = 64):
    """Yield ``(rows (S, K, B) int64, weights (S, K, B) float32, active (K,) bool)`` for S pack steps at a time.

    Pack step s is step s of every replica (:class:`_ReplicaSteps`); the
    pack runs until its longest replica is done.  Chunks end where a
    replica takes its last step, so the replicas active in a chunk are
    active throughout it.
    """
    width = min(fit.batch_size, max(m.size for m in members))
    replicas = [_ReplicaSteps(m, s, fit, width) for m, s in zip(members, seeds)]
    ends = sorted({r.total for r in replicas})
    start = 0
    while start < ends[-1]:
        stop = min(start + chunk, next(end for end in ends if end > start))
        parts = [r.steps(start, stop) for r in replicas]
        active = np.array([start < r.total for r in replicas])
        yield (np.stack([rows for rows, _ in parts], axis=1), np.stack([weights for _, weights in parts], axis=1),
               active)
        start = stop


def _check_members(members, n_replicas: int, n_records: int) -> list[np.ndarray]:
    if len(members) != n_replicas:
        raise ValueError(f"members must give the records of each of the {n_replicas} replicas, got {len(members)}")
    checked = []
    for k, rows in enumerate(members):
        rows = np.asarray(rows)
        if rows.ndim != 1 or rows.size == 0 or not np.issubdtype(rows.dtype, np.integer):
            raise ValueError(f"members[{k}] must be a non-empty 1-D array of record indices, got {rows.dtype} "
                             f"{rows.shape}")
        if rows.min() < 0 or rows.max() >= n_records:
            raise ValueError(f"members[{k}] must index the {n_records} records, found {rows.min()}..{rows.max()}")
        checked.append(rows.astype(np.int64))
    return checked
