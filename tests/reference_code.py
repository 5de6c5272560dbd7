"""Ports of the authors' reference code, shared by the tests that compare against them.

* Song & Mittal, ``membership_inference_attacks.py``: ``_thre_setting`` and the
  per-sample metrics (``_log_value``, ``_entr_comp``, ``_m_entr_comp``).
* Song & Mittal, ``privacy_risk_score_utils.py``: ``distrs_compute`` (per class)
  and ``risk_score_compute`` (``find_index``, ``score_calculate``).
"""

import numpy as np


def thre_setting(tr_values, te_values):
    """The authors' reference, verbatim (O(N^2))."""
    value_list = np.concatenate((tr_values, te_values))
    thre, max_acc = 0, 0
    for value in value_list:
        tr_ratio = np.sum(tr_values >= value) / (len(tr_values) + 0.0)
        te_ratio = np.sum(te_values < value) / (len(te_values) + 0.0)
        acc = 0.5 * (tr_ratio + te_ratio)
        if acc > max_acc:
            thre, max_acc = value, acc
    return thre


def thre_setting_sorted(tr_values, te_values):
    """The same rule vectorised with np.searchsorted, for sizes the loop cannot reach."""
    value_list = np.concatenate((tr_values, te_values))
    tr_sorted, te_sorted = np.sort(tr_values), np.sort(te_values)
    tr_ratio = (len(tr_values) - np.searchsorted(tr_sorted, value_list, "left")) / (len(tr_values) + 0.0)
    te_ratio = np.searchsorted(te_sorted, value_list, "left") / (len(te_values) + 0.0)
    acc = 0.5 * (tr_ratio + te_ratio)
    return value_list[np.argmax(acc)]  # argmax: the first maximiser


def reference_values(probs, labels, metric):
    """The reference's per-sample metrics from probabilities, oriented higher = member."""
    def log(p):  # _log_value
        return -np.log(np.maximum(p, 1e-30))

    rows = np.arange(labels.size)
    if metric == "confidence":
        return probs[rows, labels]
    if metric == "loss":
        return -log(probs[rows, labels])
    if metric == "entropy":
        return -np.sum(probs * log(probs), axis=1)
    if metric == "modified_entropy":
        mp, mlp = probs.copy(), log(1 - probs)
        mp[rows, labels] = 1 - probs[rows, labels]
        mlp[rows, labels] = log(probs[rows, labels])
        return -np.sum(mp * mlp, axis=1)
    return (probs.argmax(axis=1) == labels).astype(float)


def reference_class(tr_list, te_list, num_bins=5, log_bins=True, weight_dtype=None):
    """The authors' per-class histograms, verbatim (weights in float64 when weight_dtype is given)."""
    tr_list, te_list = tr_list.copy(), te_list.copy()
    if log_bins:
        small_delta = 1e-10
        tr_list[tr_list <= small_delta] = small_delta
        te_list[te_list <= small_delta] = small_delta
    all_list = np.concatenate((tr_list, te_list))
    max_v, min_v = np.amax(all_list), np.amin(all_list)
    if log_bins:
        bins = np.logspace(np.log10(min_v), np.log10(max_v), num_bins + 1)
    else:
        bins = np.linspace(min_v, max_v, num_bins + 1)
    w_tr = np.ones(len(tr_list), weight_dtype or tr_list.dtype) / float(len(tr_list))
    w_te = np.ones(len(te_list), weight_dtype or te_list.dtype) / float(len(te_list))
    h1, _ = np.histogram(tr_list, bins=bins, weights=w_tr)
    h2, _ = np.histogram(te_list, bins=bins, weights=w_te)
    return bins, h1, h2


def find_index(bins, value):
    if value >= bins[-1]:
        return len(bins) - 2
    if value <= bins[0]:
        return 0
    return np.argwhere(bins <= value)[-1][0]


def score_calculate(tr_distr, te_distr, ind):
    if tr_distr[ind] + te_distr[ind] != 0:
        return tr_distr[ind] / (tr_distr[ind] + te_distr[ind])
    for t_n in range(1, len(tr_distr)):
        t_ind = ind - t_n
        if t_ind >= 0 and tr_distr[t_ind] + te_distr[t_ind] != 0:
            return tr_distr[t_ind] / (tr_distr[t_ind] + te_distr[t_ind])
        t_ind = ind + t_n
        if t_ind < len(tr_distr) and tr_distr[t_ind] + te_distr[t_ind] != 0:
            return tr_distr[t_ind] / (tr_distr[t_ind] + te_distr[t_ind])


def reference_fit(vin, lin, vout, lout, num_classes, bins=5, log_bins=True, weight_dtype=None):
    """Per class the reference; classes lacking a side take the pooled histograms."""
    pooled = reference_class(vin, vout, bins, log_bins, weight_dtype)
    return [
        reference_class(vin[lin == c], vout[lout == c], bins, log_bins, weight_dtype)
        if np.any(lin == c) and np.any(lout == c)
        else pooled
        for c in range(num_classes)
    ]


def reference_scores(fitted, values, labels):
    return np.array([score_calculate(fitted[c][1], fitted[c][2], find_index(fitted[c][0], v)) for v, c in zip(values, labels)])
