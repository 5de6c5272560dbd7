"""Song & Mittal's metric-based attacks with class-dependent thresholds.

Scores where higher means member: correctness, confidence ``p_y``, ``-loss``,
``-entropy`` and ``-Mentr`` (modified entropy).  A threshold per true class is
chosen on the attacker's shadow members and non-members to maximise balanced
accuracy ``0.5 * (mean(in >= t) + mean(out < t))`` over the observed values,
first maximiser in concatenation order (``tfmia.thresholds``, bit-exact
against the authors' ``_thre_setting``).  A class absent from the shadow data
uses the class-independent threshold (the reference silently used 0).

With class-dependent thresholds the attack's score is the record's margin
above its class's threshold (:func:`tfmia.thresholds.threshold_margins`): it
is >= 0 exactly when ``value >= t[label]`` (the decision) and strictly
increasing in the value within each class, so confident records that
``value - t[label]`` would round to one float keep their order.  Its
magnitude counts float64 steps, not units of the metric: read the metric
with :meth:`MetricAttack.values`.  The class-independent variant scores the
value itself with threshold ``t``.  The correctness attack needs no calibration: member iff
correctly classified.
"""

from __future__ import annotations

import warnings

import numpy as np

from .. import signals as _signals
from .. import thresholds as _thresholds
from .base import Attack, as_attack_inputs, calibration_inputs

__all__ = ["MetricAttack", "METRICS"]

METRICS = ("correctness", "loss", "confidence", "entropy", "modified_entropy")

_SIGNAL = {"correctness": "correct", "loss": "loss", "confidence": "confidence",
           "entropy": "entropy", "modified_entropy": "modified_entropy"}
# TensorFlow Privacy's exact counterparts (its entropy attack uses the modified entropy).
_TF_PRIVACY_TYPE = {"loss": "THRESHOLD_ATTACK", "modified_entropy": "THRESHOLD_ENTROPY_ATTACK"}


class MetricAttack(Attack):
    """Threshold attack on one per-sample metric (Song & Mittal 2021, section 3).

    Args:
        metric: one of ``METRICS``.
        class_dependent: one threshold per true class (default) or one global threshold.
    """

    def __init__(self, metric: str = "modified_entropy", class_dependent: bool = True):
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        self.metric = metric
        self.class_dependent = bool(class_dependent) and metric != "correctness"
        self._fit: _thresholds.ClassThresholds | None = None
        self.num_classes: int | None = None

    @property
    def name(self) -> str:
        if self.metric == "correctness":
            return "correctness"
        return f"{self.metric} ({'class-dependent' if self.class_dependent else 'global'} threshold)"

    def values(self, records) -> np.ndarray:
        """The metric oriented so that higher = member, as float64."""
        inputs = as_attack_inputs(records)
        return _signals.member_scores(inputs.signals, _SIGNAL[self.metric])

    def fit(self, members, non_members) -> "MetricAttack":
        """Choose thresholds on the attacker's shadow (or known) members and non-members."""
        members, non_members = calibration_inputs(members, non_members)
        self.num_classes = members.num_classes
        if self.metric == "correctness":
            return self
        self._fit = _thresholds.fit_class_thresholds(
            self.values(members), members.labels, self.values(non_members), non_members.labels, self.num_classes
        )
        if self.class_dependent and self._fit.fallback.any():
            missing = np.flatnonzero(self._fit.fallback).tolist()
            warnings.warn(
                f"{self.name}: classes {missing} lack shadow members or non-members; "
                "they use the class-independent threshold",
                stacklevel=2,
            )
        return self

    def _check_fitted(self, inputs) -> None:
        if self.num_classes is None:
            raise ValueError(f"{self.name} must be fitted before scoring (call fit with shadow data)")
        if inputs.num_classes != self.num_classes:
            raise ValueError(
                f"records have {inputs.num_classes} classes but {self.name} was fitted on {self.num_classes}"
            )

    def score(self, records) -> np.ndarray:
        inputs = as_attack_inputs(records)
        if self.class_dependent:
            self._check_fitted(inputs)
            return self._fit.margins(self.values(inputs), inputs.labels)
        if self.num_classes is not None:
            self._check_fitted(inputs)
        return self.values(inputs)

    def threshold(self) -> float | None:
        if self.metric == "correctness":
            return 1.0
        if self._fit is None:
            return None
        return 0.0 if self.class_dependent else float(self._fit.global_threshold)

    @property
    def thresholds(self) -> np.ndarray | None:
        """Per-class thresholds on the oriented metric (None before fit)."""
        return None if self._fit is None else self._fit.thresholds

    def config(self) -> dict:
        cfg = {"metric": self.metric, "class_dependent": self.class_dependent}
        if self._fit is not None:
            cfg["thresholds"] = [float(t) for t in self._fit.thresholds]
            cfg["global_threshold"] = float(self._fit.global_threshold)
            cfg["fallback_classes"] = np.flatnonzero(self._fit.fallback).tolist()
        if not self.class_dependent and self.metric in _TF_PRIVACY_TYPE:
            cfg["tf_privacy_attack_type"] = _TF_PRIVACY_TYPE[self.metric]
        return cfg
