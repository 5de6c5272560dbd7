"""ShadowModelAttack: per-class and global attack models on real Keras shadow models."""

import numpy as np
import pytest
from _models import digits, small_mlp

from tfmia.attacks import ShadowModelAttack
from tfmia.classifiers import make_classifier
from tfmia.data import AttackInputs
from tfmia.shadow_training import train_shadow_models
from tfmia.splits import partition
from tfmia.training import FitConfig, build_model, fit_model

RECIPE = FitConfig(epochs=30, batch_size=16)


@pytest.fixture(scope="module")
def setup():
    x, y = digits()
    parts = partition(x, y, {"target_train": 150, "target_test": 150, "attacker": 600}, seed=1)
    target = build_model(small_mlp, seed=1)
    fit_model(target, *parts["target_train"], RECIPE)
    members = AttackInputs.from_model(target, *parts["target_train"])
    non_members = AttackInputs.from_model(target, *parts["target_test"])
    shadows = train_shadow_models(small_mlp, *parts["attacker"], n_shadows=2, fit=RECIPE, train_size=150, seed=2,
                                  progress=False)
    return parts, members, non_members, shadows


def test_per_class_attack_models_are_trained_on_each_class(setup):
    parts, members, non_members, shadows = setup
    attack = ShadowModelAttack(small_mlp, n_shadows=2, attack_model="logreg", fit_config=RECIPE).fit_shadows(shadows)
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
    assert result.auc > 0.5


@pytest.mark.parametrize("kind", ["mlp", "rf"])
def test_global_attack_model_uses_one_hot_labels(setup, kind):
    _, members, non_members, shadows = setup
    attack = ShadowModelAttack(small_mlp, n_shadows=2, attack_model=kind, per_class=False, fit_config=RECIPE,
                               attack_options={"epochs": 10} if kind == "mlp" else {}).fit_shadows(shadows)
    assert attack._features(members).shape == (len(members), 20)
    scores = attack.score(members)
    assert scores.shape == (len(members),) and np.all((scores >= 0) & (scores <= 1))
    assert attack.evaluate(members, non_members).auc > 0.5


def test_fit_trains_shadows_itself(setup, tmp_path):
    parts, members, non_members, _ = setup
    attack = ShadowModelAttack(small_mlp, n_shadows=1, attack_model="logreg", fit_config=FitConfig(epochs=5),
                               train_size=100, run_dir=tmp_path, progress=False).fit(*parts["attacker"])
    assert len(attack.shadows) == 1 and (tmp_path / "shadow_0000.npz").exists()
    assert attack.evaluate(members, non_members).n_members == 150


def test_bad_input(setup):
    parts, members, _, _ = setup
    with pytest.raises(ValueError, match="n_shadows"):
        ShadowModelAttack(small_mlp, n_shadows=0, fit_config=RECIPE)
    with pytest.raises(ValueError, match="attack_model"):
        ShadowModelAttack(small_mlp, attack_model="svm", fit_config=RECIPE)
    with pytest.raises(ValueError, match="fitted"):
        ShadowModelAttack(small_mlp, fit_config=RECIPE).score(members)
    x, y = parts["attacker"]
    with pytest.raises(ValueError, match="need"):
        ShadowModelAttack(small_mlp, n_shadows=1, fit_config=RECIPE, train_size=400, progress=False).fit(x, y)
