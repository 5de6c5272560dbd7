"""Song & Mittal's privacy risk score: a per-record membership probability.

For each true class c the attacker histograms a metric (default: modified
entropy, un-negated, lower = member) of its shadow members and non-members
over shared bins (default 5, log-spaced between the class's min and max,
values floored at 1e-10).  A target record of class c with value v in bin b
gets

    r = h_in[c, b] / (h_in[c, b] + h_out[c, b] * (1 - prior) / prior)

with each histogram normalised by its own count (prior 0.5 gives the
reference's equal-priors score); an empty bin looks outward b-1, b+1, b-2, ...
(``tfmia.histograms``, bit-exact against the authors' code).

Since r is meant as a probability, :meth:`PrivacyRiskScore.calibration`
reports how well it matches the empirical member fraction, and
:meth:`PrivacyRiskScore.precision_recall` the precision and recall of
"member iff r > tau" for a list of tau.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .. import histograms as _histograms
from .._validate import check_fraction, check_positive_int
from .base import Attack, as_attack_inputs, calibration_inputs

__all__ = ["PrivacyRiskScore"]

_METRICS = ("modified_entropy", "entropy", "loss")


class PrivacyRiskScore(Attack):
    """Per-record membership probability from per-class shadow histograms.

    Args:
        metric: "modified_entropy" (default), "entropy" or "loss", all lower = member.
        bins: number of histogram bins per class (default 5).
        log_bins: log-spaced bins (default) or linear.
        member_prior: prior probability that a target record is a member (default 0.5).
    """

    def __init__(self, metric: str = "modified_entropy", *, bins: int = 5, log_bins: bool = True, member_prior: float = 0.5):
        if metric not in _METRICS:
            raise ValueError(f"metric must be one of {_METRICS}, got {metric!r}")
        self.metric = metric
        self.bins = check_positive_int(bins, "bins")
        self.log_bins = bool(log_bins)
        self.member_prior = check_fraction(member_prior, "member_prior")
        self._hist: _histograms.ClassHistograms | None = None

    @property
    def name(self) -> str:
        return f"privacy risk score ({self.metric})"

    def fit(self, members, non_members) -> "PrivacyRiskScore":
        members, non_members = calibration_inputs(members, non_members)
        self._hist = _histograms.ClassHistograms.fit(
            members.signals[self.metric],
            members.labels,
            non_members.signals[self.metric],
            non_members.labels,
            members.num_classes,
            bins=self.bins,
            log_bins=self.log_bins,
        )
        return self

    def score(self, records) -> np.ndarray:
        """The membership probability r of each record."""
        if self._hist is None:
            raise ValueError(f"{self.name} must be fitted before scoring (call fit with shadow data)")
        inputs = as_attack_inputs(records)
        if inputs.num_classes != self._hist.num_classes:
            raise ValueError(
                f"records have {inputs.num_classes} classes but {self.name} was fitted on {self._hist.num_classes}"
            )
        return self._hist.member_probability(inputs.signals[self.metric], inputs.labels, member_prior=self.member_prior)

    def threshold(self) -> float | None:
        # "member iff r > 0.5": the smallest double above 0.5 turns the >= rule into >.
        return math.nextafter(0.5, 1.0) if self._hist is not None else None

    def calibration(self, members, non_members, *, bins: int = 10) -> dict:
        """How well r matches the empirical member fraction.

        Records are grouped by r into ``bins`` equal-width bins on [0, 1];
        for each non-empty bin the mean r is compared with the fraction of
        members.  Returns the RMSE over non-empty bins (unweighted) and the
        count-weighted RMSE, plus the per-bin table.
        """
        check_positive_int(bins, "bins")
        members = as_attack_inputs(members, "members")
        non_members = as_attack_inputs(non_members, "non_members")
        r = np.concatenate([self.score(members), self.score(non_members)])
        is_member = np.concatenate([np.ones(len(members)), np.zeros(len(non_members))])
        which = np.minimum((r * bins).astype(np.int64), bins - 1)
        table = []
        for b in range(bins):
            mask = which == b
            if mask.any():
                table.append({"low": b / bins, "high": (b + 1) / bins, "count": int(mask.sum()),
                              "mean_score": float(r[mask].mean()), "member_fraction": float(is_member[mask].mean())})
        errors = np.array([t["mean_score"] - t["member_fraction"] for t in table])
        counts = np.array([t["count"] for t in table])
        return {
            "rmse": float(np.sqrt(np.mean(errors**2))),
            "weighted_rmse": float(np.sqrt(np.sum(counts * errors**2) / counts.sum())),
            "bins": table,
        }

    def precision_recall(self, members, non_members, taus: Sequence[float] = (0.5, 0.6, 0.7, 0.8, 0.9)) -> list[dict]:
        """Precision and recall of "member iff r > tau" for each tau (precision NaN when nothing is called a member)."""
        members = as_attack_inputs(members, "members")
        non_members = as_attack_inputs(non_members, "non_members")
        r_in, r_out = self.score(members), self.score(non_members)
        rows = []
        for tau in taus:
            tau = float(tau)
            tp, fp = int(np.sum(r_in > tau)), int(np.sum(r_out > tau))
            rows.append({"tau": tau, "precision": tp / (tp + fp) if tp + fp else math.nan,
                         "recall": tp / r_in.size, "predicted_members": tp + fp})
        return rows

    def config(self) -> dict:
        cfg = {"metric": self.metric, "bins": self.bins, "log_bins": self.log_bins, "member_prior": self.member_prior}
        if self._hist is not None:
            cfg["fallback_classes"] = np.flatnonzero(self._hist.fallback).tolist()
        return cfg

