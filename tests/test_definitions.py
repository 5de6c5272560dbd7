"""The documented differences from TensorFlow Privacy (docs/definitions.md), pinned."""

import numpy as np
import pytest

from tfmia import signals, tf_privacy
from tfmia.evaluation import AttackResult
from tfmia.report import AuditReport, ModelFacts

try:
    TFP = tf_privacy.load()
except ImportError as exc:  # pragma: no cover - exercised where the package is absent
    TFP, REASON = None, str(exc).splitlines()[0]
else:
    REASON = ""

needs_tfp = pytest.mark.skipif(TFP is None, reason=f"tensorflow-privacy not installed: {REASON}")


def _roc_by_hand(scores, is_member):
    """(TPR, FPR) at every threshold 'score >= s' over the distinct scores, plus (0, 0)."""
    cuts = np.concatenate([[np.inf], np.unique(scores)[::-1]])
    tpr = np.array([np.mean(scores[is_member] >= c) for c in cuts])
    fpr = np.array([np.mean(scores[~is_member] >= c) for c in cuts])
    return tpr, fpr


def test_attacker_advantage_is_max_of_tpr_minus_fpr():
    """An attack worse than chance: tfmia's advantage is small, |TPR - FPR| would be large."""
    rng = np.random.default_rng(0)
    is_member = np.repeat([True, False], 200)
    scores = np.where(is_member, rng.normal(-1.0, 1.0, 400), rng.normal(0.0, 1.0, 400))
    result = AttackResult.from_scores(scores, is_member, name="inverted")
    tpr, fpr = _roc_by_hand(scores, is_member)
    assert result.auc < 0.5
    assert result.advantage == pytest.approx(np.max(tpr - fpr), abs=1e-15)
    assert np.max(np.abs(tpr - fpr)) > result.advantage + 0.2


@needs_tfp
def test_attacker_advantage_against_tf_privacy():
    rng = np.random.default_rng(1)
    is_member = np.repeat([True, False], 150)
    scores = np.where(is_member, rng.normal(-1.0, 1.0, 300), rng.normal(0.0, 1.0, 300))
    labels = rng.integers(0, 3, 300)
    result = AttackResult.from_scores(scores, is_member, name="inverted", labels=labels,
                                      predicted_labels=labels)
    tpr, fpr = _roc_by_hand(scores, is_member)
    converted = AuditReport([result], ModelFacts()).to_tf_privacy()
    (single,) = [r for r in converted.single_attack_results if r.slice_spec.entire_dataset]
    # TF Privacy reads the same ROC curve with its own definition, max |TPR - FPR|.
    assert single.get_attacker_advantage() == pytest.approx(np.max(np.abs(tpr - fpr)), abs=1e-15)
    assert result.advantage == pytest.approx(np.max(tpr - fpr), abs=1e-15)
    assert single.get_attacker_advantage() > result.advantage


@needs_tfp
def test_loss_floor_against_tf_privacy():
    """Below p_y = 1e-8 TF Privacy's loss ties at -log(1e-8); tfmia's floor is 1e-30."""
    from tensorflow_privacy.privacy.privacy_tests import utils

    probs = np.array([[1e-9, 1 - 1e-9], [1e-12, 1 - 1e-12], [1e-40, 1.0], [0.25, 0.75]])
    labels = np.zeros(4, dtype=int)
    ours = signals.compute(probs, labels)["loss"]
    theirs = utils.log_loss(labels, probs)
    np.testing.assert_allclose(ours, -np.log(np.maximum(probs[:, 0], 1e-30)), rtol=1e-15)
    np.testing.assert_allclose(theirs, -np.log(np.maximum(probs[:, 0], 1e-8)), rtol=1e-15)
    # Equal above both floors, apart below 1e-8.
    assert ours[3] == pytest.approx(theirs[3], rel=1e-15)
    assert len(np.unique(theirs[:3])) == 1 and len(np.unique(ours[:3])) == 3
