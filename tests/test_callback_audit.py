"""PrivacyAuditCallback on a real model.fit: logged values, TensorBoard, failures, EarlyStopping."""

import csv
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from _models import digits, small_mlp

from tfmia.attacks import MetricAttack
from tfmia.callbacks import PrivacyAuditCallback
from tfmia.data import AttackInputs
from tfmia.report import AuditReport
from tfmia.training import build_model


@pytest.fixture()
def data():
    x, y = digits()
    return (x[:300], y[:300]), (x[300:500], y[300:500])


def test_logged_values_equal_a_direct_attack_result(data, tmp_path):
    (x_tr, y_tr), (x_te, y_te) = data
    model = build_model(small_mlp, seed=0)
    audit = PrivacyAuditCallback((x_tr[:150], y_tr[:150]), (x_te, y_te), every_n_epochs=3,
                                 report_dir=tmp_path / "reports", slicing={"by_correctness": True, "by_class": False})
    history = model.fit(x_tr, y_tr, epochs=4, batch_size=32, verbose=0,
                        callbacks=[audit, keras.callbacks.CSVLogger(tmp_path / "log.csv")])
    h = history.history
    assert len(h["mia_auc"]) == 3  # audited at epochs 1 (always), 3 (every third) and 4 (the last)
    members = AttackInputs.from_model(model, x_tr[:150], y_tr[:150])
    non_members = AttackInputs.from_model(model, x_te, y_te)
    aucs = {}
    for metric in ("loss", "confidence", "entropy", "modified_entropy"):
        direct = MetricAttack(metric, class_dependent=False).evaluate(members, non_members)
        aucs[metric] = direct.auc
        assert h[f"mia_{metric}_auc"][-1] == pytest.approx(direct.auc, abs=1e-12)
        assert h[f"mia_{metric}_advantage"][-1] == pytest.approx(direct.advantage, abs=1e-12)
        assert h[f"mia_{metric}_far"][-1] == pytest.approx(direct.far, abs=1e-12)
    assert h["mia_auc"][-1] == pytest.approx(max(aucs.values()), abs=1e-12)
    best = max(aucs, key=aucs.get)
    assert h["mia_far"][-1] == h[f"mia_{best}_far"][-1]
    assert "mia_loss_misclassified_auc" in h or "mia_loss_correctly_classified_auc" in h
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert float(rows[-1]["mia_auc"]) == pytest.approx(h["mia_auc"][-1])
    assert rows[1]["mia_auc"] == "NA"  # epoch 2 was not audited
    assert audit.run_dir == tmp_path / "reports" / "fit-000"
    saved = sorted(audit.run_dir.glob("audit_epoch_*.json"))
    assert [p.name for p in saved] == ["audit_epoch_0001.json", "audit_epoch_0003.json", "audit_epoch_0004.json"]
    assert AuditReport.from_json(saved[-1]).facts.epoch == 4
    assert (audit.run_dir / "privacy_vs_epoch.png").stat().st_size > 1000


def test_logits_option_audits_the_pre_softmax_scores(data):
    from sklearn.metrics import roc_auc_score

    (x_tr, y_tr), (x_te, y_te) = data
    model = build_model(small_mlp, seed=0)
    audit = PrivacyAuditCallback((x_tr[:150], y_tr[:150]), (x_te, y_te), attacks=["loss"], logits=True)
    history = model.fit(x_tr, y_tr, epochs=1, batch_size=32, verbose=0, callbacks=[audit])
    assert len(history.history["mia_loss_auc"]) == 1
    head = model.layers[-1]
    head.set_weights([w * 40.0 for w in head.get_weights()])  # a quarter of the softmax outputs round to 1
    kernel, bias = (w.astype(np.float64) for w in head.get_weights())
    hidden = keras.Model(model.inputs[0], model.layers[-2].output)

    def by_hand(x, y):  # -log softmax_y of h @ W + b in float64, without tfmia
        z = np.asarray(hidden(x), np.float64) @ kernel + bias
        z = z - z[np.arange(len(y)), y][:, None]  # 0 at the true class
        others = np.arange(z.shape[1]) != y[:, None]
        top = np.where(others, z, -np.inf).max(axis=1)
        # log(1 + sum_j exp(z_j)) over the other classes, without log(1 + tiny) rounding to 0
        return np.where(top < 0, np.log1p(np.exp(z).sum(axis=1, where=others)),
                        top + np.log(np.exp(-top) + np.exp(z - top[:, None]).sum(axis=1, where=others)))

    is_member = np.r_[np.ones(150, bool), np.zeros(len(y_te), bool)]
    expected = roc_auc_score(is_member, -np.r_[by_hand(x_tr[:150], y_tr[:150]), by_hand(x_te, y_te)])
    assert audit.audit(2)["loss"].auc == pytest.approx(expected, abs=3e-5)  # one pair in 30,000
    from_probs = PrivacyAuditCallback((x_tr[:150], y_tr[:150]), (x_te, y_te), attacks=["loss"])
    from_probs.set_model(model)
    assert abs(from_probs.audit(2)["loss"].auc - expected) > 3e-4  # the ties the option avoids


def test_tensorboard_scalars_are_written(data, tmp_path):
    (x_tr, y_tr), (x_te, y_te) = data
    model = build_model(small_mlp, seed=1)
    audit = PrivacyAuditCallback((x_tr[:100], y_tr[:100]), (x_te[:100], y_te[:100]), log_dir=tmp_path / "tb")
    model.fit(x_tr, y_tr, epochs=2, verbose=0, callbacks=[audit])
    files = list((tmp_path / "tb").glob("events.out.tfevents*"))
    assert files
    tags = {}
    for record in tf.data.TFRecordDataset([str(f) for f in files]):
        event = tf.compat.v1.Event.FromString(record.numpy())
        for value in event.summary.value:
            tags.setdefault(value.tag, []).append(event.step)
    assert tags["mia_auc"] == [1, 2]


def test_failing_attack_warns_and_training_continues(data):
    (x_tr, y_tr), (x_te, y_te) = data

    def broken(members, non_members):
        raise RuntimeError("boom")

    model = build_model(small_mlp, seed=2)
    audit = PrivacyAuditCallback((x_tr[:100], y_tr[:100]), (x_te[:100], y_te[:100]), attacks={"loss": "loss", "broken": broken})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(x_tr, y_tr, epochs=2, verbose=0, callbacks=[audit])
    assert len(history.history["loss"]) == 2
    assert any("broken" in str(w.message) and "boom" in str(w.message) for w in caught)
    assert np.isfinite(history.history["mia_loss_auc"]).all()
    assert np.isnan(history.history["mia_broken_auc"]).all()  # the same keys every epoch, NaN for the failed attack
    assert any("boom" in note for note in audit.reports[-1].notes)


def test_early_stopping_on_mia_auc(data):
    (x_tr, y_tr), (x_te, y_te) = data
    model = build_model(small_mlp, seed=3)
    audit = PrivacyAuditCallback((x_tr[:100], y_tr[:100]), (x_te[:100], y_te[:100]))
    # An AUC can never improve by min_delta=1, so EarlyStopping (which reads mia_auc from the logs)
    # must stop at the second epoch; were the key missing it would never stop.
    stop = keras.callbacks.EarlyStopping(monitor="mia_auc", mode="max", min_delta=1.0, patience=0)
    history = model.fit(x_tr, y_tr, epochs=6, verbose=0, callbacks=[audit, stop])
    assert len(history.history["loss"]) == 2
    assert stop.stopped_epoch == 1


@pytest.mark.parametrize("kwargs, match", [
    ({"members": ([1], [1, 2])}, "members"), ({"attacks": ["nope"]}, "unknown metric"),
    ({"attacks": []}, "empty"), ({"every_n_epochs": 0}, "every_n_epochs"), ({"non_members": "x"}, "non_members"),
    ({"attacks": {"a b": "loss", "a_b": "entropy"}}, "same log key"), ({"attacks": {"$$": "loss"}}, "log key"),
    ({"slicing": {"by_klass": True}}, "slicing"), ({"report_dir": 3}, "report_dir"), ({"prefix": 1}, "prefix"),
    ({"members": (np.zeros((3, 64)), np.full((3, 4), 0.25))}, "members y .* one-hot"),
    ({"members": (np.zeros((3, 64), complex), [0, 1, 2])}, "members x .* dtype complex"),
    ({"non_members": (np.full((3, 64), np.inf), [0, 1, 2])}, "non_members x contains NaN or Inf"),
    ({"non_members": (np.zeros((3, 32)), [0, 1, 2])}, "one shape"),
])
def test_bad_arguments(data, kwargs, match):
    (x_tr, y_tr), (x_te, y_te) = data
    args = {"members": (x_tr, y_tr), "non_members": (x_te, y_te), **kwargs}
    with pytest.raises(ValueError, match=match):
        PrivacyAuditCallback(args.pop("members"), args.pop("non_members"), **args)


def test_callback_logs_are_not_nan_for_a_trained_model(data):
    (x_tr, y_tr), (x_te, y_te) = data
    model = build_model(small_mlp, seed=4)
    audit = PrivacyAuditCallback((x_tr[:100], y_tr[:100]), (x_te[:100], y_te[:100]))
    history = model.fit(x_tr, y_tr, epochs=1, verbose=0, callbacks=[audit])
    assert np.isfinite(history.history["mia_auc"][0])
    assert np.isnan(history.history["mia_tpr_at_0.1pct_fpr"][0])  # 100 non-members cannot resolve 0.1 % FPR
