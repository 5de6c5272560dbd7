"""Benchmark cases for the sorting kernels: thresholds, ROC/AUC, risk histograms.

References are what a user would otherwise run:

* ``thresholds_global``: the rule evaluated at every candidate in turn, O(N^2)
  (``tests/oracles.py``, the tests' brute-force oracle; only at N = 1e4), and a
  scikit-learn sweep (``roc_curve`` then the argmax of the balanced accuracy
  ``0.5 * (tpr + 1 - fpr)``);
* ``thresholds_class``: that sklearn sweep once per class on the class's records;
* ``roc_auc``: ``sklearn.metrics.roc_curve`` + ``roc_auc_score``;
* ``risk_histograms``: per class the floor, the edges and ``np.histogram``,
  then one table of scores per class (the outward search resolved per bin) and
  a vectorised bin lookup for the targets.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from _harness import Case
from oracles import threshold_by_enumeration  # tests/oracles.py
from tfmia.histograms import ClassHistograms
from tfmia.metrics import auc
from tfmia.metrics import roc_curve as tfmia_roc_curve
from tfmia.thresholds import best_threshold, class_thresholds

BRUTE_FORCE_N = 10_000


def class_labels(rng, n, num_classes):
    """Balanced shuffled labels: every class present when n >= num_classes."""
    return rng.permutation(np.arange(n) % num_classes)


def shadow_scores(rng, n, num_classes):
    """Members score a little higher; two decimals give realistic ties."""
    half = n // 2
    return {
        "values_in": np.round(rng.normal(0.5, 1.0, half), 2),
        "labels_in": class_labels(rng, half, num_classes),
        "values_out": np.round(rng.normal(0.0, 1.0, n - half), 2),
        "labels_out": class_labels(rng, n - half, num_classes),
        "num_classes": num_classes,
    }


def sklearn_threshold(values_in, values_out):
    scores = np.concatenate((values_in, values_out))
    is_member = np.r_[np.ones(len(values_in), bool), np.zeros(len(values_out), bool)]
    fpr, tpr, thresholds = roc_curve(is_member, scores, drop_intermediate=False)
    return thresholds[np.argmax(0.5 * (tpr + 1 - fpr))]


def sklearn_class_thresholds(x):
    return np.array(
        [
            sklearn_threshold(x["values_in"][x["labels_in"] == c], x["values_out"][x["labels_out"] == c])
            for c in range(x["num_classes"])
        ]
    )


def ours_class_thresholds(x):
    return class_thresholds(x["values_in"], x["labels_in"], x["values_out"], x["labels_out"], x["num_classes"])


def threshold_cases(ns, cs):
    cases = [
        Case(
            id=f"thresholds_global-bruteforce-n{BRUTE_FORCE_N}",
            kernel="thresholds_global",
            n=BRUTE_FORCE_N,
            c=None,
            setup=lambda rng: shadow_scores(rng, BRUTE_FORCE_N, 1),
            ours=lambda x: best_threshold(x["values_in"], x["values_out"]),
            reference=lambda x: threshold_by_enumeration(x["values_in"], x["values_out"]),
            reference_name="brute-force loop",
            copy_keys=("values_in", "values_out"),
            output_bytes=lambda x: 8,
            repeats=3,
        )
    ]
    for n in ns:
        cases.append(
            Case(
                id=f"thresholds_global-sklearn-n{n}",
                kernel="thresholds_global",
                n=n,
                c=None,
                setup=lambda rng, n=n: shadow_scores(rng, n, 1),
                ours=lambda x: best_threshold(x["values_in"], x["values_out"]),
                reference=lambda x: sklearn_threshold(x["values_in"], x["values_out"]),
                reference_name="sklearn roc_curve sweep",
                copy_keys=("values_in", "values_out"),
                output_bytes=lambda x: 8,
            )
        )
        for c in cs:
            cases.append(
                Case(
                    id=f"thresholds_class-n{n}-c{c}",
                    kernel="thresholds_class",
                    n=n,
                    c=c,
                    setup=lambda rng, n=n, c=c: shadow_scores(rng, n, c),
                    ours=ours_class_thresholds,
                    reference=sklearn_class_thresholds,
                    reference_name="sklearn roc_curve per class",
                    copy_keys=("values_in", "labels_in", "values_out", "labels_out"),
                    output_bytes=lambda x: 8 * x["num_classes"],
                )
            )
    return cases


def roc_inputs(rng, n):
    is_member = rng.random(n) < 0.5
    return {"scores": rng.normal(is_member * 0.5, 1.0), "is_member": is_member}


def roc_cases(ns):
    return [
        Case(
            id=f"roc_auc-n{n}",
            kernel="roc_auc",
            n=n,
            c=None,
            setup=lambda rng, n=n: roc_inputs(rng, n),
            ours=lambda x: (tfmia_roc_curve(x["scores"], x["is_member"]), auc(x["scores"], x["is_member"])),
            reference=lambda x: (
                roc_curve(x["is_member"], x["scores"], drop_intermediate=False),
                roc_auc_score(x["is_member"], x["scores"]),
            ),
            reference_name="sklearn roc_curve + roc_auc_score",
            copy_keys=("scores", "is_member"),
            output_bytes=lambda x: 3 * 8 * (len(np.unique(x["scores"])) + 1) + 8,
        )
        for n in ns
    ]


def risk_inputs(rng, n, num_classes):
    """Modified-entropy-like shadow and target values (many near 0, long tail)."""

    def values(size, scale):
        return rng.exponential(scale, size) * 10.0 ** rng.integers(-12, 1, size)

    half = n // 2
    return {
        "values_in": values(half, 1.0),
        "labels_in": class_labels(rng, half, num_classes),
        "values_out": values(n - half, 3.0),
        "labels_out": class_labels(rng, n - half, num_classes),
        "targets": values(n, 2.0),
        "target_labels": rng.integers(0, num_classes, n),
        "num_classes": num_classes,
    }


def score_table(h_in, h_out):
    """``h_in / (h_in + h_out)`` of every bin, an empty bin taking its nearest non-empty neighbour's (below first)."""
    bins = len(h_in)
    mass = h_in + h_out
    if not mass.any():
        return np.full(bins, 0.5)
    table = np.empty(bins)
    for b in range(bins):
        nearest = min((abs(k - b), k > b, k) for k in np.flatnonzero(mass))[2]  # ties: the lower bin
        table[b] = h_in[nearest] / mass[nearest]
    return table


def numpy_risk(x, num_bins=5):
    """Log-binned risk scores with numpy: per class edges and histograms, then a table lookup per target."""
    floor = 1e-10
    num_classes = x["num_classes"]
    v_in, v_out = np.maximum(x["values_in"], floor), np.maximum(x["values_out"], floor)
    edges = np.empty((num_classes, num_bins + 1))
    table = np.empty((num_classes, num_bins))
    for c in range(num_classes):
        own_in, own_out = v_in[x["labels_in"] == c], v_out[x["labels_out"] == c]
        both = np.concatenate((own_in, own_out))
        edges[c] = np.logspace(np.log10(both.min()), np.log10(both.max()), num_bins + 1)
        h_in = np.histogram(own_in, bins=edges[c], weights=np.full(own_in.size, 1.0 / own_in.size))[0]
        h_out = np.histogram(own_out, bins=edges[c], weights=np.full(own_out.size, 1.0 / own_out.size))[0]
        table[c] = score_table(h_in, h_out)
    v, lab = x["targets"], x["target_labels"]
    target_edges = edges[lab]
    inner = np.count_nonzero(target_edges[:, 1:-1] <= v[:, None], axis=1)  # edges 1..B-1 at or below v
    index = np.where(v >= target_edges[:, -1], num_bins - 1, np.where(v <= target_edges[:, 0], 0, inner))
    return table[lab, index]


def ours_risk(x):
    h = ClassHistograms.fit(x["values_in"], x["labels_in"], x["values_out"], x["labels_out"], x["num_classes"])
    return h.member_probability(x["targets"], x["target_labels"])


def risk_cases(ns, cs):
    return [
        Case(
            id=f"risk_histograms-n{n}-c{c}",
            kernel="risk_histograms",
            n=n,
            c=c,
            setup=lambda rng, n=n, c=c: risk_inputs(rng, n, c),
            ours=ours_risk,
            reference=numpy_risk,
            reference_name="numpy (np.histogram per class, vectorised lookup)",
            copy_keys=("values_in", "labels_in", "values_out", "labels_out", "targets", "target_labels"),
            output_bytes=lambda x: 8 * len(x["targets"]),
        )
        for n in ns
        for c in cs
    ]


def cases(ns, cs):
    return threshold_cases(ns, cs) + roc_cases(ns) + risk_cases(ns, cs)
