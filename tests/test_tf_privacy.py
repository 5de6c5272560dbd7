"""Round trips with TensorFlow Privacy's membership-inference module (installed --no-deps by `make test`)."""

import numpy as np
import pytest

from sklearn.metrics import roc_auc_score

from tfmia import tf_privacy
from tfmia.attacks import MetricAttack
from tfmia.data import AttackInputs
from tfmia.report import AuditReport, ModelFacts

try:
    TFP = tf_privacy.load()
except ImportError as exc:  # pragma: no cover - exercised where the package is absent
    TFP = None
    REASON = str(exc).splitlines()[0]
else:
    REASON = ""

needs_tfp = pytest.mark.skipif(TFP is None, reason=f"tensorflow-privacy not installed: {REASON}")


def _attack_input_data(seed=0, n_in=300, n_out=300, c=5):
    rng = np.random.default_rng(seed)
    labels_train = rng.integers(0, c, n_in)
    labels_test = rng.integers(0, c, n_out)
    logits_train = rng.normal(size=(n_in, c)) + 3.0 * np.eye(c)[labels_train]
    logits_test = rng.normal(size=(n_out, c)) + 1.0 * np.eye(c)[labels_test]
    ds = TFP.data_structures
    return ds.AttackInputData(logits_train=logits_train, logits_test=logits_test,
                              labels_train=labels_train, labels_test=labels_test)


@needs_tfp
def test_attack_inputs_from_tf_privacy():
    aid = _attack_input_data()
    members, non_members = AttackInputs.from_tf_privacy(aid)
    assert np.array_equal(members.logits, aid.logits_train) and np.array_equal(non_members.labels, aid.labels_test)
    # TF Privacy's own losses and entropies agree with the C++ core's signals.
    np.testing.assert_allclose(members.signals["loss"], aid.get_loss_train(), rtol=1e-6)
    np.testing.assert_allclose(non_members.signals["modified_entropy"], aid.get_entropy_test(), rtol=1e-6)


@needs_tfp
def test_report_converts_to_tf_privacy_results():
    aid = _attack_input_data(1)
    members, non_members = AttackInputs.from_tf_privacy(aid)
    ours = MetricAttack("loss", class_dependent=False).evaluate(members, non_members)
    report = AuditReport([ours], ModelFacts(model_name="toy", train_accuracy=0.9, test_accuracy=0.7, epoch=4))
    results = report.to_tf_privacy()
    entire = [r for r in results.single_attack_results if r.slice_spec.entire_dataset]
    assert len(entire) == 1
    assert str(entire[0].attack_type) == "THRESHOLD_ATTACK"
    assert entire[0].data_size.ntrain == 300 and entire[0].data_size.ntest == 300
    assert results.privacy_report_metadata.epoch_num == 4
    assert {str(r.slice_spec) for r in results.single_attack_results} >= {"Entire dataset", "CLASS=0", "CORRECTLY_CLASSIFIED=True"}

    # TF Privacy's threshold attack is an ROC over -loss computed from its own AttackInputData.
    is_member = np.r_[np.ones(300), np.zeros(300)]
    their_scores = -np.r_[aid.get_loss_train(), aid.get_loss_test()]
    assert entire[0].get_auc() == pytest.approx(roc_auc_score(is_member, their_scores), abs=1e-12)
    assert entire[0].get_attacker_advantage() == pytest.approx(ours.advantage, abs=1e-12)


@needs_tfp
def test_epsilon_lower_bound_equals_tf_privacy_with_explicit_thresholds():
    aid = _attack_input_data(2)
    members, non_members = AttackInputs.from_tf_privacy(aid)
    result = MetricAttack("confidence", class_dependent=False).evaluate(members, non_members)
    ours = AuditReport([result]).to_tf_privacy().single_attack_results[0].get_epsilon_lower_bound()
    # TF Privacy's own bound, counting "score > t" at thresholds just below each distinct score.
    distinct = np.unique(result.scores)[::-1]
    cuts = np.r_[(distinct[:-1] + distinct[1:]) / 2, distinct[-1] - 1.0]
    elb = TFP.epsilon_lower_bound
    theirs = elb.EpsilonLowerBound(result.scores[result.is_member], result.scores[~result.is_member], alpha=0.05,
                                   thresholds=cuts).compute_epsilon_lower_bounds([elb.BoundMethod.BAILEY], k=5)
    np.testing.assert_allclose(ours, theirs[elb.BoundMethod.BAILEY], rtol=1e-12)
    assert ours.size == 5


@needs_tfp
def test_privacy_report_plots_accept_our_results():
    ds = TFP.data_structures
    collection = []
    for epoch in (1, 2, 3):
        aid = _attack_input_data(epoch)
        members, non_members = AttackInputs.from_tf_privacy(aid)
        result = MetricAttack("modified_entropy", class_dependent=False).evaluate(members, non_members)
        facts = ModelFacts(model_name="toy", train_accuracy=0.8 + 0.05 * epoch, test_accuracy=0.7, epoch=epoch)
        collection.append(AuditReport([result], facts).to_tf_privacy())
    fig = TFP.privacy_report.plot_by_epochs(ds.AttackResultsCollection(collection), [ds.PrivacyMetric.AUC])
    line = fig.axes[0].get_lines()[0]
    assert list(line.get_xdata()) == [1, 2, 3]
    expected = [c.single_attack_results[0].get_auc() for c in collection]
    assert np.allclose(line.get_ydata(), expected)
    fig = TFP.privacy_report.plot_privacy_vs_accuracy(ds.AttackResultsCollection(collection), [ds.PrivacyMetric.AUC])
    assert len(fig.axes[0].get_lines()[0].get_xdata()) == 3


def test_missing_package_message_says_how_to_install(monkeypatch):
    import sys

    for name in list(sys.modules):
        if name.startswith("tensorflow_privacy"):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "tensorflow_privacy", None)  # makes the import fail as if absent
    with pytest.raises(ImportError, match="--no-deps tensorflow-privacy==0.9.0"):
        tf_privacy.load()
