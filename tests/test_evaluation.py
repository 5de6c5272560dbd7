"""AttackResult against scikit-learn, scipy and hand-computed confusion matrices."""

from fractions import Fraction

import numpy as np
import pytest
import scipy.stats
from sklearn import metrics as skm

from tfmia.evaluation import AttackResult, Confusion, aggregate
from tfmia.metrics import LowFPRWarning


def _random_result(seed=0, n_in=300, n_out=400, classes=4, **kwargs):
    rng = np.random.default_rng(seed)
    is_member = np.r_[np.ones(n_in, bool), np.zeros(n_out, bool)]
    scores = rng.normal(size=is_member.size) + 0.8 * is_member
    scores = np.round(scores, 1)  # plenty of ties
    labels = rng.integers(0, classes, size=is_member.size)
    predicted = np.where(rng.uniform(size=is_member.size) < 0.7 + 0.2 * is_member, labels, (labels + 1) % classes)
    losses = rng.exponential(size=is_member.size) * (1 - 0.5 * is_member)
    return AttackResult.from_scores(scores, is_member, labels=labels, predicted_labels=predicted, losses=losses, **kwargs), scores, is_member


def test_roc_and_auc_equal_scikit_learn_exactly():
    result, scores, is_member = _random_result()
    fpr, tpr, thr = skm.roc_curve(is_member, scores, drop_intermediate=False)
    assert np.array_equal(result.roc.fpr, fpr)
    assert np.array_equal(result.roc.tpr, tpr)
    assert np.array_equal(result.roc.thresholds, thr)
    assert result.auc == skm.roc_auc_score(is_member, scores)
    assert result.advantage == pytest.approx(np.max(tpr - fpr), abs=0)


def test_confusion_metrics_equal_scikit_learn():
    result, scores, is_member = _random_result(threshold=0.35)
    pred = scores >= 0.35
    c = result.confusion
    assert result.decision_source == "threshold"
    assert c.accuracy == pytest.approx(skm.accuracy_score(is_member, pred))
    assert c.balanced_accuracy == pytest.approx(skm.balanced_accuracy_score(is_member, pred))
    assert c.precision_member == pytest.approx(skm.precision_score(is_member, pred, pos_label=True))
    assert c.precision_non_member == pytest.approx(skm.precision_score(is_member, pred, pos_label=False))
    assert c.tpr == pytest.approx(skm.recall_score(is_member, pred, pos_label=True))
    assert c.tnr == pytest.approx(skm.recall_score(is_member, pred, pos_label=False))
    assert c.f1 == pytest.approx(skm.f1_score(is_member, pred))
    tn, fp, fn, tp = skm.confusion_matrix(is_member, pred).ravel()
    assert c.far == pytest.approx(fp / (fp + tn))
    assert (c.tp, c.fp, c.tn, c.fn) == (tp, fp, tn, fn)


def test_best_threshold_is_the_balanced_accuracy_maximiser_on_the_set():
    result, scores, is_member = _random_result()
    assert result.decision_source == "best threshold (oracle)"
    candidates = np.unique(scores)
    bal = [skm.balanced_accuracy_score(is_member, scores >= t) for t in candidates]
    assert result.confusion_at_best.balanced_accuracy == pytest.approx(max(bal))


def test_tpr_at_low_fpr_and_clopper_pearson_interval():
    rng = np.random.default_rng(3)
    is_member = np.r_[np.ones(2000, bool), np.zeros(3000, bool)]
    scores = rng.normal(size=5000) + 1.5 * is_member
    result = AttackResult.from_scores(scores, is_member)
    fpr, tpr, _ = skm.roc_curve(is_member, scores, drop_intermediate=False)
    for target in (0.001, 0.01, 0.1):
        expected = tpr[fpr <= target].max()
        point = result.low_fpr(target)
        assert point.tpr == expected
        assert point.fpr <= target
        ci = scipy.stats.binomtest(point.tp, 2000).proportion_ci(0.95, method="exact")
        assert point.ci_low == pytest.approx(ci.low, rel=1e-9, abs=1e-12)
        assert point.ci_high == pytest.approx(ci.high, rel=1e-9)
        assert result.tpr_at_fpr(target) == expected


def test_fpr_target_below_resolution_is_nan_with_warning():
    result, _, _ = _random_result(n_out=400)
    with pytest.warns(LowFPRWarning, match="resolution"):
        assert np.isnan(result.tpr_at_fpr(0.001))
    metrics = result.metrics()
    assert np.isnan(metrics["tpr_at_0.1%_fpr"])
    assert not np.isnan(metrics["tpr_at_1%_fpr"])


def test_ratio_reevaluation_matches_hand_computed_confusion_matrices():
    # 100 members, 100 non-members; decisions give TP=80, FN=20, FP=30, TN=70.
    is_member = np.r_[np.ones(100, bool), np.zeros(100, bool)]
    decisions = np.r_[np.ones(80, bool), np.zeros(20, bool), np.ones(30, bool), np.zeros(70, bool)]
    result = AttackResult.from_scores(decisions.astype(float), is_member, decisions=decisions)
    for m, n in ((5, 1), (1, 1), (1, 5)):
        tp, fn = Fraction(80 * m, 100), Fraction(20 * m, 100)
        fp, tn = Fraction(30 * n, 100), Fraction(70 * n, 100)
        c = result.at_ratio(m, n)
        assert c.precision_member == pytest.approx(float(tp / (tp + fp)), rel=1e-12)
        assert c.precision_non_member == pytest.approx(float(tn / (tn + fn)), rel=1e-12)
        assert c.accuracy == pytest.approx(float((tp + tn) / (tp + tn + fp + fn)), rel=1e-12)
        assert c.tpr == pytest.approx(0.8) and c.far == pytest.approx(0.3)  # recall and FAR do not move
    assert result.at_ratio(5, 1).precision_member == pytest.approx(4 / 4.3)


def test_baselines():
    result, scores, is_member = _random_result()
    z = result.zero_r
    assert z.tpr == 1.0 and z.far == 1.0
    assert z.precision_member == pytest.approx(is_member.mean())
    naive = result.naive
    correct = result.labels == result.predicted_labels
    assert naive.precision_member == pytest.approx(skm.precision_score(is_member, correct))
    assert naive.tpr == pytest.approx(skm.recall_score(is_member, correct))


def test_slices_equal_results_built_on_the_subsets():
    result, scores, is_member = _random_result(threshold=0.2)
    slices, skipped = result.slices(loss_percentiles=4, custom={"first half": np.arange(350)})
    assert not skipped
    for c in range(4):
        mask = result.labels == c
        s = slices[f"class={c}"]
        assert s.auc == skm.roc_auc_score(is_member[mask], scores[mask])
        assert s.confusion.accuracy == pytest.approx(skm.accuracy_score(is_member[mask], scores[mask] >= 0.2))
    correct = result.labels == result.predicted_labels
    assert slices["correctly classified"].auc == skm.roc_auc_score(is_member[correct], scores[correct])
    assert slices["misclassified"].auc == skm.roc_auc_score(is_member[~correct], scores[~correct])
    quarters = [k for k in slices if k.startswith("loss ")]
    assert len(quarters) == 4 and sum(len(slices[k]) for k in quarters) == len(result)
    assert slices["first half"].auc == skm.roc_auc_score(is_member[:350], scores[:350])


def test_slice_with_one_membership_class_is_reported_as_skipped():
    is_member = np.r_[np.ones(6, bool), np.zeros(6, bool)]
    labels = np.r_[[0, 0, 0, 1, 1, 1], [0, 0, 0, 2, 2, 2]]
    result = AttackResult.from_scores(np.arange(12.0), is_member, labels=labels, predicted_labels=labels)
    slices, skipped = result.slices()
    assert "class=0" in slices
    assert skipped == {"class=1": "3 members and 0 non-members", "class=2": "0 members and 3 non-members",
                       "misclassified": "0 members and 0 non-members"}


def test_per_class_summary_is_mean_and_std_over_classes():
    result, scores, is_member = _random_result()
    aucs = [skm.roc_auc_score(is_member[result.labels == c], scores[result.labels == c]) for c in range(4)]
    summary = result.per_class_summary()
    assert summary["auc"]["mean"] == pytest.approx(np.mean(aucs))
    assert summary["auc"]["std"] == pytest.approx(np.std(aucs))
    assert summary["auc"]["pooled"] == result.auc
    agg = aggregate([result, result])
    assert agg["auc"]["std"] == 0.0


def test_dict_round_trip_is_exact():
    result, _, _ = _random_result(threshold=0.25, metadata={"note": "x"}, adaptive=True)
    back = AttackResult.from_dict(result.to_dict())
    for attr in ("scores", "is_member", "labels", "predicted_labels", "losses"):
        a, b = getattr(result, attr), getattr(back, attr)
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert back.threshold == result.threshold and back.adaptive is True
    left, right = result.metrics(), back.metrics()
    assert left.keys() == right.keys()
    assert all((np.isnan(left[k]) and np.isnan(right[k])) or left[k] == right[k] for k in left)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"scores": [0.1, np.nan, 0.3], "is_member": [1, 0, 1]}, "scores"),
        ({"scores": [0.1, 0.2, 0.3], "is_member": [1, 1, 1]}, "both members and non-members"),
        ({"scores": [0.1, 0.2, 0.3], "is_member": [1, 0]}, "is_member"),
        ({"scores": [0.1, 0.2], "is_member": [1, 2]}, "is_member"),
        ({"scores": [0.1, 0.2], "is_member": [1, 0], "labels": [0]}, "labels"),
        ({"scores": [[0.1, 0.2]], "is_member": [1, 0]}, "scores"),
    ],
)
def test_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AttackResult.from_scores(**kwargs)


def test_low_fpr_target_out_of_range():
    result, _, _ = _random_result()
    with pytest.raises(ValueError, match="target_fpr"):
        result.low_fpr(1.5)


def test_confusion_reweighting_rejects_empty_population():
    with pytest.raises(ValueError, match="members"):
        Confusion(1, 1, 1, 1).reweighted(0, 1)
