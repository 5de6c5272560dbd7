"""Seeded shuffling for ``model.fit``: every epoch's batches in an order fixed by ``(seed, epoch)``.

Keras shuffles arrays with ``tf.random.shuffle``, whose seed comes from
TensorFlow's process-wide seed at the time ``fit`` builds its dataset, so a
thread that reseeds or draws from TensorFlow meanwhile changes the batches.
:class:`ShuffledBatches` replaces that shuffle by numpy's
``default_rng([seed, epoch]).permutation(n)``, which reads no global state.
Imported only by :func:`tfmia.training.fit_model` (it imports Keras).
"""

from __future__ import annotations

import math

import keras
import numpy as np

__all__ = ["ShuffledBatches", "epoch_order"]


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The order in which epoch ``epoch`` (0-based, as Keras counts) visits ``n`` records."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def count_records(arrays) -> int:
    """The common number of records (first dimension) of every array in the nest ``arrays``."""
    shapes = [np.shape(leaf) for leaf in keras.tree.flatten(arrays)]
    if not shapes or min(len(shape) for shape in shapes) == 0:
        raise ValueError("x, y and sample_weight must be arrays (or nests of arrays) of records, "
                         f"got shapes {shapes}")
    sizes = {shape[0] for shape in shapes}
    if len(sizes) != 1:
        raise ValueError(f"x, y and sample_weight must hold the same number of records, got sizes {sorted(sizes)}")
    return sizes.pop()


class ShuffledBatches(keras.utils.PyDataset):
    """The batches of ``arrays`` for epochs ``first_epoch, ..., epochs - 1``, each epoch in :func:`epoch_order`.

    ``arrays`` is ``(x, y)`` or ``(x, y, sample_weight)``, each an array or a
    nest of arrays (multi-input models).  Item ``i`` is a pure function of
    ``i``: epoch ``first_epoch + i // steps_per_epoch``, step
    ``i % steps_per_epoch`` (the last step of an epoch may be short).  So
    neither tf.data's prefetching across an epoch boundary nor the thread that
    fetches it changes what a training step sees, and a fit resumed at
    ``initial_epoch=k`` sees what epoch ``k`` of an uninterrupted fit saw.
    ``model.fit`` must get ``steps_per_epoch=self.steps_per_epoch`` so that it
    walks all epochs in one pass.
    """

    def __init__(self, arrays: tuple, *, batch_size: int, seed: int, first_epoch: int, epochs: int):
        super().__init__()
        self.arrays = keras.tree.map_structure(np.asarray, arrays)
        self.n_records = count_records(self.arrays)
        self.batch_size = batch_size
        self.seed = seed
        self.first_epoch = first_epoch
        self.n_epochs = epochs - first_epoch
        self.steps_per_epoch = math.ceil(self.n_records / batch_size)
        self._cached_order = (None, None)  # (epoch, order): items are fetched epoch by epoch

    def __len__(self) -> int:
        return self.n_epochs * self.steps_per_epoch

    def __getitem__(self, index: int):
        epoch, step = divmod(index, self.steps_per_epoch)
        rows = self._order(self.first_epoch + epoch)[step * self.batch_size:(step + 1) * self.batch_size]
        return keras.tree.map_structure(lambda array: array[rows], self.arrays)

    def _order(self, epoch: int) -> np.ndarray:
        cached_epoch, order = self._cached_order
        if cached_epoch != epoch:
            order = epoch_order(self.seed, epoch, self.n_records)
            self._cached_order = (epoch, order)
        return order
