"""SeqMIA: sequence order, attack-model shapes and recipe, fit/score/evaluate, variants, resume, bad input."""

import keras
import numpy as np
import pytest

from _separation import assert_does_not_separate, assert_separates
from _models import float32_softmax_rtol
from seqmia_helpers import assert_rows_close, digits_parts, memorising_model_fn
from tfmia.attack_models import (AttackTraining, build_attack_model, learning_rate_at, member_probability,
                                 train_attack_model)
from tfmia.attacks import SeqMIA
from tfmia.evaluation import AttackResult
from tfmia.features.sequences import (SequenceScaler, assemble_sequences, select_metrics, shuffle_steps)
from tfmia.training import FitConfig, build_model, fit_model

FIT = FitConfig(epochs=20, batch_size=16)
QUICK = AttackTraining(epochs=2, batch_size=32)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A target (and the attacker's shadow model) memorising 60 randomly labelled digits, and SeqMIA fitted on it."""
    parts = digits_parts(60, random_labels=True)
    target = build_model(memorising_model_fn, seed=20)
    fit_model(target, *parts["target_train"], FIT)
    x_shadow = np.concatenate([parts["shadow_train"][0], parts["shadow_test"][0]])
    y_shadow = np.concatenate([parts["shadow_train"][1], parts["shadow_test"][1]])
    x_distill = parts["remainder"][0][:300]
    run_dir = tmp_path_factory.mktemp("seqmia")
    attack = SeqMIA(memorising_model_fn, fit=FIT, distill_epochs=2, training=QUICK, run_dir=run_dir, progress=False)
    attack.fit(x_shadow, y_shadow, x_distill)
    return {"parts": parts, "target": target, "shadow": (x_shadow, y_shadow), "x_distill": x_distill,
            "run_dir": run_dir, "attack": attack}


# -- sequences ----------------------------------------------------------------------
def test_assemble_puts_the_original_model_last():
    snapshots = np.arange(2 * 3 * 5, dtype=float).reshape(2, 3, 5)  # (T=2, N=3, M=5)
    final = -np.ones((3, 5))
    seq = assemble_sequences(snapshots, final)
    assert seq.shape == (3, 3, 5)
    np.testing.assert_array_equal(seq[:, 0], snapshots[0])
    np.testing.assert_array_equal(seq[:, 1], snapshots[1])
    np.testing.assert_array_equal(seq[:, -1], final)
    with pytest.raises(ValueError, match="does not match"):
        assemble_sequences(snapshots, final[:2])


def test_target_sequences_snapshots_first_target_last(world):
    attack, target = world["attack"], world["target"]
    x, y = world["parts"]["target_test"]
    seq = attack.features.target(target, x, y)
    assert seq.shape == (len(y), 3, 5)  # T = 2 snapshots + the original
    # Keras predict's batches of 32 against tfmia's one batch: float32 probabilities a derived rtol apart.
    assert_rows_close(seq[:, -1], target.predict(x, verbose=0), y, float32_softmax_rtol(target, x))
    distillation = next(iter(attack.features._targets.values()))
    for t in range(2):
        snapshot = distillation.snapshot_model(t + 1)
        assert_rows_close(seq[:, t], snapshot.predict(x, verbose=0), y, float32_softmax_rtol(snapshot, x))


def test_shadow_sequences_labels_and_original_last(world):
    attack = world["attack"]
    shadow = attack.features.shadow(*world["shadow"], world["x_distill"])  # cached: no retraining
    assert shadow.sequences.shape == (120, 3, 5)
    assert shadow.is_member.sum() == 60 and (~shadow.is_member).sum() == 60
    # Members come first, then non-members; the last step is the shadow model itself, whose
    # training set the members are: its loss on members is lower on average.
    last_loss = shadow.sequences[:, -1, 0]
    assert last_loss[shadow.is_member].mean() < last_loss[~shadow.is_member].mean()


def test_select_shuffle_and_scale():
    rng = np.random.default_rng(0)
    seq = rng.normal(size=(4, 6, 5)) * np.array([10, 1, 0.1, 2, 3]) + np.array([5, 0, 0, 1, -2])
    np.testing.assert_array_equal(select_metrics(seq, ("entropy", "loss")), seq[:, :, [3, 0]])
    shuffled = shuffle_steps(seq, seed=1)
    assert not np.array_equal(shuffled, seq)
    np.testing.assert_array_equal(np.sort(shuffled, axis=1), np.sort(seq, axis=1))  # same values per record
    scaled = SequenceScaler.fit(seq).transform(seq).reshape(-1, 5)
    np.testing.assert_allclose(scaled.mean(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(scaled.std(axis=0), 1, atol=1e-5)


# -- the attack model -----------------------------------------------------------------
@pytest.mark.parametrize("architecture", ["lstm", "gru", "transformer", "mlp"])
@pytest.mark.parametrize("output", ["softmax", "sigmoid"])
def test_attack_model_shapes(architecture, output):
    model = build_attack_model(architecture, 51, 5, output=output, seed=0)
    assert tuple(model.inputs[0].shape) == (None, 51, 5)
    assert tuple(model.outputs[0].shape) == (None, 2 if output == "softmax" else 1)
    x = np.random.default_rng(0).normal(size=(7, 51, 5))
    p = member_probability(model, x)
    assert p.shape == (7,)
    activation = np.asarray(model.predict(x, verbose=0), dtype=np.float64)
    np.testing.assert_allclose(p, activation[:, -1], rtol=1e-5, atol=1e-6)  # the head's P(member)


def test_attention_lstm_is_the_papers():
    model = build_attack_model("lstm", 51, 5, seed=0)
    lstm = model.get_layer("lstm")
    assert lstm.units == 50
    assert tuple(model.get_layer("attention").output.shape) == (None, 51)  # one weight per step
    assert tuple(model.get_layer("context_and_last").output.shape) == (None, 100)  # [context ; h_T]
    # Dot attention of h_T over all outputs, by hand.
    x = np.random.default_rng(1).normal(size=(3, 51, 5)).astype(np.float32)
    sub = keras.Model(model.inputs[0], [model.get_layer("lstm").output[0], model.get_layer("lstm").output[1],
                                     model.get_layer("attention").output, model.get_layer("context").output])
    h, last, weights, context = (np.asarray(a) for a in sub(x))
    energies = np.einsum("btd,bd->bt", h, last)
    expected = np.exp(energies - energies.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(weights, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(context, np.einsum("bt,btd->bd", weights, h), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(last, h[:, -1], rtol=1e-6)


def test_weight_decay_on_kernels_only():
    model = build_attack_model("lstm", 11, 5, weight_decay=1e-4, seed=0)
    lstm, head = model.get_layer("lstm"), model.get_layer("membership_logits")
    for reg in (lstm.cell.kernel_regularizer, lstm.cell.recurrent_regularizer, head.kernel_regularizer):
        assert reg.l2 == pytest.approx(5e-5)  # wd / 2 * ||w||^2 has gradient wd * w
    assert lstm.cell.bias_regularizer is None and head.bias_regularizer is None


def test_learning_rate_schedule():
    training = AttackTraining()
    recipe = (training.optimizer, training.learning_rate, training.weight_decay, training.epochs, training.batch_size)
    assert recipe == ("adam", 0.01, 1e-4, 150, 100)
    assert learning_rate_at(0, training) == 0.01 and learning_rate_at(9, training) == 0.01
    assert learning_rate_at(10, training) == pytest.approx(0.009)
    assert learning_rate_at(149, training) == pytest.approx(0.01 * 0.9**14)
    floor = AttackTraining(learning_rate=1e-3, min_lr=5e-4)  # decays while lr > 5e-4, then stays
    assert learning_rate_at(1000, floor) == pytest.approx(1e-3 * 0.9**7)
    with pytest.raises(ValueError, match="optimizer"):
        AttackTraining(optimizer="rmsprop")


def test_train_attack_model_learns_a_separable_signal():
    rng = np.random.default_rng(0)
    is_member = np.arange(200) % 2 == 0
    seq = rng.normal(size=(200, 6, 2)).astype(np.float32)
    seq[is_member, -1, 0] += 3.0  # members differ in the last step's first metric
    model = build_attack_model("lstm", 6, 2, hidden=8, seed=0)
    train_attack_model(model, seq, is_member, AttackTraining(epochs=15, batch_size=20), seed=0)
    p = member_probability(model, seq)
    assert p[is_member].mean() > p[~is_member].mean() + 0.3
    with pytest.raises(ValueError, match="both members and non-members"):
        train_attack_model(model, seq, np.ones(200, bool), AttackTraining(epochs=1))
    with pytest.raises(ValueError, match="attack model expects"):
        member_probability(model, seq[:, :4])


# -- the attack ------------------------------------------------------------------------
def test_fit_score_evaluate(world):
    attack, target, parts = world["attack"], world["target"], world["parts"]
    members = (target, *parts["target_train"])
    non_members = (target, *parts["target_test"])
    scores = attack.score(members)
    result = attack.evaluate(members, non_members)
    assert isinstance(result, AttackResult)
    assert result.name == "SeqMIA (lstm)" and result.decision_source == "threshold"
    assert len(result) == 120
    np.testing.assert_array_equal(result.scores[:60], scores)
    assert result.metadata["distill_epochs"] == 2 and result.metadata["standardize"] is False
    assert_separates(result)  # the target memorises its members
    # Two halves of the non-members, declared members and non-members: nothing to tell apart.
    x_out, y_out = parts["target_test"]
    assert_does_not_separate(attack.evaluate((target, x_out[:30], y_out[:30]), (target, x_out[30:], y_out[30:])))


def test_rerun_resumes_from_the_run_directory(world):
    attack = world["attack"]
    members = (world["target"], *world["parts"]["target_train"])
    files = {p: p.stat().st_mtime_ns for p in world["run_dir"].rglob("*") if p.is_file()}
    again = SeqMIA(memorising_model_fn, fit=FIT, distill_epochs=2, training=QUICK, run_dir=world["run_dir"],
                   progress=False)
    again.fit(*world["shadow"], world["x_distill"])
    np.testing.assert_array_equal(again.score(members), attack.score(members))
    assert {p: p.stat().st_mtime_ns for p in files} == files  # nothing was rewritten
    assert again.history == attack.history


def test_variants_share_the_distillations(world):
    before = {p.name for p in world["run_dir"].iterdir()}
    loss_only = SeqMIA(memorising_model_fn, fit=FIT, distill_epochs=2, metrics=("loss",), rnn="gru", training=QUICK,
                       run_dir=world["run_dir"], progress=False).fit(*world["shadow"], world["x_distill"])
    assert loss_only.name == "SeqMIA (gru, loss)"
    members = (world["target"], *world["parts"]["target_train"])
    assert loss_only.sequences(members).shape == (60, 3, 1)
    added = {p.name for p in world["run_dir"].iterdir()} - before
    assert len(added) == 1 and added.pop().startswith("attack_seqmia-gru-loss")


def test_bad_input(world):
    x, y = world["parts"]["target_test"]
    with pytest.raises(ValueError, match="rnn must be one of"):
        SeqMIA(memorising_model_fn, fit=FIT, rnn="rnn")
    with pytest.raises(ValueError, match="unknown metric"):
        SeqMIA(memorising_model_fn, fit=FIT, metrics=("loss", "auc"))
    with pytest.raises(ValueError, match="distill_epochs must be >= 1"):
        SeqMIA(memorising_model_fn, fit=FIT, distill_epochs=0)
    with pytest.raises(ValueError, match="fit must be a FitConfig"):
        SeqMIA(memorising_model_fn, fit={"epochs": 3})
    with pytest.raises(ValueError, match="must be fitted"):
        SeqMIA(memorising_model_fn, fit=FIT, progress=False).score((world["target"], x, y))
    attack = world["attack"]
    with pytest.raises(ValueError, match=r"\(target_model, x, y\)"):
        attack.score((x, y))
    with pytest.raises(ValueError, match=r"records have shape \(32,\)"):
        attack.score((world["target"], x[:, :32], y))
