"""RMIA and QMIA inside PrivacyAuditCallback on a real model.fit: logged values, references trained once, failures."""

import warnings

import keras
import numpy as np
import pytest
from _models import digits, small_mlp
from sklearn.metrics import roc_auc_score

from tfmia.attacks.rmia import A_GRID, rmia_scores
from tfmia.callbacks import PrivacyAuditCallback, qmia_audit, rmia_audit
from tfmia.data import AttackInputs
from tfmia.report import AuditReport
from tfmia.training import FitConfig, build_model

MEMBERS, NON_MEMBERS = slice(0, 100), slice(200, 300)  # the target trains on records 0..199
REFERENCE, POPULATION, PUBLIC = slice(400, 800), slice(800, 1000), slice(1000, 1300)


@pytest.fixture(scope="module")
def xy():
    return digits()


def _pair(xy, part):
    return xy[0][part], xy[1][part]


class CountingRecipe:
    """The target's recipe, counting how many models it builds."""

    def __init__(self):
        self.builds = 0

    def __call__(self):
        self.builds += 1
        return small_mlp()


def _signal(model, x, y):
    """p(x|theta) = softmax_y, from the audit's own inference outputs, renormalised in float64 by hand."""
    probs = AttackInputs.from_model(model, x, y, batch_size=512).outputs.astype(np.float64)
    return probs[np.arange(len(y)), y] / probs.sum(axis=1)


def test_rmia_and_qmia_every_audited_epoch_rmia_auc_from_its_signals_references_trained_once(xy, tmp_path):
    recipe = CountingRecipe()
    rmia = rmia_audit(recipe, reference_data=_pair(xy, REFERENCE), population=_pair(xy, POPULATION),
                      n_references=2, fit=FitConfig(epochs=3, batch_size=32))
    qmia = qmia_audit(_pair(xy, PUBLIC), alpha=0.1, epochs=5)
    audit = PrivacyAuditCallback(_pair(xy, MEMBERS), _pair(xy, NON_MEMBERS), attacks=["loss", rmia, qmia],
                                 report_dir=tmp_path)
    x_audit = np.concatenate([xy[0][MEMBERS], xy[0][NON_MEMBERS]])
    y_audit = np.concatenate([xy[1][MEMBERS], xy[1][NON_MEMBERS]])
    expected_auc = []

    def rmia_by_hand(epoch, logs):  # runs after the audit callback, on the same model state
        target_x, target_z = _signal(model, x_audit, y_audit), _signal(model, *_pair(xy, POPULATION))
        scores = rmia_scores(target_x, rmia.attack.refs_x, target_z, rmia.attack.refs_z, a=rmia.attack.a)
        expected_auc.append(roc_auc_score(np.arange(200) < 100, scores))

    builds_at_epoch = []
    model = build_model(small_mlp, seed=0)
    history = model.fit(*_pair(xy, slice(0, 200)), epochs=2, batch_size=32, verbose=0,
                        callbacks=[audit, keras.callbacks.LambdaCallback(on_epoch_end=rmia_by_hand,
                                                                         on_epoch_begin=lambda epoch, logs:
                                                                         builds_at_epoch.append(recipe.builds))])
    h = history.history
    built = recipe.builds
    # The K = 2 references, plus the model train_shadow_models builds first to size their pack, all before
    # the first epoch; none after.
    assert built == 3 and builds_at_epoch == [built, built]
    assert h["mia_rmia_auc"] == pytest.approx(expected_auc, abs=1e-12)
    for key in ("mia_rmia_auc", "mia_rmia_advantage", "mia_qmia_auc", "mia_qmia_far", "mia_loss_auc"):
        assert len(h[key]) == 2 and np.isfinite(h[key]).all(), key
    # a chosen from the references alone: the grid value of the best mean AUC (ties to the smallest)
    assert rmia.attack.a == A_GRID[np.argmax(rmia.attack.a_auc)] and rmia.attack.refs_x.shape == (2, 200)

    refs_x = rmia.attack.refs_x.copy()
    model.fit(*_pair(xy, slice(0, 200)), epochs=1, batch_size=32, verbose=0, callbacks=[audit])
    assert recipe.builds == built and np.array_equal(rmia.attack.refs_x, refs_x)  # a second fit reuses the references

    saved = AuditReport.from_json(sorted((tmp_path / "fit-000").glob("audit_epoch_*.json"))[-1])
    rmia_meta, qmia_meta = saved["rmia"].metadata, saved["qmia"].metadata
    assert rmia_meta["n_models"] == 2 and rmia_meta["online"] is False and rmia_meta["a_setting"] == "auto"
    assert rmia_meta["a"] == rmia.attack.a and rmia_meta["population_records"] == 200
    assert qmia_meta["alpha"] == 0.1 and qmia_meta["calibration"]["held_out"] == 60  # a fifth of 300 public
    summary = saved.summary()
    assert "settings of rmia: 2 reference models, offline" in summary
    assert f"calibration of qmia: alpha = 0.1; observed FPR {qmia_meta['calibration']['observed_fpr']:.4g}" in summary


def test_a_failing_regressor_warns_and_logs_nan_training_goes_on(xy):
    calls = []

    def regressor_fn(input_shape):  # works at the first audit, fails at the second
        calls.append(input_shape)
        if len(calls) == 2:
            raise RuntimeError("regressor out of memory")
        return keras.Sequential([keras.Input(input_shape), keras.layers.Dense(1)])

    audit = PrivacyAuditCallback(_pair(xy, MEMBERS), _pair(xy, NON_MEMBERS),
                                 attacks=["loss", qmia_audit(_pair(xy, PUBLIC), epochs=2, regressor_fn=regressor_fn)])
    model = build_model(small_mlp, seed=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(*_pair(xy, slice(0, 200)), epochs=3, batch_size=32, verbose=0, callbacks=[audit])
    h = history.history
    assert len(h["loss"]) == 3 and len(h["mia_qmia_auc"]) == 3
    assert np.isfinite(h["mia_qmia_auc"][0]) and np.isnan(h["mia_qmia_auc"][1])  # the same keys, NaN when it failed
    assert np.isfinite(h["mia_loss_auc"]).all()
    assert any("'qmia' failed at epoch 2" in str(w.message) and "out of memory" in str(w.message) for w in caught)


def test_reference_training_failure_stops_fit_before_the_first_epoch(xy):
    def broken_recipe():
        raise RuntimeError("no GPU for the references")

    epochs = []
    audit = PrivacyAuditCallback(_pair(xy, MEMBERS), _pair(xy, NON_MEMBERS), attacks=[
        rmia_audit(broken_recipe, reference_data=_pair(xy, REFERENCE), population=_pair(xy, POPULATION),
                   fit=FitConfig(epochs=1))])
    model = build_model(small_mlp, seed=2)
    with pytest.raises(ValueError, match="'rmia' cannot audit .*no GPU for the references"):
        model.fit(*_pair(xy, slice(0, 200)), epochs=2, verbose=0,
                  callbacks=[audit, keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: epochs.append(e))])
    assert epochs == []


@pytest.mark.parametrize("make, match", [
    (lambda x, y: rmia_audit(small_mlp, reference_data=(x[400:500], y[400:500]), population=(x[800:900, :32], y[800:900]),
                             fit=FitConfig(epochs=1)), "population x holds records of shape"),
    (lambda x, y: qmia_audit((x[1000:1100], np.full(100, 12))), "public y holds label 12, but the model has 10"),
])
def test_records_that_do_not_fit_the_model_fail_before_training(xy, make, match):
    audit = PrivacyAuditCallback(_pair(xy, MEMBERS), _pair(xy, NON_MEMBERS), attacks=[make(*xy)])
    model = build_model(small_mlp, seed=3)
    weights = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match=match):
        model.fit(*_pair(xy, slice(0, 200)), epochs=1, verbose=0, callbacks=[audit])
    assert all(np.array_equal(a, b) for a, b in zip(weights, model.get_weights()))


@pytest.mark.parametrize("kwargs, match", [
    ({"reference_data": None}, "reference_data: offline RMIA needs attacker data"),
    ({"population": (np.zeros((3, 64)), [0, 1])}, "population: x has 3 records"),
    ({"n_references": 1}, "a='auto' needs n_models >= 2"),
])
def test_rmia_audit_arguments_are_checked_at_construction(xy, kwargs, match):
    args = {"reference_data": _pair(xy, REFERENCE), "population": _pair(xy, POPULATION), **kwargs}
    with pytest.raises(ValueError, match=match):
        rmia_audit(small_mlp, fit=FitConfig(epochs=1), **args)


def test_global_random_generators_are_not_replayed_after_each_audit(xy):
    """QMIA's regressor trains seeded at every audit; what the user's code draws afterwards must still vary."""
    draws = []
    audit = PrivacyAuditCallback(_pair(xy, MEMBERS), _pair(xy, NON_MEMBERS),
                                 attacks=[qmia_audit(_pair(xy, PUBLIC), epochs=1)])
    model = build_model(small_mlp, seed=4)
    model.fit(*_pair(xy, slice(0, 200)), epochs=2, verbose=0, callbacks=[
        audit, keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: draws.append(np.random.random()))])
    assert draws[0] != draws[1]
