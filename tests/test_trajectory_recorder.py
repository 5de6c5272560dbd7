"""TrajectoryRecorder: rows against model.predict + numpy formulas, disk layout, resume, bad input."""

import keras
import numpy as np
import pytest

from _models import digits_logits_mlp, float32_softmax_rtol
from seqmia_helpers import assert_rows_close, digits_parts, softmax, tiny_model_fn
from tfmia.callbacks import TrajectoryRecorder, read_trajectory
from tfmia.training import build_model, load_weights


@pytest.fixture(scope="module")
def data():
    parts = digits_parts(40)
    x, y = parts["target_train"]
    xr = np.concatenate([x[:20], parts["target_test"][0][:20]])
    yr = np.concatenate([y[:20], parts["target_test"][1][:20]])
    return x, y, xr, yr


class PredictAtEpochEnd(keras.callbacks.Callback):
    """The direct computation: the model's inference-mode outputs on the records after each epoch.

    Also keeps, per epoch, how far another float32 path's probabilities may lie from these.
    """

    def __init__(self, x):
        super().__init__()
        self.x, self.outputs, self.rtols = x, [], []

    def on_epoch_end(self, epoch, logs=None):
        self.outputs.append(np.asarray(self.model(self.x, training=False)))
        self.rtols.append(float32_softmax_rtol(self.model, self.x))


@pytest.mark.parametrize("model_fn, logits", [(tiny_model_fn, False), (digits_logits_mlp, True)])
def test_rows_match_predict_and_numpy_formulas(data, model_fn, logits):
    x, y, xr, yr = data
    model = build_model(model_fn, seed=1)
    recorder = TrajectoryRecorder(xr, yr)
    direct = PredictAtEpochEnd(xr)
    model.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=[recorder, direct])
    trajectory = recorder.trajectory()
    assert trajectory.epochs.tolist() == [1, 2, 3]
    assert trajectory.metrics == ("loss", "max", "sd", "entropy", "modified_entropy")
    assert trajectory.rows.shape == (3, len(yr), 5)
    for t, (outputs, rtol) in enumerate(zip(direct.outputs, direct.rtols)):
        probs = softmax(outputs) if logits else outputs
        assert_rows_close(trajectory.rows[t], probs, yr, rtol)
    assert recorder.seconds > 0


def test_every_and_metric_subset(data):
    x, y, xr, yr = data
    model = build_model(tiny_model_fn, seed=2)
    recorder = TrajectoryRecorder(xr, yr, every=2, metrics=("entropy", "loss"))
    direct = PredictAtEpochEnd(xr)
    model.fit(x, y, epochs=4, batch_size=16, verbose=0, callbacks=[recorder, direct])
    trajectory = recorder.trajectory()
    assert trajectory.epochs.tolist() == [2, 4]
    assert_rows_close(trajectory.rows[1], direct.outputs[3], yr, direct.rtols[3], columns=[3, 0])  # entropy, loss


def test_disk_rows_and_weight_snapshots(tmp_path, data):
    x, y, xr, yr = data
    model = build_model(tiny_model_fn, seed=3)
    recorder = TrajectoryRecorder(xr, yr, tmp_path / "traj", save_weights=True)
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[recorder])
    names = sorted(p.name for p in (tmp_path / "traj").iterdir())
    assert names == ["epoch_00001.npz", "epoch_00001.weights.h5", "epoch_00002.npz", "epoch_00002.weights.h5",
                     "run.json"]
    on_disk = read_trajectory(tmp_path / "traj")
    np.testing.assert_array_equal(on_disk.rows, recorder.trajectory().rows)
    # The epoch-1 snapshot reproduces the epoch-1 rows.
    fresh = load_weights(build_model(tiny_model_fn), recorder.weights(1))
    assert_rows_close(on_disk.rows[0], fresh.predict(xr, verbose=0), yr, float32_softmax_rtol(fresh, xr))
    with pytest.raises(ValueError, match="not recorded"):
        recorder.weights(7)


def test_resume_keeps_earlier_epochs_and_replaces_later_ones(tmp_path, data):
    x, y, xr, yr = data
    model = build_model(tiny_model_fn, seed=4)
    model.fit(x, y, epochs=4, batch_size=16, verbose=0, callbacks=[TrajectoryRecorder(xr, yr, tmp_path)])
    before = read_trajectory(tmp_path).rows
    # "Interrupted" after epoch 2: a new process resumes with initial_epoch=2 and trains to epoch 3.
    resumed = TrajectoryRecorder(xr, yr, tmp_path)
    direct = PredictAtEpochEnd(xr)
    model.fit(x, y, initial_epoch=2, epochs=3, batch_size=16, verbose=0, callbacks=[resumed, direct])
    after = read_trajectory(tmp_path)
    assert after.epochs.tolist() == [1, 2, 3]  # epoch 4 of the earlier run is gone
    np.testing.assert_array_equal(after.rows[:2], before[:2])
    assert_rows_close(after.rows[2], direct.outputs[0], yr, direct.rtols[0])


def test_directory_of_other_records_or_another_model_is_refused(tmp_path, data):
    x, y, xr, yr = data
    model = build_model(tiny_model_fn, seed=5)
    model.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[TrajectoryRecorder(xr, yr, tmp_path)])
    with pytest.raises(ValueError, match="different configuration.*records"):
        model.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[TrajectoryRecorder(xr[:5], yr[:5], tmp_path)])
    other = build_model(digits_logits_mlp, seed=5)  # the same records, another architecture
    with pytest.raises(ValueError, match=r"different configuration \(differs in: model\.architecture\)"):
        other.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[TrajectoryRecorder(xr, yr, tmp_path)])
    assert read_trajectory(tmp_path).epochs.tolist() == [1]


def test_bad_input(data):
    x, y, xr, yr = data
    with pytest.raises(ValueError, match="y must hold one label per record"):
        TrajectoryRecorder(xr, yr[:-1])
    with pytest.raises(ValueError, match="every must be >= 1"):
        TrajectoryRecorder(xr, yr, every=0)
    with pytest.raises(ValueError, match="unknown metric"):
        TrajectoryRecorder(xr, yr, metrics=("loss", "accuracy"))
    model = build_model(tiny_model_fn, seed=5)
    wrong_shape = TrajectoryRecorder(xr[:, :32], yr)
    with pytest.raises(ValueError, match=r"x: records have shape \(32,\) but the model expects \(64,\)"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[wrong_shape])
    out_of_range = TrajectoryRecorder(xr, np.full_like(yr, 12))
    with pytest.raises(ValueError, match="labels"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[out_of_range])
