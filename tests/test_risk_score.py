"""PrivacyRiskScore against the brute-force risk-score oracle (tests/oracles.py), and its calibration report."""

import numpy as np
import pytest
from _models import prob_inputs, random_probs
from oracles import fit_class_histograms, risk_scores

from tfmia.attacks import PrivacyRiskScore
from tfmia.data import AttackInputs


def _shadow_and_target(seed=0, c=4):
    p_in, y_in = random_probs(500, c, seed=seed, sharpness=6)
    p_out, y_out = random_probs(500, c, seed=seed + 1, sharpness=2)
    p_t, y_t = random_probs(400, c, seed=seed + 2, sharpness=4)
    return AttackInputs(probs=p_in, labels=y_in), AttackInputs(probs=p_out, labels=y_out), AttackInputs(probs=p_t, labels=y_t)


def test_scores_equal_the_oracle_bit_for_bit():
    s_in, s_out, target = _shadow_and_target()
    risk = PrivacyRiskScore().fit(s_in, s_out)
    m = "modified_entropy"
    fitted = fit_class_histograms(s_in.signals[m], s_in.labels, s_out.signals[m], s_out.labels, 4)
    expected = risk_scores(fitted, target.signals[m], target.labels)
    np.testing.assert_array_equal(risk.score(target), expected)


def test_member_prior_reweights_the_likelihood_ratio():
    s_in, s_out, target = _shadow_and_target(3)
    r_half = PrivacyRiskScore().fit(s_in, s_out).score(target)
    r_prior = PrivacyRiskScore(member_prior=0.2).fit(s_in, s_out).score(target)
    # r = h_in / (h_in + h_out * (1 - prior) / prior); with odds o = r / (1 - r) at prior 1/2: o' = o * prior / (1 - prior).
    inner = (r_half > 0) & (r_half < 1)
    odds = r_half[inner] / (1 - r_half[inner]) * 0.25
    np.testing.assert_allclose(r_prior[inner], odds / (1 + odds), rtol=1e-12)


def test_calibration_and_precision_recall_against_direct_computation():
    s_in, s_out, target = _shadow_and_target(5)
    risk = PrivacyRiskScore().fit(s_in, s_out)
    members, non_members = target.subset(np.arange(200)), target.subset(np.arange(200, 400))
    r = np.concatenate([risk.score(members), risk.score(non_members)])
    truth = np.r_[np.ones(200), np.zeros(200)]
    report = risk.calibration(members, non_members, bins=5)
    errors, counts = [], []
    for b in range(5):
        mask = (np.minimum((r * 5).astype(int), 4)) == b
        if mask.any():
            errors.append(r[mask].mean() - truth[mask].mean())
            counts.append(mask.sum())
    errors, counts = np.array(errors), np.array(counts)
    assert report["rmse"] == pytest.approx(np.sqrt(np.mean(errors**2)))
    assert report["weighted_rmse"] == pytest.approx(np.sqrt(np.sum(counts * errors**2) / counts.sum()))
    rows = risk.precision_recall(members, non_members, taus=(0.5, 0.7))
    for row in rows:
        called = r > row["tau"]
        assert row["predicted_members"] == called.sum()
        assert row["recall"] == pytest.approx(called[:200].mean())
        if called.any():
            assert row["precision"] == pytest.approx(truth[called].mean())
    result = risk.evaluate(members, non_members)
    assert np.array_equal(result.decisions, r > 0.5)


def test_bad_input():
    s_in, s_out, target = _shadow_and_target()
    with pytest.raises(ValueError, match="member_prior"):
        PrivacyRiskScore(member_prior=1.0)
    with pytest.raises(ValueError, match="bins"):
        PrivacyRiskScore(bins=0)
    with pytest.raises(ValueError, match="fitted"):
        PrivacyRiskScore().score(target)
    p5, y5 = random_probs(20, 5, seed=1)
    with pytest.raises(ValueError, match="5 classes"):
        PrivacyRiskScore().fit(s_in, s_out).score(prob_inputs(p5, y5))
