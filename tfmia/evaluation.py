"""Attack results measured the way the field now asks for them.

Rezaei & Liu (2021) showed that accuracy, precision and recall of the member
class hide a large false-alarm rate, and Carlini et al. (2022) judge attacks by
their true-positive rate at very low false-positive rates.  An
:class:`AttackResult` therefore reports, with members as the positive class:

* from the scores alone: the ROC curve, AUC, attacker advantage
  ``max(TPR - FPR)`` and TPR at FPR 0.1 % and 1 % (largest TPR among ROC points
  whose FPR does not exceed the target, no interpolation) with a
  Clopper-Pearson interval from the counts;
* from a decision (the attack's own threshold or decisions, else the best
  threshold on this very set, labelled as an oracle): accuracy, balanced
  accuracy, FAR = FP / (FP + TN), precision and recall of both classes, F1;
* the ZeroR baseline (always "member") and the naive baseline (member iff the
  target classifies the record correctly);
* re-evaluation at another member:non-member ratio by exact reweighting
  (precision moves, recall and FAR do not);
* slices: per class, correctly classified, misclassified, loss percentiles,
  custom groups; per-class mean +- std and pooled.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import warnings
from functools import cached_property
from typing import Mapping, Sequence

import numpy as np

from . import metrics as _metrics
from . import thresholds as _thresholds
from ._serialization import decode_array, decode_float, encode_array, encode_float
from ._validate import as_float_array, as_labels, as_membership

__all__ = ["Confusion", "LowFprPoint", "RocCurve", "AttackResult", "LOW_FPRS", "aggregate"]

LOW_FPRS = (0.001, 0.01)
"""The low false-positive rates every result reports TPR at (0.1 % and 1 %)."""


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else math.nan


@dataclasses.dataclass(frozen=True)
class Confusion:
    """Confusion matrix of member decisions, members positive.

    Counts are floats so that a matrix reweighted to another
    member:non-member ratio stays exact (``at_ratio``).
    """

    tp: float
    fn: float
    fp: float
    tn: float

    @classmethod
    def from_decisions(cls, decisions: np.ndarray, is_member: np.ndarray) -> "Confusion":
        decisions = np.asarray(decisions, dtype=bool)
        is_member = np.asarray(is_member, dtype=bool)
        tp = int(np.count_nonzero(decisions & is_member))
        fp = int(np.count_nonzero(decisions & ~is_member))
        members = int(np.count_nonzero(is_member))
        return cls(tp=float(tp), fn=float(members - tp), fp=float(fp), tn=float(is_member.size - members - fp))

    @property
    def members(self) -> float:
        return self.tp + self.fn

    @property
    def non_members(self) -> float:
        return self.fp + self.tn

    @property
    def accuracy(self) -> float:
        return _ratio(self.tp + self.tn, self.members + self.non_members)

    @property
    def tpr(self) -> float:
        """Recall of the member class, TP / (TP + FN)."""
        return _ratio(self.tp, self.members)

    @property
    def far(self) -> float:
        """False-alarm rate = FPR = FP / (FP + TN)."""
        return _ratio(self.fp, self.non_members)

    @property
    def tnr(self) -> float:
        """Recall of the non-member class, TN / (TN + FP)."""
        return _ratio(self.tn, self.non_members)

    @property
    def balanced_accuracy(self) -> float:
        return 0.5 * (self.tpr + self.tnr)

    @property
    def precision_member(self) -> float:
        """PPV = TP / (TP + FP); NaN when nothing is called a member."""
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def precision_non_member(self) -> float:
        """NPV = TN / (TN + FN); NaN when nothing is called a non-member."""
        return _ratio(self.tn, self.tn + self.fn)

    @property
    def f1(self) -> float:
        """F1 of the member class."""
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    @property
    def f1_non_member(self) -> float:
        return _ratio(2 * self.tn, 2 * self.tn + self.fn + self.fp)

    def reweighted(self, members: float, non_members: float) -> "Confusion":
        """The same decisions on a population of ``members`` members and ``non_members`` non-members.

        Each row of the matrix is scaled exactly: TP, FN by members / P and
        FP, TN by non_members / N, so TPR, TNR and FAR are unchanged while
        precision and accuracy follow the new prior.
        """
        if not (members > 0 and non_members > 0):
            raise ValueError(f"members and non_members must be > 0, got {members} and {non_members}")
        scale_in = members / self.members
        scale_out = non_members / self.non_members
        return Confusion(self.tp * scale_in, self.fn * scale_in, self.fp * scale_out, self.tn * scale_out)

    def as_dict(self) -> dict[str, float]:
        return {
            "accuracy": self.accuracy,
            "balanced_accuracy": self.balanced_accuracy,
            "far": self.far,
            "tpr": self.tpr,
            "recall_member": self.tpr,
            "recall_non_member": self.tnr,
            "precision_member": self.precision_member,
            "precision_non_member": self.precision_non_member,
            "f1": self.f1,
            "f1_non_member": self.f1_non_member,
            "tp": self.tp,
            "fn": self.fn,
            "fp": self.fp,
            "tn": self.tn,
        }


@dataclasses.dataclass(frozen=True)
class RocCurve:
    """ROC curve as scikit-learn's ``roc_curve(drop_intermediate=False)``, with the integer counts."""

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray
    fps: np.ndarray
    tps: np.ndarray

    def thinned(self, keep=(), *, exact_up_to: int = 100, per_decade: int = 50) -> "RocCurve":
        """A subset of the points, enough for log-scale plots, whose size hardly grows with the data.

        The curve is a staircase: at each false-positive count ``k`` its last
        point (a corner) has the highest TPR at that FPR.  Kept are the first
        and last point, every corner with ``k <= exact_up_to`` (the
        low-FPR end, one false positive at a time), above that the first
        corner in each bin ``floor(per_decade * log10(k))``, and the indices
        in ``keep``.  Kept points are points of the full curve, so a value
        taken at one of them (TPR at a reported FPR, the advantage) is the
        same on both.  Size: at most ``exact_up_to + 1 + per_decade *
        log10(non-members / exact_up_to) + len(keep) + 2`` points.
        """
        fps = self.fps
        corners = np.flatnonzero(np.r_[fps[1:] != fps[:-1], True])
        counts = fps[corners]
        bins = np.floor(per_decade * np.log10(np.maximum(counts, 1))).astype(np.int64)
        first_in_bin = np.r_[True, bins[1:] != bins[:-1]]
        chosen = corners[(counts <= exact_up_to) | first_in_bin]
        index = np.unique(np.concatenate([[0, fps.size - 1], chosen, np.asarray(keep, dtype=np.int64)]))
        return RocCurve(*(getattr(self, field.name)[index] for field in dataclasses.fields(self)))

    def to_dict(self) -> dict:
        """JSON-ready lists (the first threshold, +inf, is written "inf")."""
        return {
            "fpr": self.fpr.tolist(),
            "tpr": self.tpr.tolist(),
            "thresholds": [encode_float(t) for t in self.thresholds.tolist()],
            "fps": self.fps.tolist(),
            "tps": self.tps.tolist(),
        }


@dataclasses.dataclass(frozen=True)
class LowFprPoint:
    """TPR at a target FPR: the largest TPR among ROC points with FPR <= target.

    ``tpr`` is NaN when the target is below the resolution 1 / (number of
    non-members); ``ci_low``/``ci_high`` are the Clopper-Pearson interval of
    ``tp`` out of ``members`` at the given confidence.
    """

    target_fpr: float
    tpr: float
    fpr: float
    threshold: float
    tp: int
    members: int
    ci_low: float
    ci_high: float
    confidence: float


class AttackResult:
    """Scores of one attack on members and non-members, and every metric derived from them.

    Build with :meth:`from_scores`.  Scores are "higher = more likely a
    member".  The attack's own decision is ``decisions`` when given, else
    ``scores >= threshold`` when a threshold is given, else the best threshold
    on this set (balanced accuracy, ALGORITHMS.md rule), which is an oracle
    and reported as such in ``decision_source``.
    """

    def __init__(
        self,
        scores: np.ndarray,
        is_member: np.ndarray,
        *,
        name: str,
        threshold: float | None,
        decisions: np.ndarray | None,
        labels: np.ndarray | None,
        predicted_labels: np.ndarray | None,
        losses: np.ndarray | None,
        adaptive: bool | None,
        metadata: dict,
    ):
        self.scores = scores
        self.is_member = is_member
        self.name = name
        self.threshold = threshold
        self._decisions = decisions
        self.labels = labels
        self.predicted_labels = predicted_labels
        self.losses = losses
        self.adaptive = adaptive
        self.metadata = metadata
        self._inherited_decisions: str | None = None

    # -- construction ---------------------------------------------------------
    @classmethod
    def from_scores(
        cls,
        scores,
        is_member,
        *,
        name: str = "attack",
        threshold: float | None = None,
        decisions=None,
        labels=None,
        predicted_labels=None,
        losses=None,
        adaptive: bool | None = None,
        metadata: Mapping | None = None,
    ) -> "AttackResult":
        """Validate and wrap per-record scores.

        Args:
            scores: (N,) floats, higher = more likely a member. NaN/Inf are rejected.
            is_member: (N,) ground-truth membership, booleans or 0/1, both classes present.
            name: the attack's name, used in tables and plots.
            threshold: the attack's decision threshold (member iff score >= threshold).
            decisions: the attack's member decisions, when they are not a threshold on ``scores``.
            labels: true class of each record (enables per-class slices and the naive baseline).
            predicted_labels: the target's predicted class (correct/misclassified slices, naive baseline).
            losses: the target's loss per record (loss-percentile slices).
            adaptive: whether the attack calibrated on models trained with the defence it faces.
            metadata: free-form JSON-serialisable facts about the attack (configuration, sizes).
        """
        scores = as_float_array(scores, "scores", ndim=1).astype(np.float64, copy=False)
        if not np.all(np.isfinite(scores)):
            bad = int(np.flatnonzero(~np.isfinite(scores))[0])
            raise ValueError(f"scores contains NaN or Inf (first at index {bad})")
        n = scores.shape[0]
        is_member = as_membership(is_member, "is_member", n=n)
        if is_member.all() or not is_member.any():
            raise ValueError("is_member must contain both members and non-members")
        if threshold is not None:
            if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
                raise TypeError(f"threshold must be a number or None, got {threshold!r}")
            threshold = float(threshold)
            if math.isnan(threshold):
                raise ValueError("threshold must not be NaN")
        if adaptive is not None and not isinstance(adaptive, (bool, np.bool_)):
            raise TypeError(f"adaptive must be True, False or None, got {adaptive!r}")
        if metadata is not None and not isinstance(metadata, Mapping):
            raise TypeError(f"metadata must be a mapping, got {type(metadata).__name__}")
        if decisions is not None:
            decisions = as_membership(decisions, "decisions", n=n)
        if labels is not None:
            labels = as_labels(labels, "labels", n=n)
        if predicted_labels is not None:
            predicted_labels = as_labels(predicted_labels, "predicted_labels", n=n)
        if losses is not None:
            losses = as_float_array(losses, "losses", ndim=1).astype(np.float64, copy=False)
            if losses.shape[0] != n:
                raise ValueError(f"losses has {losses.shape[0]} entries, expected {n}")
        return cls(
            scores,
            is_member,
            name=str(name),
            threshold=threshold,
            decisions=decisions,
            labels=labels,
            predicted_labels=predicted_labels,
            losses=losses,
            adaptive=None if adaptive is None else bool(adaptive),
            metadata=dict(metadata or {}),
        )

    # -- sizes ----------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @property
    def n_members(self) -> int:
        return int(np.count_nonzero(self.is_member))

    @property
    def n_non_members(self) -> int:
        return len(self) - self.n_members

    # -- threshold-free metrics ----------------------------------------------
    @cached_property
    def roc(self) -> RocCurve:
        fps, tps, thresholds = _metrics.roc_counts(self.scores, self.is_member)
        return RocCurve(
            fpr=fps / fps[-1], tpr=tps / tps[-1], thresholds=thresholds, fps=fps, tps=tps
        )

    @cached_property
    def auc(self) -> float:
        return float(_metrics.auc(self.scores, self.is_member))

    @cached_property
    def advantage(self) -> float:
        """Attacker advantage, max over thresholds of TPR - FPR.

        Not ``max |TPR - FPR|`` (TensorFlow Privacy's definition), which also
        credits an attack for being worse than chance; see docs/definitions.md.
        """
        return float(np.max(self.roc.tpr - self.roc.fpr))

    def low_fpr(self, target_fpr: float, confidence: float = 0.95) -> LowFprPoint:
        """TPR at ``target_fpr`` with its Clopper-Pearson interval (see :class:`LowFprPoint`)."""
        target = float(target_fpr)
        if not 0.0 <= target <= 1.0:
            raise ValueError(f"target_fpr must be in [0, 1], got {target_fpr!r}")
        roc = self.roc
        members = self.n_members
        best, too_low = _metrics.low_fpr_index(roc.fps, target, stacklevel=2)
        if too_low:
            return LowFprPoint(target, math.nan, math.nan, math.nan, 0, members, math.nan, math.nan, confidence)
        best = int(best)
        tp = int(roc.tps[best])
        lo, hi = _metrics.clopper_pearson(tp, members, confidence)
        return LowFprPoint(
            target_fpr=target,
            tpr=float(roc.tpr[best]),
            fpr=float(roc.fpr[best]),
            threshold=float(roc.thresholds[best]),
            tp=tp,
            members=members,
            ci_low=float(lo),
            ci_high=float(hi),
            confidence=confidence,
        )

    def tpr_at_fpr(self, target_fpr: float) -> float:
        """Largest TPR among ROC points with FPR <= ``target_fpr`` (NaN below resolution)."""
        return self.low_fpr(target_fpr).tpr

    # -- decisions ------------------------------------------------------------
    @cached_property
    def best_threshold(self) -> float:
        """Threshold maximising balanced accuracy on this set (an oracle; ALGORITHMS.md rule)."""
        return float(_thresholds.best_threshold(self.scores[self.is_member], self.scores[~self.is_member]))

    @property
    def decision_source(self) -> str:
        """Where the decisions come from: "decisions", "threshold" or "best threshold (oracle)".

        A slice inherits its parent's decisions and says so.
        """
        if self._inherited_decisions is not None:
            return self._inherited_decisions
        if self._decisions is not None:
            return "decisions"
        if self.threshold is not None:
            return "threshold"
        return "best threshold (oracle)"

    @cached_property
    def decisions(self) -> np.ndarray:
        """The member decision per record (see :attr:`decision_source`)."""
        if self._decisions is not None:
            return self._decisions
        threshold = self.threshold if self.threshold is not None else self.best_threshold
        return self.scores >= threshold

    @cached_property
    def confusion(self) -> Confusion:
        """Confusion matrix of :attr:`decisions`."""
        return Confusion.from_decisions(self.decisions, self.is_member)

    @cached_property
    def confusion_at_best(self) -> Confusion:
        """Confusion matrix at :attr:`best_threshold` (oracle)."""
        return Confusion.from_decisions(self.scores >= self.best_threshold, self.is_member)

    @property
    def accuracy(self) -> float:
        return self.confusion.accuracy

    @property
    def balanced_accuracy(self) -> float:
        return self.confusion.balanced_accuracy

    @property
    def far(self) -> float:
        return self.confusion.far

    @property
    def ppv(self) -> float:
        return self.confusion.precision_member

    def at_ratio(self, members: float, non_members: float) -> Confusion:
        """The same decisions re-evaluated at a ``members``:``non_members`` ratio (e.g. 5:1, 1:1, 1:5)."""
        return self.confusion.reweighted(members, non_members)

    # -- baselines ------------------------------------------------------------
    @property
    def zero_r(self) -> Confusion:
        """ZeroR baseline: every record called a member."""
        return Confusion.from_decisions(np.ones(len(self), dtype=bool), self.is_member)

    @property
    def naive(self) -> Confusion | None:
        """Naive baseline: member iff the target classifies the record correctly (needs labels)."""
        if self.labels is None or self.predicted_labels is None:
            return None
        return Confusion.from_decisions(self.labels == self.predicted_labels, self.is_member)

    # -- slices ---------------------------------------------------------------
    def subset(self, index, name: str | None = None) -> "AttackResult":
        """The result restricted to the records selected by ``index`` (mask or indices).

        The slice keeps this result's decisions (the attack's own, or the
        oracle threshold of this whole set), so slices measure one attack.
        """
        index = np.asarray(index)

        def take(a):
            return None if a is None else a[index]

        result = AttackResult.from_scores(
            self.scores[index],
            self.is_member[index],
            name=name or self.name,
            threshold=self.threshold,
            decisions=self.decisions[index],
            labels=take(self.labels),
            predicted_labels=take(self.predicted_labels),
            losses=take(self.losses),
            adaptive=self.adaptive,
            metadata=self.metadata,
        )
        result._inherited_decisions = f"{self.decision_source} of the parent set"
        return result

    def slice_masks(
        self,
        *,
        by_class: bool = True,
        by_correctness: bool = True,
        loss_percentiles: int | None = None,
        custom: Mapping[str, np.ndarray] | None = None,
    ) -> dict[str, np.ndarray]:
        """Boolean masks of the standard slices (TF Privacy's SlicingSpec, plus custom groups).

        Keys: ``"entire dataset"``, ``"class=c"``, ``"correctly classified"``,
        ``"misclassified"``, ``"loss p0-p1%"`` and the custom names.
        """
        n = len(self)
        masks: dict[str, np.ndarray] = {"entire dataset": np.ones(n, dtype=bool)}
        if by_class and self.labels is not None:
            for c in np.unique(self.labels):
                masks[f"class={int(c)}"] = self.labels == c
        if by_correctness and self.labels is not None and self.predicted_labels is not None:
            correct = self.labels == self.predicted_labels
            masks["correctly classified"] = correct
            masks["misclassified"] = ~correct
        if loss_percentiles:
            if self.losses is None:
                raise ValueError("loss_percentiles needs the losses passed to from_scores")
            edges = np.linspace(0, 100, int(loss_percentiles) + 1)
            cuts = np.percentile(self.losses, edges)
            for i in range(len(edges) - 1):
                upper = self.losses <= cuts[i + 1] if i == len(edges) - 2 else self.losses < cuts[i + 1]
                masks[f"loss {edges[i]:g}-{edges[i + 1]:g}%"] = (self.losses >= cuts[i]) & upper
        for key, index in (custom or {}).items():
            index = np.asarray(index)
            mask = index if index.dtype == bool else np.isin(np.arange(n), index)
            if mask.shape != (n,):
                raise ValueError(f"custom slice {key!r} must be a mask of length {n} or indices")
            masks[str(key)] = mask
        return masks

    def slices(self, **kwargs) -> tuple[dict[str, "AttackResult"], dict[str, str]]:
        """Each slice of :meth:`slice_masks` as an AttackResult.

        Returns ``(results, skipped)``: slices without both members and
        non-members cannot be evaluated and are listed in ``skipped`` with the
        reason instead of being dropped silently.
        """
        results, skipped = {}, {}
        for key, result, reason in self._each_slice(**kwargs):
            if result is None:
                skipped[key] = reason
            else:
                results[key] = result
        return results, skipped

    def _each_slice(self, **kwargs):
        """``(key, result, None)`` or ``(key, None, reason skipped)`` per slice, one slice at a time."""
        for key, mask in self.slice_masks(**kwargs).items():
            members = int(np.count_nonzero(self.is_member[mask]))
            total = int(np.count_nonzero(mask))
            if members == 0 or members == total:
                yield key, None, f"{members} members and {total - members} non-members"
            else:
                yield key, self if key == "entire dataset" else self.subset(mask, name=self.name), None

    def per_class(self) -> dict[int, "AttackResult"]:
        """One result per true class that has both members and non-members."""
        if self.labels is None:
            raise ValueError("per-class results need the labels passed to from_scores")
        results, _ = self.slices(by_class=True, by_correctness=False)
        return {int(k.split("=")[1]): v for k, v in results.items() if k.startswith("class=")}

    def per_class_summary(self, names: Sequence[str] = ("auc", "balanced_accuracy", "far", "advantage")) -> dict:
        """Mean and std (ddof=0) over classes of each metric, and the pooled value (entire set)."""
        per_class = self.per_class()
        rows = [r.metrics() for r in per_class.values()]
        pooled = self.metrics()
        return {
            name: {
                "mean": float(np.mean([row[name] for row in rows])),
                "std": float(np.std([row[name] for row in rows])),
                "pooled": pooled[name],
                "classes": len(rows),
            }
            for name in names
        }

    # -- summaries ------------------------------------------------------------
    def metrics(self) -> dict[str, float]:
        """Flat dict of every headline metric (for tables, Keras logs and JSON)."""
        out: dict[str, float] = {
            "auc": self.auc,
            "advantage": self.advantage,
        }
        for f in LOW_FPRS:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", _metrics.LowFPRWarning)
                point = self.low_fpr(f)
            out[f"tpr_at_{f * 100:g}%_fpr"] = point.tpr
            out[f"tpr_at_{f * 100:g}%_fpr_ci_low"] = point.ci_low
            out[f"tpr_at_{f * 100:g}%_fpr_ci_high"] = point.ci_high
        out.update(self.confusion.as_dict())
        out["ppv"] = self.confusion.precision_member
        best = self.confusion_at_best
        out["best_balanced_accuracy"] = best.balanced_accuracy
        out["best_far"] = best.far
        out["members"] = float(self.n_members)
        out["non_members"] = float(self.n_non_members)
        return out

    @property
    def reported_roc(self) -> RocCurve:
        """The ROC thinned for files (:meth:`RocCurve.thinned`), keeping the points of every reported
        TPR at :data:`LOW_FPRS` and of the advantage, so those read off it exactly."""
        roc = self.roc
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", _metrics.LowFPRWarning)
            index, too_low = _metrics.low_fpr_index(roc.fps, LOW_FPRS)
        return roc.thinned([*index[~too_low], int(np.argmax(roc.tpr - roc.fpr))])

    def per_record_arrays(self) -> dict[str, np.ndarray | None]:
        """The arrays :meth:`from_scores` keeps (keyed by its argument names; ``decisions`` only
        when the attack made its own): passed back to it, they rebuild this result."""
        return {
            "scores": self.scores,
            "is_member": self.is_member,
            "decisions": self._decisions,
            "labels": self.labels,
            "predicted_labels": self.predicted_labels,
            "losses": self.losses,
        }

    def summary_dict(self) -> dict:
        """Everything a report shows about this result, without the per-record arrays (JSON-ready).

        Sizes, threshold, decision source, every metric, the low-FPR points
        with their intervals, the baselines, the thinned ROC
        (:attr:`reported_roc`) and the metrics of every slice
        (:meth:`slices`); its size does not grow with the number of records.
        """
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", _metrics.LowFPRWarning)
            low_fpr = [dataclasses.asdict(self.low_fpr(f)) for f in LOW_FPRS]
        naive = self.naive
        slices, skipped = {}, {}
        for key, s, reason in self._each_slice():  # one slice's arrays in memory at a time
            if s is None:
                skipped[key] = reason
            elif key != "entire dataset":
                slices[key] = {"records": _records(s), "metrics": _encode_values(s.metrics())}
        return {
            "name": self.name,
            "records": _records(self),
            "threshold": encode_float(self.threshold),
            "decision_source": self.decision_source,
            "adaptive": self.adaptive,
            "metadata": self.metadata,
            "metrics": _encode_values(self.metrics()),
            "low_fpr": [_encode_values(point) for point in low_fpr],
            "baselines": {
                "zero_r": _encode_values(self.zero_r.as_dict()),
                "naive": None if naive is None else _encode_values(naive.as_dict()),
            },
            "roc": self.reported_roc.to_dict(),
            "slices": slices,
            "skipped_slices": skipped,
        }

    def to_dict(self) -> dict:
        """JSON-ready dict with the per-record arrays inline, which :meth:`from_dict` turns back into
        an identical result (for small results: a report file keeps its arrays in a binary side file)."""
        return {
            "name": self.name,
            **{field: encode_array(array) for field, array in self.per_record_arrays().items()},
            "threshold": encode_float(self.threshold),
            "adaptive": self.adaptive,
            "metadata": self.metadata,
            "metrics": _encode_values(self.metrics()),
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> "AttackResult":
        if not isinstance(d, Mapping):
            raise ValueError(f"attack result record must be a dict, got {type(d).__name__}")
        try:
            return cls.from_scores(
                decode_array(d["scores"]),
                decode_array(d["is_member"]),
                name=d["name"],
                threshold=decode_float(d.get("threshold")),
                decisions=decode_array(d.get("decisions")),
                labels=decode_array(d.get("labels")),
                predicted_labels=decode_array(d.get("predicted_labels")),
                losses=decode_array(d.get("losses")),
                adaptive=d.get("adaptive"),
                metadata=d.get("metadata") or {},
            )
        except KeyError as exc:
            raise ValueError(f"attack result record is missing {exc}") from None

    def __repr__(self) -> str:
        return (
            f"AttackResult(name={self.name!r}, members={self.n_members}, non_members={self.n_non_members}, "
            f"auc={self.auc:.4f}, balanced_accuracy={self.balanced_accuracy:.4f}, far={self.far:.4f})"
        )


def _records(result: AttackResult) -> dict[str, int]:
    return {"members": result.n_members, "non_members": result.n_non_members}


def _encode_values(values: Mapping) -> dict:
    """A flat dict of numbers with the floats as :func:`encode_float` writes them (ints stay ints)."""
    return {k: v if isinstance(v, int) else encode_float(v) for k, v in values.items()}


def aggregate(results: Sequence[AttackResult], names: Sequence[str] = ("auc", "balanced_accuracy", "far")) -> dict:
    """Mean and std (ddof=0) of metrics over several results (e.g. repeated runs or classes)."""
    if not results:
        raise ValueError("results must not be empty")
    rows = [r.metrics() for r in results]
    return {n: {"mean": float(np.mean([r[n] for r in rows])), "std": float(np.std([r[n] for r in rows]))} for n in names}
