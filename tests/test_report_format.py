"""The saved report: a JSON summary whose size does not grow with the records, and a verified side file.

Checks that every metric and slice survives the round trip, that the JSON
holds the same metrics and slices as the live report, that the thinned ROC
is a subset of scikit-learn's full curve keeping the reported TPR at low FPR
and the advantage exactly, that shared per-record arrays are stored once and
that the JSON's size grows far slower than the number of records.
"""

import json
import math

import numpy as np
import pytest
from sklearn import metrics as skm

from tfmia.evaluation import LOW_FPRS, AttackResult
from tfmia.report import AuditReport, ModelFacts, side_file_path


def _shared_records(n, seed=0):
    rng = np.random.default_rng(seed)
    is_member = rng.permutation(np.arange(2 * n) < n)
    labels = rng.integers(0, 4, 2 * n)
    predicted = np.where(rng.uniform(size=2 * n) < 0.8, labels, (labels + 1) % 4)
    losses = rng.exponential(size=2 * n)
    return rng, is_member, labels, predicted, losses


def _report(n=2000, seed=0):
    """Three attacks on the same records (as run_audit makes them), one with its own decisions."""
    rng, is_member, labels, predicted, losses = _shared_records(n, seed)
    common = dict(labels=labels, predicted_labels=predicted, losses=losses)
    results = [
        AttackResult.from_scores(rng.normal(size=2 * n) + is_member, is_member, name="loss", threshold=0.4,
                                 adaptive=True, metadata={"k": [1, 2]}, **common),
        AttackResult.from_scores(np.round(rng.normal(size=2 * n) + 0.3 * is_member, 1), is_member, name="ties",
                                 **common),  # many tied scores: ROC steps with several members at once
        AttackResult.from_scores(rng.uniform(size=2 * n), is_member, name="own decisions",
                                 decisions=rng.uniform(size=2 * n) < 0.5, **common),
    ]
    facts = ModelFacts(model_name="m", train_accuracy=0.95, test_accuracy=0.7, n_train=n, n_test=n, epoch=2)
    return AuditReport(results, facts, notes=["first", "second"])


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        (isinstance(a[k], float) and math.isnan(a[k]) and math.isnan(b[k])) or a[k] == b[k] for k in a)


def _decode(d: dict) -> dict:
    return {k: math.nan if v == "nan" else v for k, v in d.items()}


def test_every_metric_and_slice_round_trips(tmp_path):
    report = _report()
    report.to_json(tmp_path / "report.json")
    back = AuditReport.from_json(tmp_path / "report.json")
    assert back.title == report.title and back.notes == report.notes and back.facts == report.facts
    assert list(back.results) == list(report.results)
    for name, result in report.results.items():
        other = back[name]
        for field, array in result.per_record_arrays().items():
            loaded = other.per_record_arrays()[field]
            assert (array is None) == (loaded is None)
            if array is not None:
                assert loaded.dtype == array.dtype and np.array_equal(loaded, array)
        assert other.threshold == result.threshold and other.adaptive == result.adaptive
        assert other.metadata == result.metadata and other.decision_source == result.decision_source
        assert _same(other.metrics(), result.metrics())
        slices, skipped = result.slices()
        slices_back, skipped_back = other.slices()
        assert slices.keys() == slices_back.keys() and skipped == skipped_back
        assert all(_same(slices[k].metrics(), slices_back[k].metrics()) for k in slices)


def test_json_holds_the_metrics_and_slices_the_report_shows(tmp_path):
    report = _report()
    document = json.loads(report.to_json(tmp_path / "report.json"))
    for record, result in zip(document["results"], report.results.values()):
        assert _same(_decode(record["metrics"]), result.metrics())
        slices, skipped = result.slices()
        assert set(record["slices"]) == set(slices) - {"entire dataset"} and record["skipped_slices"] == skipped
        for key, stored in record["slices"].items():
            assert _same(_decode(stored["metrics"]), slices[key].metrics())
            assert stored["records"] == {"members": slices[key].n_members, "non_members": slices[key].n_non_members}
        assert _same(_decode(record["baselines"]["zero_r"]), result.zero_r.as_dict())
        assert _same(_decode(record["baselines"]["naive"]), result.naive.as_dict())
        for point, target in zip(record["low_fpr"], LOW_FPRS):
            assert point["target_fpr"] == target and point["tpr"] == result.tpr_at_fpr(target)


def test_thinned_roc_is_part_of_the_full_curve_and_keeps_the_reported_points(tmp_path):
    n = 30_000  # 30 000 non-members resolve 0.1 % FPR with 30 false positives
    report = _report(n)
    document = json.loads(report.to_json(tmp_path / "report.json"))
    for record, result in zip(document["results"], report.results.values()):
        roc = record["roc"]
        fpr, tpr = np.array(roc["fpr"]), np.array(roc["tpr"])
        thresholds = np.array([math.inf if t == "inf" else t for t in roc["thresholds"]])
        full_fpr, full_tpr, full_thresholds = skm.roc_curve(result.is_member, result.scores, drop_intermediate=False)
        at = {t: i for i, t in enumerate(full_thresholds)}
        index = np.array([at[t] for t in thresholds])  # every kept threshold is one of the curve's
        assert np.array_equal(full_fpr[index], fpr) and np.array_equal(full_tpr[index], tpr)
        assert np.array_equal(np.array(roc["fps"]) / n, fpr) and np.array_equal(np.array(roc["tps"]) / n, tpr)
        for target in LOW_FPRS:
            expected = full_tpr[full_fpr <= target].max()
            assert tpr[fpr <= target].max() == expected == record["metrics"][f"tpr_at_{target * 100:g}%_fpr"]
        assert np.max(tpr - fpr) == np.max(full_tpr - full_fpr) == record["metrics"]["advantage"]
        assert len(fpr) <= min(len(full_fpr), 101 + 50 * math.log10(n / 100) + 5)


def test_json_size_grows_sublinearly(tmp_path):
    small = len(_report(2_000).to_json(tmp_path / "small.json"))
    large = len(_report(20_000).to_json(tmp_path / "large.json"))
    assert large < 2 * small


def test_shared_arrays_are_stored_once(tmp_path):
    report = _report()
    document = json.loads(report.to_json(tmp_path / "report.json"))
    refs = [record["arrays"] for record in document["results"]]
    for field in ("is_member", "labels", "predicted_labels", "losses"):
        assert {r[field] for r in refs} == {f"r0.{field}"}
    assert [r["scores"] for r in refs] == ["r0.scores", "r1.scores", "r2.scores"]
    assert [r["decisions"] for r in refs] == [None, None, "r2.decisions"]
    with np.load(side_file_path(tmp_path / "report.json"), allow_pickle=False) as side:
        assert sorted(side.files) == sorted(document["arrays"]["entries"])
        stored = sum(side[k].nbytes for k in side.files)
    n = 4000
    assert stored == 3 * 8 * n + n + 2 * 8 * n + 8 * n + n  # 3 scores, membership, 2 kinds of labels, losses, decisions


def test_side_file_path_and_atomic_pair(tmp_path):
    assert side_file_path(tmp_path / "audit_epoch_0003.json") == tmp_path / "audit_epoch_0003.arrays.npz"
    report = _report(200)
    report.to_json(tmp_path / "report.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.arrays.npz", "report.json"]  # no temporaries left


def test_to_tf_privacy_after_loading(tmp_path):
    from tfmia import tf_privacy

    try:
        tf_privacy.load()
    except ImportError as exc:
        pytest.skip(f"tensorflow-privacy not installed: {str(exc).splitlines()[0]}")
    report = _report(300)
    report.to_json(tmp_path / "report.json")
    loaded = AuditReport.from_json(tmp_path / "report.json").to_tf_privacy().single_attack_results
    direct = report.to_tf_privacy().single_attack_results
    assert len(loaded) == len(direct) > len(report)  # slices included
    for ours, theirs in zip(loaded, direct):
        assert str(ours.slice_spec) == str(theirs.slice_spec) and ours.get_auc() == theirs.get_auc()
        assert np.array_equal(ours.roc_curve.tpr, theirs.roc_curve.tpr)
        assert np.array_equal(ours.membership_scores_train, theirs.membership_scores_train)
