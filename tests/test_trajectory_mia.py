"""TrajectoryMIA: loss-only trajectory into the MLP 512-128-32-2, the shuffled control, sharing with SeqMIA."""

import numpy as np
import pytest

from _separation import assert_does_not_separate, assert_separates
from seqmia_helpers import digits_parts, memorising_model_fn
from tfmia.attack_models import AttackTraining
from tfmia.attacks import SeqMIA, TrajectoryMIA
from tfmia.attacks.trajectory import TRAJECTORY_MIA_TRAINING
from tfmia.training import FitConfig, build_model, fit_model

FIT = FitConfig(epochs=20, batch_size=16)
QUICK = AttackTraining(epochs=2, batch_size=32, optimizer="sgd", lr_decay=1.0)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A target (and the attacker's shadow model) memorising 50 randomly labelled digits."""
    parts = digits_parts(50, seed=1, random_labels=True)
    target = build_model(memorising_model_fn, seed=30)
    fit_model(target, *parts["target_train"], FIT)
    shadow = (np.concatenate([parts["shadow_train"][0], parts["shadow_test"][0]]),
              np.concatenate([parts["shadow_train"][1], parts["shadow_test"][1]]))
    return {"parts": parts, "target": target, "shadow": shadow, "x_distill": parts["remainder"][0][:250],
            "run_dir": tmp_path_factory.mktemp("trajectory")}


def test_recipe_and_architecture():
    assert (TRAJECTORY_MIA_TRAINING.optimizer, TRAJECTORY_MIA_TRAINING.learning_rate,
            TRAJECTORY_MIA_TRAINING.momentum, TRAJECTORY_MIA_TRAINING.weight_decay,
            TRAJECTORY_MIA_TRAINING.epochs, TRAJECTORY_MIA_TRAINING.batch_size,
            TRAJECTORY_MIA_TRAINING.lr_decay) == ("sgd", 0.01, 0.9, 1e-4, 100, 128, 1.0)
    attack = TrajectoryMIA(memorising_model_fn, fit=FIT, distill_epochs=50, progress=False)
    model = attack._model
    assert tuple(model.inputs[0].shape) == (None, 51, 1)  # 50 snapshot losses + the original's
    widths = [layer.units for layer in model.layers if hasattr(layer, "units")]
    assert widths == [512, 128, 32, 2]


def test_fit_evaluate_and_share_distillations_with_seqmia(world):
    target, parts = world["target"], world["parts"]
    kwargs = dict(fit=FIT, distill_epochs=2, run_dir=world["run_dir"], progress=False)
    seqmia = SeqMIA(memorising_model_fn, training=AttackTraining(epochs=1), **kwargs)
    seqmia.fit(*world["shadow"], world["x_distill"])
    seqmia.evaluate((target, *parts["target_train"]), (target, *parts["target_test"]))
    distilled = sorted(p.name for p in world["run_dir"].glob("distill_*"))
    attack = TrajectoryMIA(memorising_model_fn, training=QUICK, **kwargs).fit(*world["shadow"], world["x_distill"])
    result = attack.evaluate((target, *parts["target_train"]), (target, *parts["target_test"]))
    assert sorted(p.name for p in world["run_dir"].glob("distill_*")) == distilled  # reused, not redone
    assert result.name == "TrajectoryMIA" and len(result) == 100
    assert_separates(result)  # the target memorises its members
    x_out, y_out = parts["target_test"]  # two halves of the non-members: nothing to tell apart
    assert_does_not_separate(attack.evaluate((target, x_out[:25], y_out[:25]), (target, x_out[25:], y_out[25:])))
    # Its input is SeqMIA's loss column, unscaled by default (the reference feeds raw losses).
    members = (target, *parts["target_train"])
    np.testing.assert_allclose(attack.sequences(members)[:, :, 0],
                               seqmia.features.target(target, *parts["target_train"])[:, :, 0], rtol=1e-6)


def test_shuffled_control(world):
    target, parts = world["target"], world["parts"]
    kwargs = dict(fit=FIT, distill_epochs=2, run_dir=world["run_dir"], training=QUICK, progress=False)
    plain = TrajectoryMIA(memorising_model_fn, **kwargs).fit(*world["shadow"], world["x_distill"])
    control = TrajectoryMIA(memorising_model_fn, shuffled=True, **kwargs).fit(*world["shadow"], world["x_distill"])
    assert control.name == "TrajectoryMIA (shuffled)"
    members = (target, *parts["target_train"])
    a, b = plain.sequences(members), control.sequences(members)
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(np.sort(a, axis=1), np.sort(b, axis=1))  # same losses, order destroyed
