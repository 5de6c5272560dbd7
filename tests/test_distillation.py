"""tfmia.distill: KL to the teacher falls, snapshots in inference mode, exact resume, clear errors."""

import json

import numpy as np
import pytest

import tfmia
from _models import digits_logits_mlp, float32_softmax_rtol
from seqmia_helpers import assert_rows_close, digits_parts, softmax, three_class_model_fn, tiny_model_fn
from tfmia.distillation import teacher_probabilities
from tfmia.training import FitConfig, build_model, fit_model


@pytest.fixture(scope="module")
def setup():
    parts = digits_parts(60)
    teacher = build_model(digits_logits_mlp, seed=10)
    fit_model(teacher, *parts["target_train"], FitConfig(epochs=20, batch_size=16))
    x_distill = parts["remainder"][0][:300]
    records = (np.concatenate([parts["target_train"][0][:15], parts["target_test"][0][:15]]),
               np.concatenate([parts["target_train"][1][:15], parts["target_test"][1][:15]]))
    return teacher, x_distill, records


def kl(p, q):
    """Mean KL(p || q) over rows, written out."""
    return float(np.mean(np.sum(p * (np.log(np.maximum(p, 1e-30)) - np.log(np.maximum(q, 1e-30))), axis=1)))


def test_teacher_probabilities_softmax_logits(setup):
    teacher, x, _ = setup
    # tfmia's batches of 256 against Keras predict's 32: float32 logits a few ulps apart
    np.testing.assert_allclose(teacher_probabilities(teacher, x), softmax(teacher.predict(x, verbose=0)),
                               rtol=float32_softmax_rtol(teacher, x))


def test_distillation_lowers_kl_to_teacher(setup):
    teacher, x, _ = setup
    q = teacher_probabilities(teacher, x)
    initial = build_model(tiny_model_fn, seed=3)  # distill's student starts from model_fn() seeded alike
    result = tfmia.distill(teacher, tiny_model_fn, x, epochs=4, batch_size=32, seed=3, progress=False)
    before = kl(q, initial.predict(x, verbose=0))
    after = kl(q, result.student.predict(x, verbose=0))
    assert after < 0.75 * before
    assert result.losses.shape == (4,) and result.losses[-1] < result.losses[0]
    assert result.epochs == 4 and result.resumed_epochs == 0
    # The student is trained with model_fn's optimiser on the soft targets only.
    assert type(result.student.optimizer).__name__ == "Adam"
    assert type(result.student.loss).__name__ == "CategoricalCrossentropy"


def test_snapshots_live_trajectory_and_replay_agree_in_inference_mode(setup):
    teacher, x, (xr, yr) = setup
    result = tfmia.distill(teacher, tiny_model_fn, x, epochs=2, batch_size=32, records=(xr, yr), seed=4,
                           progress=False)
    assert result.trajectory.shape == (2, len(yr), 5)
    replayed = result.replay(xr, yr)
    np.testing.assert_allclose(replayed, result.trajectory, rtol=1e-5, atol=1e-6)
    # Snapshot 2 is the final student; its rows are the numpy formulas on inference-mode outputs
    # (tiny_model_fn has dropout: training-mode outputs would differ).
    final = result.snapshot_model(2)
    for a, b in zip(final.get_weights(), result.student.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert_rows_close(replayed[1], np.asarray(final(xr, training=False)), yr, float32_softmax_rtol(final, xr))
    with pytest.raises(ValueError, match="epoch must be in"):
        result.snapshot_model(3)


def test_resume_after_interruption_matches_uninterrupted_run(tmp_path, setup):
    teacher, x, records = setup
    kwargs = dict(epochs=3, batch_size=32, seed=5, records=records, progress=False)
    reference = tfmia.distill(teacher, digits_logits_mlp, x, run_dir=tmp_path / "a", **kwargs)
    tfmia.distill(teacher, digits_logits_mlp, x, run_dir=tmp_path / "b", **kwargs)
    # Simulate a crash during epoch 2: only epoch 1 counts as finished; epoch 2's rows were written.
    state = json.loads((tmp_path / "b" / "checkpoint.json").read_text())
    (tmp_path / "b" / "checkpoint.json").write_text(json.dumps({"epochs_done": 1, "losses": state["losses"][:1]}))
    for e in (2, 3):
        (tmp_path / "b" / f"snapshot_{e:04d}.weights.h5").unlink()
    (tmp_path / "b" / "trajectory" / "epoch_00003.npz").unlink()
    resumed = tfmia.distill(teacher, digits_logits_mlp, x, run_dir=tmp_path / "b", **kwargs)
    assert resumed.resumed_epochs == 1
    for a, b in zip(resumed.student.get_weights(), reference.student.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(resumed.losses, reference.losses, rtol=1e-6)
    np.testing.assert_allclose(resumed.trajectory, reference.trajectory, rtol=1e-5, atol=1e-6)
    # A finished run directory is loaded, not retrained.
    again = tfmia.distill(teacher, digits_logits_mlp, x, run_dir=tmp_path / "b", **kwargs)
    assert again.resumed_epochs == 3
    with pytest.raises(ValueError, match="different configuration"):
        tfmia.distill(teacher, digits_logits_mlp, x, run_dir=tmp_path / "b", **{**kwargs, "epochs": 4})


def test_bad_input(setup):
    teacher, x, (xr, yr) = setup
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        tfmia.distill(teacher, tiny_model_fn, x, epochs=0, progress=False)
    with pytest.raises(ValueError, match="model_fn builds a model with 3 outputs but the teacher has 10"):
        tfmia.distill(teacher, three_class_model_fn, x, epochs=1, progress=False)
    with pytest.raises(ValueError, match=r"x_distill: records have shape \(8, 8\)"):
        tfmia.distill(teacher, tiny_model_fn, x.reshape(-1, 8, 8), epochs=1, progress=False)
    with pytest.raises(ValueError, match="records must be an"):
        tfmia.distill(teacher, tiny_model_fn, x, epochs=1, records=xr, progress=False)
    with pytest.raises(ValueError, match="model_fn must return a compiled model"):
        tfmia.distill(teacher, lambda: build_model(tiny_model_fn).__class__(), x, epochs=1, progress=False)
