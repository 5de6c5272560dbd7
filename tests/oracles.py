"""Brute-force oracles for the Song & Mittal rules, written from ALGORITHMS.md.

Each function states one rule as directly as numpy allows, with no attempt at
speed beyond what the tests need, and does the arithmetic the rule names, so
that tfmia's fast kernels can be compared with them bit for bit:

* :func:`threshold_by_enumeration` / :func:`threshold_by_counting`: the
  balanced-accuracy threshold (candidates are the observed values, members
  first; objective ``0.5 * (#{in >= t} / |in| + #{out < t} / |out|)`` in
  float64; the first maximiser in candidate order).
* :func:`member_oriented_metric`: the per-sample metrics from probability rows,
  oriented so that higher means member.
* :func:`class_histograms` / :func:`risk_scores`: the privacy risk score's
  per-class histograms and the score of a value in its bin.
"""

import numpy as np

LOG_FLOOR = 1e-30  # every log argument of the metrics is floored here
LOG_BIN_FLOOR = 1e-10  # values are floored here before log-spaced binning


# ---- balanced-accuracy threshold -------------------------------------------


def _common_candidates(values_in, values_out):
    """Members' then non-members' values, both sides in the candidates' (promoted) dtype."""
    candidates = np.concatenate((values_in, values_out))
    return candidates, values_in.astype(candidates.dtype), values_out.astype(candidates.dtype)


def balanced_accuracy(values_in, values_out, t):
    """``0.5 * (fraction of members >= t + fraction of non-members < t)``, each fraction count / size in float64."""
    members_called = np.count_nonzero(values_in >= t) / len(values_in)
    non_members_missed = np.count_nonzero(values_out < t) / len(values_out)
    return 0.5 * (members_called + non_members_missed)


def threshold_by_enumeration(values_in, values_out):
    """Evaluate the objective at every candidate, one by one; return the first maximiser (O(N^2))."""
    candidates, values_in, values_out = _common_candidates(values_in, values_out)
    objective = [balanced_accuracy(values_in, values_out, t) for t in candidates]
    return candidates[int(np.argmax(objective))]  # argmax: the first of equal maxima


def threshold_by_counting(values_in, values_out):
    """The same objective with the counts read off sorted copies (binary search), for large inputs."""
    candidates, values_in, values_out = _common_candidates(values_in, values_out)
    members_below = np.searchsorted(np.sort(values_in), candidates, side="left")  # #{in < t}
    non_members_below = np.searchsorted(np.sort(values_out), candidates, side="left")  # #{out < t}
    members_called = (len(values_in) - members_below) / len(values_in)
    non_members_missed = non_members_below / len(values_out)
    objective = 0.5 * (members_called + non_members_missed)
    return candidates[int(np.argmax(objective))]


def per_class_thresholds(values_in, labels_in, values_out, labels_out, num_classes, rule=threshold_by_enumeration):
    """One threshold per class; a class lacking members or non-members takes the global threshold."""
    thresholds = []
    for c in range(num_classes):
        own_in, own_out = values_in[labels_in == c], values_out[labels_out == c]
        if own_in.size and own_out.size:
            thresholds.append(rule(own_in, own_out))
        else:
            thresholds.append(rule(values_in, values_out))
    return np.array(thresholds, dtype=np.float64)


# ---- per-sample metrics ------------------------------------------------------


def _neg_log(x):
    return -np.log(np.maximum(x, LOG_FLOOR))


def member_oriented_metric(probs, labels, metric):
    """A metric of probability rows, in their dtype, signed so that higher means member.

    confidence ``p_y``; loss ``-(-log p_y)``; entropy ``-(-sum_i p_i log p_i)``;
    modified entropy ``-Mentr`` with ``Mentr = -(1 - p_y) log p_y - sum_{i != y} p_i log(1 - p_i)``;
    correctness ``argmax p == y`` as 0 / 1.  Every log argument is floored at 1e-30.
    """
    is_label = np.arange(probs.shape[1]) == labels[:, None]
    p_y = probs[is_label]
    if metric == "confidence":
        return p_y
    if metric == "loss":
        return -_neg_log(p_y)
    if metric == "entropy":
        return -np.sum(probs * _neg_log(probs), axis=1)
    if metric == "modified_entropy":
        weight = np.where(is_label, 1 - probs, probs)  # (1 - p_y) on the label, p_i elsewhere
        log_argument = np.where(is_label, probs, 1 - probs)  # p_y on the label, 1 - p_i elsewhere
        return -np.sum(weight * _neg_log(log_argument), axis=1)
    if metric == "correctness":
        return (probs.argmax(axis=1) == labels).astype(np.float64)
    raise ValueError(f"unknown metric {metric!r}")


# ---- privacy-risk-score histograms -------------------------------------------


def class_histograms(values_in, values_out, bins=5, log_bins=True):
    """Shared edges and the two normalised histograms of one class: ``(edges, h_in, h_out)``.

    Log bins: values at or below 1e-10 are raised to 1e-10, edges are ``bins + 1``
    points log-spaced from the smallest to the largest value (``np.logspace``
    between their base-10 logs); linear bins: ``np.linspace`` between them.
    Edges are computed in the values' dtype.  Binning is numpy's
    (``np.histogram``: half-open bins, the last one closed) and every value
    weighs ``1 / (its side's count)`` in float64, so each histogram sums to 1
    over the values that fall within the edges.
    """
    if log_bins:
        values_in = np.maximum(values_in, LOG_BIN_FLOOR)
        values_out = np.maximum(values_out, LOG_BIN_FLOOR)
    everything = np.concatenate((values_in, values_out))
    lo, hi = everything.min(), everything.max()
    if log_bins:
        edges = np.logspace(np.log10(lo), np.log10(hi), bins + 1)
    else:
        edges = np.linspace(lo, hi, bins + 1)

    def normalised(values):
        weights = np.full(len(values), 1.0) / len(values)
        return np.histogram(values, bins=edges, weights=weights)[0]

    return edges, normalised(values_in), normalised(values_out)


def fit_class_histograms(values_in, labels_in, values_out, labels_out, num_classes, bins=5, log_bins=True):
    """:func:`class_histograms` of every class; a class lacking either side gets those of all values pooled."""
    pooled = class_histograms(values_in, values_out, bins, log_bins)
    fitted = []
    for c in range(num_classes):
        own_in, own_out = values_in[labels_in == c], values_out[labels_out == c]
        fitted.append(class_histograms(own_in, own_out, bins, log_bins)
                      if own_in.size and own_out.size else pooled)
    return fitted


def bin_of(edges, value):
    """The bin a target value is scored in.

    At or beyond the upper edge: the last bin (checked first, so a value equal to
    a collapsed range lands there); at or below the lower edge: the first bin;
    otherwise the bin whose lower edge is the last edge <= value.
    """
    bins = len(edges) - 1
    if value >= edges[-1]:
        return bins - 1
    if value <= edges[0]:
        return 0
    return max(b for b in range(bins) if edges[b] <= value)


def outward_order(start, bins):
    """start, start - 1, start + 1, start - 2, start + 2, ... within [0, bins)."""
    order = [start]
    for step in range(1, bins):
        order += [b for b in (start - step, start + step) if 0 <= b < bins]
    return order


def risk_score(edges, h_in, h_out, value, member_prior=0.5):
    """``h_in / (h_in + h_out)`` in the value's bin, else in the nearest bin holding mass, else the prior."""
    for b in outward_order(bin_of(edges, value), len(h_in)):
        if h_in[b] + h_out[b] != 0:
            return h_in[b] / (h_in[b] + h_out[b] * ((1 - member_prior) / member_prior))
    return member_prior


def risk_scores(fitted, values, labels, member_prior=0.5):
    """:func:`risk_score` of each value with its class's histograms from :func:`fit_class_histograms`."""
    return np.array([risk_score(*fitted[c], v, member_prior) for v, c in zip(values, labels)], dtype=np.float64)
