"""Shadow-model training: splits, executors (process pool, Dask LocalCluster), resume after a kill."""

import concurrent.futures as cf
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from _models import digits, digits_mlp, small_mlp, uncompiled_mlp

from tfmia.shadow_training import shadow_splits, train_shadow_models
from tfmia.training import FitConfig, build_model

TESTS = Path(__file__).resolve().parent
QUICK = FitConfig(epochs=3, batch_size=32)


def test_shokri_and_disjoint_splits():
    for scheme in ("shokri", "disjoint"):
        splits = shadow_splits(1000, n_shadows=4, train_size=100, scheme=scheme, seed=0)
        assert len(splits) == 4
        for in_idx, out_idx, query in splits:
            assert in_idx.size == out_idx.size == 100 and not set(in_idx) & set(out_idx)
            assert np.array_equal(query, np.r_[in_idx, out_idx])
    used = np.concatenate([np.r_[i, o] for i, o, _ in shadow_splits(1000, n_shadows=4, train_size=100, scheme="disjoint", seed=0)])
    assert np.unique(used).size == used.size


def test_lira_split_puts_every_record_in_half_the_models():
    splits = shadow_splits(300, n_shadows=6, train_size=None, scheme="lira", seed=1)
    membership = np.zeros((6, 300), bool)
    for i, (in_idx, out_idx, query) in enumerate(splits):
        membership[i, in_idx] = True
        assert np.array_equal(np.sort(np.r_[in_idx, out_idx]), np.arange(300)) and query.size == 300
    assert np.all(membership.sum(axis=0) == 3)
    # Any first 2k models are balanced too (fewer references are a prefix of more), and a model's
    # training set is a random half, not the same for every pair.
    for k in (1, 2):
        assert np.all(membership[: 2 * k].sum(axis=0) == k)
    assert np.all(membership.sum(axis=1) == 150)
    assert not np.array_equal(membership[0], membership[2]) and not np.array_equal(membership[0], membership[3])


@pytest.mark.parametrize("kwargs, match", [
    ({"n_shadows": 0, "train_size": 10}, "n_shadows"),
    ({"n_shadows": 2, "train_size": 300, "scheme": "disjoint"}, "need 1200"),
    ({"n_shadows": 1, "train_size": 600}, "need 1200"),
    ({"n_shadows": 1, "train_size": 10, "scheme": "other"}, "scheme"),
])
def test_bad_split_requests(kwargs, match):
    x, y = digits()
    with pytest.raises(ValueError, match=match):
        train_shadow_models(digits_mlp, x[:1000], y[:1000], fit=QUICK, progress=False, **kwargs)


def test_uncompiled_model_fn_is_refused():
    x, y = digits()
    with pytest.raises(ValueError, match="compiled"):
        train_shadow_models(uncompiled_mlp, x[:100], y[:100], n_shadows=1, fit=QUICK, train_size=20, progress=False)
    with pytest.raises(ValueError, match="keras.Model"):
        build_model(lambda: "not a model")


def _check_outputs_match_saved_weights(shadows, x):
    for m in shadows.models:
        model = build_model(small_mlp)
        model.load_weights(m.weights_path)
        np.testing.assert_allclose(model.predict(x[m.query_indices], verbose=0), m.outputs, rtol=1e-5, atol=1e-6)


def test_sequential_run_directory_and_config_check(tmp_path):
    x, y = digits()
    shadows = train_shadow_models(small_mlp, x[:400], y[:400], n_shadows=2, fit=QUICK, train_size=100, seed=3,
                                  run_dir=tmp_path, progress=False)
    assert shadows.trained == [0, 1] and shadows.resumed == []
    _check_outputs_match_saved_weights(shadows, x[:400])
    members, non_members = shadows.attack_inputs(1)
    assert np.array_equal(members.labels, y[shadows.models[1].in_indices])
    again = train_shadow_models(small_mlp, x[:400], y[:400], n_shadows=2, fit=QUICK, train_size=100, seed=3,
                                run_dir=tmp_path, progress=False)
    assert again.trained == [] and again.resumed == [0, 1]
    assert np.array_equal(again.models[0].outputs, shadows.models[0].outputs)
    with pytest.raises(ValueError, match="different configuration.*seed"):
        train_shadow_models(small_mlp, x[:400], y[:400], n_shadows=2, fit=QUICK, train_size=100, seed=4,
                            run_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="different configuration.*data"):
        train_shadow_models(small_mlp, x[:401], y[:401], n_shadows=2, fit=QUICK, train_size=100, seed=3,
                            run_dir=tmp_path, progress=False)


def test_logits_are_stored_for_softmax_models(tmp_path):
    x, y = digits()
    shadows = train_shadow_models(small_mlp, x[:300], y[:300], n_shadows=1, fit=QUICK, train_size=100, seed=5,
                                  run_dir=tmp_path, progress=False, logits=True)
    shadow = shadows.models[0]
    assert shadow.is_logits
    model = build_model(small_mlp)
    model.load_weights(shadow.weights_path)
    kernel, bias = model.layers[-1].get_weights()
    hidden = model.layers[0](x[:300][shadow.query_indices])  # Dense(32, relu): the head's input
    np.testing.assert_allclose(shadow.outputs, np.asarray(hidden) @ kernel + bias, rtol=1e-4, atol=1e-4)
    members, _ = shadows.attack_inputs(0)
    assert members.from_logits
    with pytest.raises(ValueError, match="different configuration.*logits"):
        train_shadow_models(small_mlp, x[:300], y[:300], n_shadows=1, fit=QUICK, train_size=100, seed=5,
                            run_dir=tmp_path, progress=False)


def test_process_pool_executor(tmp_path):
    x, y = digits()
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=2, mp_context=ctx) as pool:
        shadows = train_shadow_models(small_mlp, x[:400], y[:400], n_shadows=2, fit=QUICK, train_size=100, seed=0,
                                      run_dir=tmp_path, executor=pool, progress=False)
    assert shadows.trained == [0, 1]
    _check_outputs_match_saved_weights(shadows, x[:400])


def test_dask_local_cluster_executor(tmp_path):
    distributed = pytest.importorskip("distributed")
    x, y = digits()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        shadows = train_shadow_models(small_mlp, x[:400], y[:400], n_shadows=2, fit=QUICK, train_size=100, seed=0,
                                      run_dir=tmp_path, executor=client.get_executor(), progress=False)
    assert shadows.trained == [0, 1]
    _check_outputs_match_saved_weights(shadows, x[:400])


def test_resume_after_the_run_is_killed(tmp_path):
    """One model after another (packs resume whole: tests/test_farm.py)."""
    slow = FitConfig(epochs=60, batch_size=8)
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(TESTS)!r})
        from _models import digits, small_mlp
        from tfmia.shadow_training import train_shadow_models
        from tfmia.training import FitConfig
        x, y = digits()
        train_shadow_models(small_mlp, x[:400], y[:400], n_shadows=3, fit=FitConfig(epochs=60, batch_size=8),
                            train_size=100, seed=7, run_dir=sys.argv[1], progress=False, packed=False)
    """)
    child = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    first = tmp_path / "shadow_0000.npz"
    deadline = time.time() + 300
    while not first.exists() and child.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert first.exists(), "the first shadow model never finished"
    stamp = first.stat().st_mtime_ns
    x, y = digits()
    shadows = train_shadow_models(small_mlp, x[:400], y[:400], n_shadows=3, fit=slow, train_size=100, seed=7,
                                  run_dir=tmp_path, progress=False, packed=False)
    assert 0 in shadows.resumed and shadows.trained, (shadows.resumed, shadows.trained)
    assert sorted(shadows.resumed + shadows.trained) == [0, 1, 2]
    assert first.stat().st_mtime_ns == stamp  # not retrained
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # the killed writer's temporaries
