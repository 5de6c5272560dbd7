"""Disjoint, balanced, reproducible partitions."""

import numpy as np
import pytest

from tfmia.splits import balanced_indices, known_subset, partition


def _labels(n=1000, c=7, seed=0):
    return np.random.default_rng(seed).integers(0, c, n)


def test_partitions_are_disjoint_balanced_and_reproducible():
    y = _labels()
    sizes = {"target_train": 140, "target_test": 140, "shadow_train": 141, "shadow_test": 70}
    parts = balanced_indices(y, sizes, seed=5)
    everything = np.concatenate(list(parts.values()))
    assert np.array_equal(np.sort(everything), np.arange(y.size))  # disjoint and complete
    for name, size in sizes.items():
        counts = np.bincount(y[parts[name]], minlength=7)
        assert counts.sum() == size and counts.max() - counts.min() <= 1
    again = balanced_indices(y, sizes, seed=5)
    assert all(np.array_equal(parts[k], again[k]) for k in parts)
    other = balanced_indices(y, sizes, seed=6)
    assert not np.array_equal(parts["target_train"], other["target_train"])


def test_unbalanced_draw_and_partition_views():
    y = _labels()
    x = np.arange(y.size)[:, None] * 1.0
    p = partition(x, y, {"a": 10, "b": 20}, seed=0, balanced=False)
    xa, ya = p["a"]
    assert xa.shape == (10, 1) and np.array_equal(y[xa[:, 0].astype(int)], ya)
    assert p.size("remainder") == y.size - 30
    with pytest.raises(KeyError, match="no partition"):
        p["c"]


@pytest.mark.parametrize("sizes, match", [({"a": 2000}, "only 1000"), ({"a": 0}, "sizes"), ({"remainder": 3}, "reserved")])
def test_bad_sizes(sizes, match):
    with pytest.raises(ValueError, match=match):
        balanced_indices(_labels(), sizes, seed=0)


def test_running_out_of_a_class_names_the_partition():
    y = np.r_[np.zeros(100, int), np.ones(5, int)]
    with pytest.raises(ValueError, match="class 1 for 'big'"):
        balanced_indices(y, {"big": 20}, seed=0)


def test_known_subset_is_per_class():
    y = _labels(500, 5)
    known, rest = known_subset(y, 0.8, seed=1)
    assert np.array_equal(np.sort(np.r_[known, rest]), np.arange(500))
    for c in range(5):
        n_c = np.sum(y == c)
        assert np.sum(y[known] == c) == round(0.8 * n_c)
    with pytest.raises(ValueError, match="known_fraction"):
        known_subset(y, 1.0, seed=0)
