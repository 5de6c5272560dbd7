"""Interoperability with TensorFlow Privacy's membership-inference module.

TensorFlow Privacy's MIA code now ships as ``tensorflow-empirical-privacy``
(import path ``tensorflow_privacy.privacy.privacy_tests.membership_inference_attack``).
Its declared pins conflict with current TensorFlow and numpy 2, but the code
works once installed with::

    pip install pandas statsmodels immutabledict
    pip install --no-deps tensorflow-privacy==0.9.0 tensorflow-empirical-privacy==0.1.0

provided ``sys.skip_tf_privacy_import = True`` is set before
``tensorflow_privacy`` is first imported (its package ``__init__`` otherwise
imports DP optimizers that fail on Keras 3).  :func:`load` does that for you,
only when ``tensorflow_privacy`` has not been imported yet.

* :func:`attack_inputs_from_tf_privacy` turns an ``AttackInputData`` into a
  pair of :class:`~tfmia.data.AttackInputs` (members, non-members).
* :func:`report_to_tf_privacy` turns an :class:`~tfmia.report.AuditReport`
  into ``AttackResults`` (one ``SingleAttackResult`` per attack and slice, with
  ROC curve, data size, epsilon lower bound and ``PrivacyReportMetadata``), so
  that ``privacy_report.plot_by_epochs`` and ``plot_privacy_vs_accuracy``
  accept tfmia's results.
"""

from __future__ import annotations

import dataclasses
import sys
import types

import numpy as np

__all__ = ["load", "attack_inputs_from_tf_privacy", "report_to_tf_privacy", "TfmiaAttackType"]

_MIA = "tensorflow_privacy.privacy.privacy_tests.membership_inference_attack"
_INSTALL_HINT = (
    "TensorFlow Privacy's membership-inference module is not installed. Install it with\n"
    "  pip install pandas statsmodels immutabledict\n"
    "  pip install --no-deps tensorflow-privacy==0.9.0 tensorflow-empirical-privacy==0.1.0\n"
    "(--no-deps because its pins conflict with current TensorFlow and numpy 2)."
)

# Epsilon lower bound settings of TensorFlow Privacy's own attacks.
_EPSILON_ALPHA = 0.05
_EPSILON_K = 5


def load() -> types.SimpleNamespace:
    """Import TF Privacy's MIA modules, skipping its Keras-2-only package imports."""
    if "tensorflow_privacy" not in sys.modules:
        sys.skip_tf_privacy_import = True
    try:
        import importlib

        ds = importlib.import_module(f"{_MIA}.data_structures")
        privacy_report = importlib.import_module(f"{_MIA}.privacy_report")
        elb = importlib.import_module("tensorflow_privacy.privacy.privacy_tests.epsilon_lower_bound")
    except ImportError as exc:
        raise ImportError(f"{_INSTALL_HINT}\n(import failed: {exc})") from exc
    return types.SimpleNamespace(data_structures=ds, privacy_report=privacy_report, epsilon_lower_bound=elb)


@dataclasses.dataclass(frozen=True)
class TfmiaAttackType:
    """Stands in for TF Privacy's ``AttackType`` enum for attacks it has no member for.

    TF Privacy only uses ``str(attack_type)`` (tables, legends) and
    ``is_trained_attack``; both are provided.
    """

    name: str
    is_trained_attack: bool = False

    @property
    def value(self) -> str:
        return self.name

    def __str__(self) -> str:
        return self.name


def attack_inputs_from_tf_privacy(cls, aid) -> tuple:
    """(members, non_members) AttackInputs from TF Privacy's ``AttackInputData``."""
    if getattr(aid, "multilabel_data", None) or getattr(aid, "force_multilabel_data", False):
        raise ValueError("attack_input_data: multi-label data is not supported")
    if aid.labels_train is None or aid.labels_test is None:
        raise ValueError("attack_input_data must have labels_train and labels_test")
    if aid.sample_weight_train is not None or aid.sample_weight_test is not None:
        raise ValueError("attack_input_data: sample weights are not supported; drop them or subsample instead")
    pairs = []
    for split in ("train", "test"):
        logits = getattr(aid, f"logits_{split}")
        probs = getattr(aid, f"probs_{split}")
        if logits is None and probs is None:
            raise ValueError(f"attack_input_data has neither logits_{split} nor probs_{split}")
        kwargs = {"labels": getattr(aid, f"labels_{split}"), "loss": getattr(aid, f"loss_{split}")}
        if logits is not None:
            kwargs["logits"] = logits
        else:
            kwargs["probs"] = probs
        pairs.append(cls(**kwargs))
    return pairs[0], pairs[1]


def _slice_spec(ds, key: str):
    if key == "entire dataset":
        return ds.SingleSliceSpec()
    if key.startswith("class="):
        return ds.SingleSliceSpec(ds.SlicingFeature.CLASS, int(key.split("=", 1)[1]))
    if key in ("correctly classified", "misclassified"):
        return ds.SingleSliceSpec(ds.SlicingFeature.CORRECTLY_CLASSIFIED, key == "correctly classified")
    return ds.SingleSliceSpec(ds.SlicingFeature.CUSTOM, (None, None, key, key))


def _attack_type(ds, result):
    """TF Privacy's AttackType when the attack declares an exact counterpart in its metadata
    (``tf_privacy_attack_type``, e.g. "THRESHOLD_ATTACK" for the global loss threshold), else
    a :class:`TfmiaAttackType` carrying tfmia's name."""
    member = result.metadata.get("tf_privacy_attack_type")
    if member is not None:
        return ds.AttackType[member]
    return TfmiaAttackType(result.name, is_trained_attack=bool(result.metadata.get("trained", False)))


def _epsilon_bounds(elb, result) -> dict:
    """TF Privacy's epsilon lower bound (Bailey ratio bounds, alpha 0.05, top 5, two-sided).

    Equivalent to ``EpsilonLowerBound(members, non_members, 0.05).compute_epsilon_lower_bounds``,
    whose constructor calls ``sklearn.metrics._ranking._binary_clf_curve``, a private
    function scikit-learn 1.9 removed; the TP/FP counts at every distinct score come
    from tfmia's ROC counts instead, and TF Privacy's public ``RatioBound`` does the rest.
    """
    roc = result.roc
    tp, fp = roc.tps[1:], roc.fps[1:]  # drop the (0, 0) point at +inf, as _binary_clf_curve does
    pos, neg = result.n_members, result.n_non_members
    fn, tn = pos - tp, neg - fp
    ratio_bounds = [
        elb.RatioBound(tp, fp, pos, neg, _EPSILON_ALPHA),
        elb.RatioBound(tn, fn, neg, pos, _EPSILON_ALPHA),
        elb.RatioBound(fp, tp, neg, pos, _EPSILON_ALPHA),
        elb.RatioBound(fn, tn, pos, neg, _EPSILON_ALPHA),
    ]
    method = elb.BoundMethod.BAILEY
    with np.errstate(divide="ignore", invalid="ignore"):  # zero counts give inf/NaN bounds, dropped below
        ratio = np.concatenate([rb.compute_bound(method) for rb in ratio_bounds])
    bounds = np.sort(np.log(ratio[ratio > 0]))[::-1]
    return {method: bounds[:_EPSILON_K]}


def _single_result(mods, result, key: str):
    ds, elb = mods.data_structures, mods.epsilon_lower_bound
    roc = result.roc
    members = result.scores[result.is_member]
    non_members = result.scores[~result.is_member]
    bounds = _epsilon_bounds(elb, result)
    return ds.SingleAttackResult(
        slice_spec=_slice_spec(ds, key),
        data_size=ds.DataSize(ntrain=result.n_members, ntest=result.n_non_members),
        attack_type=_attack_type(ds, result),
        roc_curve=ds.RocCurve(
            thresholds=roc.thresholds,
            tpr=roc.tpr,
            fpr=roc.fpr,
            test_train_ratio=np.float64(result.n_non_members / result.n_members),
        ),
        epsilon_lower_bound_value=ds.EpsilonLowerBoundValue(bounds=bounds),
        membership_scores_train=members,
        membership_scores_test=non_members,
    )


def report_to_tf_privacy(report, *, by_class: bool = True, by_correctness: bool = True):
    """TF Privacy ``AttackResults`` for every attack of ``report`` and its slices.

    TF Privacy computes its own summary numbers from the ROC curves handed
    over, with its own definitions: its attacker advantage is
    ``max |TPR - FPR|`` where tfmia's is ``max(TPR - FPR)``, so the two differ
    on slices where the attack is worse than chance (docs/definitions.md).
    """
    mods = load()
    ds = mods.data_structures
    singles = []
    for result in report.results.values():
        slices, _ = result.slices(by_class=by_class, by_correctness=by_correctness)
        singles += [_single_result(mods, s, key) for key, s in slices.items()]
    f = report.facts
    metadata = ds.PrivacyReportMetadata(
        accuracy_train=f.train_accuracy,
        accuracy_test=f.test_accuracy,
        model_variant_label=f.model_name or "Default model variant",
        epoch_num=f.epoch,
    )
    return ds.AttackResults(single_attack_results=singles, privacy_report_metadata=metadata)
