"""Output defences against direct numpy computations, and the adaptive attack against MemGuardStyle."""

import numpy as np
import pytest
from _models import digits, digits_mlp, random_probs
from oracles import member_oriented_metric
from scipy import special

from tfmia.attacks import MetricAttack
from tfmia.data import AttackInputs
from tfmia.defenses import MemGuardStyle, Rounding, Temperature, TopK
from tfmia.shadow_training import train_shadow_models
from tfmia.splits import partition
from tfmia.training import FitConfig, build_model, fit_model


def test_top_k_keeps_the_k_largest():
    p, _ = random_probs(50, 6, seed=0)
    out, is_logits = TopK(2)(p, False)
    assert not is_logits
    for row, orig in zip(out, p):
        top = np.sort(orig)[-2:]
        assert np.array_equal(np.sort(row[row > 0]), top)
        assert np.count_nonzero(row) == 2
    assert np.array_equal(TopK(10)(p, False)[0], p)


def test_rounding_and_temperature():
    p, _ = random_probs(20, 5, seed=1)
    assert np.array_equal(Rounding(2)(p, False)[0], np.round(p, 2))
    z = np.random.default_rng(2).normal(size=(20, 5))
    np.testing.assert_allclose(Temperature(3.0)(z, True)[0], special.softmax(z / 3.0, axis=1), rtol=1e-12)
    np.testing.assert_allclose(Temperature(2.0)(p, False)[0], special.softmax(np.log(p) / 2.0, axis=1), rtol=1e-12)


def test_memguard_style_keeps_label_and_simplex():
    p, _ = random_probs(500, 5, seed=3, sharpness=8)
    p[0] = np.eye(5)[2]  # a one-hot row
    out, _ = MemGuardStyle(0.6)(p, False)
    assert np.array_equal(out.argmax(axis=1), p.argmax(axis=1))
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-12)
    capped = p.max(axis=1) > 0.6
    assert np.all(out[capped].max(axis=1) == 0.6)
    assert np.array_equal(out[~capped], p[~capped])
    # the other classes keep their proportions
    row = np.flatnonzero(capped)[1]
    others = np.arange(5) != p[row].argmax()
    np.testing.assert_allclose(out[row, others] / out[row, others].sum(), p[row, others] / p[row, others].sum())


@pytest.mark.parametrize("defense, match", [(lambda: TopK(0), "k"), (lambda: Rounding(-1), "digits"),
                                            (lambda: Temperature(0), "temperature"),
                                            (lambda: MemGuardStyle(0.5), "confidence")])
def test_bad_parameters(defense, match):
    with pytest.raises(ValueError, match=match):
        defense()


def test_defended_inputs_reach_the_attacks():
    p, y = random_probs(40, 4, seed=4)
    inputs = TopK(1).apply(AttackInputs(probs=p, labels=y))
    assert inputs.sum_tol is None  # defended rows need not sum to 1
    # The signals are those of the defended rows, read as the probabilities they are.
    defended = np.where(p == p.max(axis=1, keepdims=True), p, 0.0)
    np.testing.assert_allclose(inputs.signals["modified_entropy"],
                               -member_oriented_metric(defended, y, "modified_entropy"), rtol=1e-10)


def test_adaptive_attack_beats_non_adaptive_against_memguard_style():
    x, y = digits()
    parts = partition(x, y, {"target_train": 150, "target_test": 150, "attacker": 300}, seed=3)
    recipe = FitConfig(epochs=40, batch_size=16)
    target = build_model(digits_mlp, seed=3)
    fit_model(target, *parts["target_train"], recipe)
    defense = MemGuardStyle(0.6)
    members = defense.wrap(target).attack_inputs(*parts["target_train"])
    non_members = defense.wrap(target).attack_inputs(*parts["target_test"])
    shadows = train_shadow_models(digits_mlp, *parts["attacker"], n_shadows=1, fit=recipe, train_size=150, seed=4,
                                  progress=False)
    raw_in, raw_out = shadows.pooled_attack_inputs()
    def_in, def_out = shadows.pooled_attack_inputs(output_transform=defense, sum_tol=None)
    naive = MetricAttack("loss", class_dependent=False).fit(raw_in, raw_out).evaluate(members, non_members)
    adaptive_attack = MetricAttack("loss", class_dependent=False).fit(def_in, def_out)
    adaptive = adaptive_attack.evaluate(members, non_members)
    # Calibrated on raw outputs, the threshold sits far below every capped loss: no member is found.
    assert naive.balanced_accuracy == pytest.approx(0.5, abs=0.02)
    assert adaptive.balanced_accuracy > naive.balanced_accuracy + 0.03
