"""train_shadow_models(holdout=...): records no model trains on, queried by every model."""

import numpy as np
import pytest
from _models import digits, small_mlp

from tfmia.shadow_training import shadow_splits, train_shadow_models
from tfmia.training import FitConfig


@pytest.mark.parametrize("scheme, train_size", [("lira", None), ("shokri", 10), ("disjoint", 3)])
def test_holdout_records_are_queried_never_trained(scheme, train_size):
    held = np.array([3, 17, 0, 29])
    splits = shadow_splits(30, n_shadows=4, train_size=train_size, scheme=scheme, seed=1, holdout=held)
    rest = np.setdiff1d(np.arange(30), held)
    for in_idx, out_idx, query in splits:
        assert not np.isin(held, in_idx).any() and not np.isin(held, out_idx).any()
        np.testing.assert_array_equal(query[-held.size:], held)  # queried after the model's own records
        assert np.isin(in_idx, rest).all() and np.isin(out_idx, rest).all()
        assert np.unique(query).size == query.size
    if scheme == "lira":  # every other record in exactly half of the models, all queried by every model
        counts = sum(np.isin(rest, s[0]).astype(int) for s in splits)
        assert np.all(counts == 2)
        assert all(np.array_equal(np.sort(s[2]), np.arange(30)) for s in splits)


def test_no_holdout_keeps_the_splits():
    for holdout in (None, np.zeros(0, dtype=np.int64)):
        a = shadow_splits(20, n_shadows=2, train_size=None, scheme="lira", seed=3, holdout=holdout)
        b = shadow_splits(20, n_shadows=2, train_size=None, scheme="lira", seed=3)
        for sa, sb in zip(a, b):
            for x, y in zip(sa, sb):
                np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("holdout, match", [
    ([1, 1], "holdout must not repeat a record"),
    ([0, 20], r"holdout must lie in \[0, 20\)"),
    ([-1], r"holdout must lie in \[0, 20\)"),
    ([0.5], "holdout must be a 1-D array of integer pool indices"),
    ([[1]], "holdout must be a 1-D array of integer pool indices"),
])
def test_bad_holdout(holdout, match):
    with pytest.raises(ValueError, match=match):
        shadow_splits(20, n_shadows=2, train_size=None, scheme="lira", seed=0, holdout=np.array(holdout))


def test_too_few_records_outside_the_holdout():
    with pytest.raises(ValueError, match=r"has 4 records \(outside any holdout\)"):
        shadow_splits(20, n_shadows=1, train_size=3, scheme="shokri", seed=0, holdout=np.arange(16))


def test_trained_models_respect_the_holdout_and_the_run_directory_remembers_it(tmp_path):
    x, y = digits()
    x, y = x[:40], y[:40]
    fit = FitConfig(epochs=1, batch_size=20)
    held = np.arange(30, 40)
    models = train_shadow_models(small_mlp, x, y, n_shadows=2, fit=fit, scheme="lira", seed=0, run_dir=tmp_path,
                                 progress=False, holdout=held)
    assert not models.membership()[:, held].any()
    assert np.all(models.membership()[:, :30].sum(axis=0) == 1)
    for model in models.models:
        assert model.outputs_for(held).shape == (10, 10)
    with pytest.raises(ValueError, match="different configuration.*holdout"):
        train_shadow_models(small_mlp, x, y, n_shadows=2, fit=fit, scheme="lira", seed=0, run_dir=tmp_path,
                            progress=False, holdout=held[:5])
