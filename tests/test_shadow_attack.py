"""ShadowModelAttack: per-class and global attack models on real Keras shadow models."""

import functools

import numpy as np
import pytest
from _models import digits, digits_mlp
from _separation import assert_does_not_separate, assert_separates

from tfmia.attacks import ShadowModelAttack
from tfmia.classifiers import make_classifier
from tfmia.data import AttackInputs
from tfmia.shadow_training import train_shadow_models
from tfmia.splits import partition
from tfmia.training import FitConfig, build_model, fit_model

RECIPE = FitConfig(epochs=40, batch_size=32)
memorising_mlp = functools.partial(digits_mlp, 64)


@pytest.fixture(scope="module")
def setup():
    """A target and two shadow models memorising 150 randomly labelled digits each."""
    x, _ = digits()
    y = np.random.default_rng(1).integers(0, 10, len(x))
    parts = partition(x, y, {"target_train": 150, "target_test": 150, "attacker": 600}, seed=1)
    target = build_model(memorising_mlp, seed=1)
    fit_model(target, *parts["target_train"], RECIPE)
    members = AttackInputs.from_model(target, *parts["target_train"])
    non_members = AttackInputs.from_model(target, *parts["target_test"])
    shadows = train_shadow_models(memorising_mlp, *parts["attacker"], n_shadows=2, fit=RECIPE, train_size=150, seed=2,
                                  progress=False)
    return parts, members, non_members, shadows


def non_member_halves(non_members):
    """Two disjoint halves of the non-members, to be declared members and non-members."""
    half = len(non_members) // 2
    return non_members.subset(np.arange(half)), non_members.subset(np.arange(half, len(non_members)))


def test_per_class_attack_models_are_trained_on_each_class(setup):
    parts, members, non_members, shadows = setup
    attack = ShadowModelAttack(memorising_mlp, n_shadows=2, attack_model="logreg", fit_config=RECIPE).fit_shadows(shadows)
    # The class-3 attack model equals a logistic regression trained on class-3 shadow records alone.
    s_in, s_out = shadows.pooled_attack_inputs()
    rows_in, rows_out = s_in.labels == 3, s_out.labels == 3
    X = np.concatenate([s_in.probs[rows_in], s_out.probs[rows_out]])
    t = np.r_[np.ones(rows_in.sum()), np.zeros(rows_out.sum())]
    reference = make_classifier("logreg").fit(X, t)
    target_rows = members.labels == 3
    np.testing.assert_allclose(attack.score(members)[target_rows], reference.predict_proba(members.probs[target_rows]),
                               rtol=1e-10)
    result = attack.evaluate(members, non_members)
    assert result.decision_source == "threshold" and result.threshold == 0.5
    assert_separates(result)
    assert_does_not_separate(attack.evaluate(*non_member_halves(non_members)))


@pytest.mark.parametrize("kind", ["mlp", "rf"])
def test_global_attack_model_uses_one_hot_labels(setup, kind):
    _, members, non_members, shadows = setup
    attack = ShadowModelAttack(memorising_mlp, n_shadows=2, attack_model=kind, per_class=False, fit_config=RECIPE,
                               attack_options={"epochs": 10} if kind == "mlp" else {}).fit_shadows(shadows)
    features = attack._features(members)
    np.testing.assert_array_equal(features, np.c_[members.probs, np.eye(10)[members.labels]])
    assert_separates(attack.evaluate(members, non_members))
    assert_does_not_separate(attack.evaluate(*non_member_halves(non_members)))


def test_fit_trains_shadows_itself(setup, tmp_path):
    parts, members, non_members, _ = setup
    attack = ShadowModelAttack(memorising_mlp, n_shadows=1, attack_model="logreg", fit_config=FitConfig(epochs=5),
                               train_size=100, run_dir=tmp_path, progress=False).fit(*parts["attacker"])
    assert len(attack.shadows) == 1 and (tmp_path / "shadow_0000.npz").exists()
    assert attack.evaluate(members, non_members).n_members == 150


def test_bad_input(setup):
    parts, members, _, _ = setup
    with pytest.raises(ValueError, match="n_shadows"):
        ShadowModelAttack(memorising_mlp, n_shadows=0, fit_config=RECIPE)
    with pytest.raises(ValueError, match="attack_model"):
        ShadowModelAttack(memorising_mlp, attack_model="svm", fit_config=RECIPE)
    with pytest.raises(ValueError, match="fitted"):
        ShadowModelAttack(memorising_mlp, fit_config=RECIPE).score(members)
    x, y = parts["attacker"]
    with pytest.raises(ValueError, match="need"):
        ShadowModelAttack(memorising_mlp, n_shadows=1, fit_config=RECIPE, train_size=400, progress=False).fit(x, y)
