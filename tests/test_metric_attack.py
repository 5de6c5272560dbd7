"""MetricAttack against brute-force oracles of Song & Mittal's rules (tests/oracles.py), on real Keras models."""

import numpy as np
import pytest
from _models import digits, digits_mlp, prob_inputs, random_probs
from _separation import SIGMAS, assert_separates
from oracles import member_oriented_metric, threshold_by_enumeration

from tfmia.attacks import METRICS, MetricAttack
from tfmia.data import AttackInputs
from tfmia.shadow_training import train_shadow_models
from tfmia.splits import known_subset, partition
from tfmia.training import FitConfig, build_model, fit_model


@pytest.mark.parametrize("metric", ["confidence", "loss", "entropy", "modified_entropy"])
def test_class_dependent_thresholds_and_decisions_match_the_oracle(metric):
    p_in, y_in = random_probs(400, 5, seed=1, sharpness=5)
    p_out, y_out = random_probs(400, 5, seed=2, sharpness=2)
    p_tgt, y_tgt = random_probs(300, 5, seed=3, sharpness=4)
    attack = MetricAttack(metric).fit(prob_inputs(p_in, y_in), prob_inputs(p_out, y_out))
    v_in, v_out = member_oriented_metric(p_in, y_in, metric), member_oriented_metric(p_out, y_out, metric)
    expected = [threshold_by_enumeration(v_in[y_in == c], v_out[y_out == c]) for c in range(5)]
    np.testing.assert_allclose(attack.thresholds, expected, rtol=1e-12, atol=0)
    v_tgt = member_oriented_metric(p_tgt, y_tgt, metric)
    np.testing.assert_array_equal(attack.predict(prob_inputs(p_tgt, y_tgt)), v_tgt >= attack.thresholds[y_tgt])

    glob = MetricAttack(metric, class_dependent=False).fit(prob_inputs(p_in, y_in), prob_inputs(p_out, y_out))
    assert glob.threshold() == pytest.approx(threshold_by_enumeration(v_in, v_out), rel=1e-12)
    np.testing.assert_array_equal(glob.predict(prob_inputs(p_tgt, y_tgt)), glob.values(prob_inputs(p_tgt, y_tgt)) >= glob.threshold())


def test_correctness_attack_needs_no_calibration():
    p, y = random_probs(200, 4, seed=5)
    result = MetricAttack("correctness").evaluate(prob_inputs(p[:100], y[:100]), prob_inputs(p[100:], y[100:]))
    correct = p.argmax(axis=1) == y
    assert np.array_equal(result.decisions, correct)
    assert result.decision_source == "threshold"


def test_class_absent_from_shadow_data_uses_global_threshold():
    p_in, y_in = random_probs(300, 4, seed=1)
    p_out, y_out = random_probs(300, 4, seed=2)
    keep_in, keep_out = y_in != 3, y_out != 3
    with pytest.warns(UserWarning, match=r"classes \[3\]"):
        attack = MetricAttack("loss").fit(prob_inputs(p_in[keep_in], y_in[keep_in]), prob_inputs(p_out[keep_out], y_out[keep_out]))
    glob = MetricAttack("loss", class_dependent=False).fit(prob_inputs(p_in[keep_in], y_in[keep_in]), prob_inputs(p_out[keep_out], y_out[keep_out]))
    assert attack.thresholds[3] == glob.threshold()
    p_t, y_t = random_probs(50, 4, seed=9)
    # Records of class 3 are scored, not rejected, and decided by the global threshold.
    decisions = attack.predict(prob_inputs(p_t, y_t))
    of_3 = y_t == 3
    assert of_3.any()
    np.testing.assert_array_equal(decisions[of_3], glob.predict(prob_inputs(p_t, y_t))[of_3])


def test_bad_input():
    p, y = random_probs(100, 4, seed=1)
    with pytest.raises(ValueError, match="metric"):
        MetricAttack("nope")
    with pytest.raises(ValueError, match="fitted"):
        MetricAttack("loss").score(prob_inputs(p, y))
    attack = MetricAttack("loss").fit(prob_inputs(p, y), prob_inputs(p, y))
    p5, y5 = random_probs(10, 5, seed=2)
    with pytest.raises(ValueError, match="5 classes"):
        attack.score(prob_inputs(p5, y5))
    with pytest.raises(ValueError, match="labels"):
        attack.score(prob_inputs(p[:10], y[:9]))
    with pytest.raises(ValueError, match="members have 4 classes but non_members have 5"):
        MetricAttack("loss").fit(prob_inputs(p, y), prob_inputs(p5, y5))
    with pytest.raises(ValueError, match="does not say whether the outputs are probabilities or logits"):
        attack.score((p, y))


@pytest.fixture(scope="module")
def digits_setup():
    """A target memorising 150 randomly labelled digits and the attacker's pool of 300 such records."""
    x, _ = digits()
    y = np.random.default_rng(0).integers(0, 10, len(x))
    parts = partition(x, y, {"target_train": 150, "target_test": 150, "attacker": 300}, seed=0)
    recipe = FitConfig(epochs=40, batch_size=32)
    target = build_model(digits_mlp, seed=0)
    fit_model(target, *parts["target_train"], recipe)
    members = AttackInputs.from_model(target, *parts["target_train"])
    non_members = AttackInputs.from_model(target, *parts["target_test"])
    return parts, recipe, members, non_members


def test_calibration_with_shadow_models(digits_setup):
    parts, recipe, members, non_members = digits_setup
    shadows = train_shadow_models(digits_mlp, *parts["attacker"], n_shadows=1, fit=recipe, train_size=150, seed=1,
                                  progress=False)
    shadow_in, shadow_out = shadows.pooled_attack_inputs()
    assert len(shadow_in) == 150 and len(shadow_out) == 150
    for metric in METRICS:
        result = MetricAttack(metric).fit(shadow_in, shadow_out).evaluate(members, non_members)
        assert result.n_members == 150 and result.n_non_members == 150
        # The target memorises: every metric leaks.  Entropy ignores the label, and a network that
        # memorised random labels is nearly as sure of itself on unseen records, so its leak is
        # weaker (AUC 0.65 to 0.76 over the seeds we tried, against 0.97 for the loss): 2 null SDs.
        assert_separates(result, sigmas=2 if metric == "entropy" else SIGMAS)


def test_calibration_on_known_membership_subset(digits_setup):
    _, _, members, non_members = digits_setup
    known_in, eval_in = known_subset(members.labels, 0.8, seed=0)
    known_out, eval_out = known_subset(non_members.labels, 0.8, seed=1)
    assert not set(known_in) & set(eval_in) and len(known_in) + len(eval_in) == len(members)
    for c in range(10):
        n_c = np.sum(members.labels == c)
        assert np.sum(members.labels[known_in] == c) == min(max(round(0.8 * n_c), 1), n_c - 1)
    attack = MetricAttack("modified_entropy").fit(members.subset(known_in), non_members.subset(known_out))
    result = attack.evaluate(members.subset(eval_in), non_members.subset(eval_out))
    assert len(result) == len(eval_in) + len(eval_out)
    decisions = attack.predict(members.subset(eval_in)), attack.predict(non_members.subset(eval_out))
    assert result.balanced_accuracy == pytest.approx(0.5 * (np.mean(decisions[0]) + np.mean(~decisions[1])))
    # Thresholds fitted on the known records carry over to the others: under the null, with the
    # thresholds fixed, the balanced accuracy has standard deviation at most 0.25 sqrt(1/n1 + 1/n2).
    null_sd = 0.25 * np.sqrt(1 / len(eval_in) + 1 / len(eval_out))
    assert result.balanced_accuracy > 0.5 + SIGMAS * null_sd
