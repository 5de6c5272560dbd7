"""Property-based fuzzing of every tfmia._core function and its Python wrapper.

Each target starts from a small valid call (a random problem that must
succeed) and replaces up to two of its arguments with hostile values: other
dtypes (integers, bool, float16, complex, object, strings), layouts (strided,
Fortran order, negative strides, 0-d, 3-D), NaN/Inf, values near the float64
limits, empty arrays, huge declared sizes (class and bin counts, n, steps up
to 2**70), out-of-range labels, mismatched lengths, read-only arrays, junk
(None, ragged lists, dicts).  The only acceptable outcomes:

* a ``ValueError`` / ``TypeError`` whose message names an argument of the
  function (pybind11's own ``TypeError`` for an argument it cannot convert
  lists the signature, so it names them all), or
* a result of the right shape whose numbers are finite, except where the
  function documents a non-finite value (a ROC's leading +inf threshold, NaN
  accuracy of a fallback class, NaN skewness of a constant row, ...).

Anything else -- another exception, ``MemoryError``, a wrong shape, a silent
NaN -- fails the test.  A memory bomb cannot take the test process with it:
the fuzz tests run under an address-space limit a few GiB above what the
process holds, so an absurd allocation raises ``MemoryError`` (a failure)
instead of summoning the OOM killer.  A crash of the interpreter cannot be
caught in-process; the C++ kernels are checked for out-of-bounds reads by
running this file against a build with ``-fsanitize=address,undefined``.

Examples per target: 50 in the default ``ci`` profile (derandomized: the same
examples on every run); ``HYPOTHESIS_PROFILE=long`` runs 5000 random ones per
target (about 20 minutes on two cores).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import resource
import warnings
from typing import Any, Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tfmia import _core
from tfmia.attacks.rmia import rmia_scores
from tfmia.bisection import BisectionState
from tfmia.gradstats import GradientStats
from tfmia.histograms import ClassHistograms
from tfmia.metrics import LowFPRWarning, auc, clopper_pearson, low_fpr_index, roc_counts, roc_curve, tpr_at_fpr
from tfmia.signals import SIGNAL_NAMES, compute, member_scores
from tfmia.thresholds import apply_thresholds, best_threshold, class_thresholds, fit_class_thresholds

settings.register_profile(
    "ci", max_examples=50, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "long", max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")

# ---- hostile values ------------------------------------------------------------------------------

SIZES = [-(2**63), -1, 0, 1, 2, 3, 7, 2**20, 2**24 + 1, 2**31, 2**62, 2**63 - 1, 2**64, 2**70]
JUNK = [None, "abc", b"\x00", 3.5, [[1.0, 2.0], [3.0]], {"a": 1}, (), [], object()]
SPECIAL_FLOATS = [np.nan, np.inf, -np.inf, 1.7976931348623157e308, -1.7976931348623157e308, 1e300, -1e300, 1e-310,
                  5e-324, -0.0, 0.0, 2.0, -1.0]
SPECIAL_LABELS = [-1, -(2**62), 2**40, 2**62, 2**63 - 1]
DTYPES = [np.int8, np.int64, np.uint64, np.bool_, np.float16, np.float32, np.float64, np.complex64, np.complex128,
          object, "U3", "S2", "datetime64[s]"]


def _cast(a: np.ndarray, dtype) -> np.ndarray:
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            return a.astype(dtype)
        except (TypeError, ValueError, OverflowError):
            return np.asarray(a.tolist(), dtype=object)


@st.composite
def hostile_array(draw, a: np.ndarray, kind: str):
    """A hostile variant of the valid array ``a`` (kind: floats, labels, bools)."""
    a = np.array(a, copy=True)
    ops = ["dtype", "layout", "value", "empty", "length", "readonly", "junk"]
    op = draw(st.sampled_from(ops))
    if op == "dtype":
        return _cast(a, draw(st.sampled_from(DTYPES)))
    if op == "layout":
        how = draw(st.sampled_from(["strided", "fortran", "reversed", "0-d", "3-D", "transposed"]))
        if how == "strided":
            return np.repeat(a, 2, axis=0)[::2]
        if how == "fortran":
            return np.asfortranarray(np.stack([a, a], axis=-1))
        if how == "reversed":
            return a[::-1]
        if how == "0-d":
            return a.reshape(-1)[0] if a.size else np.float64(1.0)
        if how == "3-D":
            return a.reshape(a.shape + (1,) * (3 - a.ndim)) if a.ndim <= 3 else a
        return a.T
    if op == "value" and a.size:
        flat = a.reshape(-1)
        if kind == "labels":
            special = draw(st.sampled_from(SPECIAL_LABELS))
        elif kind == "bools":
            special = draw(st.sampled_from([2, -1, 0.5, np.nan]))
        else:
            special = draw(st.sampled_from(SPECIAL_FLOATS))
        if kind != "floats":
            flat = _cast(flat, np.float64 if isinstance(special, float) else np.int64)
        else:
            flat = flat.astype(np.float64) if flat.dtype != np.float32 else flat
        index = draw(st.integers(0, flat.size - 1))
        with np.errstate(all="ignore"):
            flat[index] = special
            if draw(st.booleans()):
                flat[:] = special  # every entry
        return flat.reshape(a.shape)
    if op == "empty":
        return a[:0]
    if op == "length" and a.ndim:
        return a[:-1] if draw(st.booleans()) and len(a) > 1 else np.concatenate([a, a[:1]])
    if op == "readonly":
        a.flags.writeable = False
        return a
    return draw(st.sampled_from(JUNK))


def hostile_scalar(kind: str):
    if kind == "size":
        return st.sampled_from(SIZES + [True, 2.5, "3", None, np.int64(5), np.uint64(2**64 - 1)])
    if kind == "real":
        return st.sampled_from([np.nan, np.inf, -np.inf, -1.0, 0.0, 1e-300, 1e300, 0.5, 1.0, "0.5", None, True, [0.1]])
    if kind == "flag":
        return st.sampled_from([True, False, 0, 1, 2, None, "yes", np.bool_(True), np.array([True, False])])
    if kind == "device":
        return st.sampled_from(["cuda", "gpu", "", None, 0, ["cpu"], "CPU"])
    if kind == "name":
        return st.sampled_from(["exp", "log", "", "nope", None, 3, "avx2", "baseline", "x" * 1000, "loss", "sd"])
    raise AssertionError(kind)


# ---- targets -------------------------------------------------------------------------------------


@dataclasses.dataclass
class Target:
    """A function under fuzzing.

    ``baseline(rng)`` returns valid keyword arguments; ``kinds`` gives each
    argument's kind (floats, labels, bools arrays; size, real, flag, device,
    name scalars; junk for anything else); ``check(kwargs, result)`` asserts
    the result is right-shaped and finite; ``aliases`` are further words a
    message may use for an argument (the wrapper's name for a core argument).
    """

    call: Callable[..., Any]
    baseline: Callable[[np.random.Generator], dict]
    kinds: dict[str, str]
    check: Callable[[dict, Any], None]
    aliases: tuple[str, ...] = ()


def finite(*arrays):
    for a in arrays:
        assert np.all(np.isfinite(np.asarray(a, dtype=np.float64))), a


def problem(rng, n=None, c=None):
    """A small shadow-data problem: scores with labels on both sides."""
    n = n or int(rng.integers(2, 9))
    c = c or int(rng.integers(1, 4))
    return rng.normal(size=n), rng.integers(0, c, n), c


def probs(rng, n, c):
    return rng.dirichlet(np.ones(c), size=n)


# signals ---------------------------------------------------------------------------------------


def signals_baseline(rng):
    n, c = int(rng.integers(1, 6)), int(rng.integers(2, 6))
    from_logits = bool(rng.integers(0, 2))
    preds = rng.normal(size=(n, c)) * 5 if from_logits else probs(rng, n, c)
    return dict(preds=preds, labels=rng.integers(0, c, n), from_logits=from_logits, sum_tol=1e-3)


def check_signals(kwargs, result):
    n = np.asarray(kwargs["preds"]).shape[0]
    assert set(result) == set(SIGNAL_NAMES)
    for name in SIGNAL_NAMES:
        assert result[name].shape == (n,), name
        finite(result[name])


SIGNALS_KINDS = dict(preds="floats", labels="labels", from_logits="flag", sum_tol="real")


def core_signals(preds, labels, from_logits, sum_tol, use_cuda=False):
    return dict(_core.signals(preds, labels, from_logits, sum_tol, use_cuda))


def member_scores_baseline(rng):
    n = int(rng.integers(1, 5))
    return dict(signals={k: rng.random(n) for k in SIGNAL_NAMES}, name=str(rng.choice(SIGNAL_NAMES)))


def check_member_scores(kwargs, result):
    assert result.shape == (len(kwargs["signals"]["loss"]),)
    finite(result)


# thresholds ------------------------------------------------------------------------------------


def fit_baseline(rng):
    vin, lin, c = problem(rng)
    vout, lout, _ = problem(rng, c=c)
    return dict(values_in=vin, labels_in=lin, values_out=vout, labels_out=lout, num_classes=c)


FIT_KINDS = dict(values_in="floats", labels_in="labels", values_out="floats", labels_out="labels", num_classes="size",
                 device="device")


def check_fit(kwargs, fit):
    c = kwargs["num_classes"]
    assert fit.thresholds.shape == fit.fallback.shape == fit.balanced_accuracy.shape == (c,)
    finite(fit.thresholds, fit.global_threshold, fit.global_balanced_accuracy, fit.balanced_accuracy[~fit.fallback])
    assert np.isnan(fit.balanced_accuracy[fit.fallback]).all()


def check_class_thresholds(kwargs, thresholds):
    assert thresholds.shape == (kwargs["num_classes"],)
    finite(thresholds)


def core_fit_baseline(rng):
    args = {k: np.asarray(v) for k, v in fit_baseline(rng).items()}
    for side in ("in", "out"):
        args[f"values_{side}"] = args[f"values_{side}"].astype(np.float64)
        args[f"labels_{side}"] = args[f"labels_{side}"].astype(np.int64)
    return dict(args, num_classes=int(args["num_classes"]), want_global=bool(rng.integers(0, 2)), use_cuda=False)


def check_core_fit(kwargs, result):
    threshold, accuracy, fallback, global_threshold, global_accuracy = result
    c = kwargs["num_classes"]
    assert threshold.shape == accuracy.shape == fallback.shape == (c,)
    finite(threshold, accuracy[~fallback])
    assert np.isnan(accuracy[fallback]).all()
    if fallback.any() or kwargs["want_global"]:
        finite(global_threshold, global_accuracy)


def apply_baseline(rng):
    v, lab, c = problem(rng)
    return dict(values=v, labels=lab, thresholds=rng.normal(size=c))


def check_apply(kwargs, member):
    assert member.dtype == np.bool_ and member.shape == (len(kwargs["values"]),)


# metrics ---------------------------------------------------------------------------------------


def roc_baseline(rng):
    n = int(rng.integers(2, 10))
    member = rng.integers(0, 2, n).astype(bool)
    member[:2] = [True, False]
    return dict(scores=np.round(rng.normal(size=n), 1), is_member=member)


def check_curve(kwargs, result):
    x, y, thresholds = result
    assert x.shape == y.shape == thresholds.shape and x.ndim == 1 and len(x) >= 2
    assert thresholds[0] == np.inf
    finite(x, y, thresholds[1:])


def check_auc(kwargs, value):
    assert isinstance(value, float) and 0.0 <= value <= 1.0


def tpr_baseline(rng):
    return dict(roc_baseline(rng), fpr=[0.0, 0.5, 1.0][: int(rng.integers(1, 4))])


def check_tpr(kwargs, value):
    v = np.asarray(value, dtype=np.float64)
    targets = np.asarray(kwargs["fpr"], dtype=np.float64)
    assert v.shape == targets.shape
    assert np.all(np.isnan(v) | ((v >= 0) & (v <= 1)))


def low_fpr_baseline(rng):
    fps, _, _ = roc_counts(**roc_baseline(rng))
    return dict(fps=fps, targets=rng.random(int(rng.integers(1, 4))))


def check_low_fpr(kwargs, result):
    index, too_low = result
    fps = np.asarray(kwargs["fps"])
    assert index.shape == too_low.shape == np.shape(kwargs["targets"])
    assert np.all((index >= -1) & (index < len(fps)))


def clopper_baseline(rng):
    n = rng.integers(1, 50, size=int(rng.integers(1, 4)))
    return dict(k=rng.integers(0, n + 1), n=n, confidence=float(rng.uniform(0.5, 0.99)))


def check_clopper(kwargs, result):
    lo, hi = result
    finite(lo, hi)
    assert np.all((0 <= np.asarray(lo)) & (np.asarray(lo) <= np.asarray(hi)) & (np.asarray(hi) <= 1))


# gradient statistics -----------------------------------------------------------------------------


def gradstats_baseline(rng):
    n = int(rng.integers(1, 4))
    return dict(n=n, chunk=rng.normal(size=(n,) + tuple(rng.integers(1, 4, size=int(rng.integers(1, 3))))))


def gradstats_call(n, chunk, device="cpu"):
    stats = GradientStats(n, device=device)
    stats.update(chunk)
    stats.update(chunk)
    return stats.finalize()


def check_gradstats(kwargs, table):
    assert table.shape == (kwargs["n"], 7)
    finite(table[:, 2:5])  # skewness / kurtosis: NaN for a constant row, as scipy
    # l1 and l2 are inf (with a RuntimeWarning) only where l1 itself exceeds float64.
    with np.errstate(over="ignore"):  # inf is a fine answer to "above max / 4?"
        quarter_l1 = 2 * np.abs(np.asarray(kwargs["chunk"], np.float64).reshape(kwargs["n"], -1) / 4).sum(axis=1)
    assert np.array_equal(np.isinf(table[:, 0]), quarter_l1 > np.finfo(np.float64).max / 4)
    assert not np.any(np.isinf(table[:, 1]) & ~np.isinf(table[:, 0]))  # l2 <= l1


def core_gradstats_baseline(rng):
    n, p = int(rng.integers(1, 4)), int(rng.integers(1, 5))
    state = np.zeros((n, 10))
    _core.gradstats_update(state, 0, rng.normal(size=(n, p)))
    return dict(state=state, count=p, chunk=rng.normal(size=(n, int(rng.integers(1, 5)))))


def check_core_gradstats_update(kwargs, result):
    assert result is None
    table = _core.gradstats_finalize(kwargs["state"], kwargs["count"] + kwargs["chunk"].shape[1])
    assert table.shape == (kwargs["state"].shape[0], 7)
    finite(table[:, 2:5])  # l1 and l2 of a state row may exceed float64 (documented: inf)


def core_finalize_baseline(rng):
    args = core_gradstats_baseline(rng)
    return dict(state=args["state"], count=args["count"])


def check_core_finalize(kwargs, table):
    assert table.shape == (kwargs["state"].shape[0], 7)
    finite(table[:, 2:5])


# bisection --------------------------------------------------------------------------------------


def bisection_baseline(rng):
    n, d = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    x0 = rng.normal(size=(n, d))
    return dict(x0=x0, lo=x0.copy(), hi=x0 + rng.normal(size=(n, d)), orig_class=rng.integers(0, 3, n),
                mid_probs=probs(rng, n, 3), theta=float(rng.choice([1e-4, 0.5])), max_steps=int(rng.integers(1, 4)))


def bisection_call(x0, lo, hi, orig_class, mid_probs, theta, max_steps, device="cpu"):
    state = BisectionState(x0, lo, hi, orig_class, theta, max_steps=max_steps, device=device)
    state.update(mid_probs)
    return state


def check_bisection(kwargs, state):
    n = np.shape(kwargs["x0"])[0]
    assert state.distance.shape == state.steps.shape == (n,)
    finite(state.midpoints())
    assert np.isnan(state.distance[~state.converged]).all()
    # inf (with a RuntimeWarning) only where the distance exceeds float64: 2 ||mid/2 - x0/2|| > max.
    half = (state._mid / 2 - state._x0 / 2)[state.converged]
    scale = np.abs(half).max(axis=1, initial=0.0)
    half_norm = scale * np.sqrt(((half / np.where(scale > 0, scale, 1.0)[:, None]) ** 2).sum(axis=1))
    assert np.array_equal(np.isinf(state.distance[state.converged]), half_norm > np.finfo(np.float64).max / 2)


def core_bisection_baseline(rng):
    n, d, c = int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(2, 4))
    x0 = rng.normal(size=(n, d))
    lo, hi = x0.copy(), x0 + rng.normal(size=(n, d))
    active = rng.integers(0, 2, n).astype(bool)
    active[0] = True
    rows = np.flatnonzero(active)
    return dict(x0=x0, lo=lo, hi=hi, mid=(lo + hi) / 2, rows=rows, mid_probs=probs(rng, len(rows), c),
                orig_class=rng.integers(0, c, n), active=active, converged=np.zeros(n, bool),
                distance=np.full(n, np.nan), steps=np.zeros(n, np.int64), theta=float(rng.choice([1e-4, 0.5])),
                max_steps=int(rng.integers(1, 4)), use_cuda=False)


CORE_BISECTION_KINDS = dict(x0="floats", lo="floats", hi="floats", mid="floats", rows="labels", mid_probs="floats",
                            orig_class="labels", active="bools", converged="bools", distance="floats",
                            steps="labels", theta="real", max_steps="size", use_cuda="flag")


def check_core_bisection(kwargs, result):
    assert result is None
    rows = kwargs["rows"]  # the queried records: the step reads and writes only theirs
    finite(kwargs["distance"][rows[kwargs["converged"][rows]]], kwargs["lo"][rows], kwargs["hi"][rows],
           kwargs["mid"][rows])


# risk score histograms -------------------------------------------------------------------------


def histograms_baseline(rng):
    return dict(fit_baseline(rng), bins=int(rng.integers(1, 6)), log_bins=bool(rng.integers(0, 2)))


def histograms_call(values_in, labels_in, values_out, labels_out, num_classes, bins, log_bins, device="cpu"):
    return ClassHistograms.fit(values_in, labels_in, values_out, labels_out, num_classes, bins=bins,
                               log_bins=log_bins, device=device)


def check_histograms(kwargs, h):
    c, bins = kwargs["num_classes"], kwargs["bins"]
    assert h.edges.shape == (c, bins + 1) and h.h_in.shape == h.h_out.shape == (c, bins)
    finite(h.edges, h.h_in, h.h_out)


def risk_scores_baseline(rng):
    h = histograms_call(**histograms_baseline(rng))
    v, lab, _ = problem(rng, c=h.num_classes)
    return dict(histograms=h, values=v * 3, labels=lab, member_prior=float(rng.uniform(0.1, 0.9)))


def risk_scores_call(histograms, values, labels, member_prior, device="cpu"):
    return histograms.member_probability(values, labels, member_prior=member_prior, device=device)


def check_risk_scores(kwargs, r):
    assert r.shape == (len(kwargs["values"]),)
    finite(r)
    assert np.all((r >= 0) & (r <= 1))


def core_ranges_baseline(rng):
    args = core_fit_baseline(rng)
    del args["want_global"], args["use_cuda"]
    return dict(args, log_bins=bool(rng.integers(0, 2)))


def check_core_ranges(kwargs, result):
    lo, hi, n_in, n_out = result
    c = kwargs["num_classes"]
    assert lo.shape == hi.shape == n_in.shape == n_out.shape == (c,)
    present = (n_in + n_out) > 0
    finite(lo[present], hi[present])
    assert np.all(lo[~present] == np.inf) and np.all(hi[~present] == -np.inf)


def core_histograms_baseline(rng):
    args = core_ranges_baseline(rng)
    h = histograms_call(**{k: v for k, v in args.items() if k != "log_bins"}, bins=int(rng.integers(1, 5)),
                        log_bins=args["log_bins"])
    pooled = h.edges[np.flatnonzero(h.fallback)[0]].copy() if h.fallback.any() else None
    del args["num_classes"]
    return dict(args, edges=np.array(h.edges), pooled_edges=pooled, use_cuda=False)


def check_core_histograms(kwargs, result):
    h_in, h_out, fallback = result
    c, width = np.shape(kwargs["edges"])
    assert h_in.shape == h_out.shape == (c, width - 1) and fallback.shape == (c,)
    finite(h_in, h_out)


def core_scores_baseline(rng):
    args = risk_scores_baseline(rng)
    h = args["histograms"]
    return dict(values=np.asarray(args["values"], np.float64), labels=np.asarray(args["labels"], np.int64),
                edges=np.array(h.edges), h_in=np.array(h.h_in), h_out=np.array(h.h_out),
                member_prior=args["member_prior"], use_cuda=False)


def check_core_scores(kwargs, r):
    assert r.shape == (len(kwargs["values"]),)
    finite(r)


# RMIA scores ---------------------------------------------------------------------------------------


def rmia_baseline(rng):
    n, z, k = int(rng.integers(1, 6)), int(rng.integers(1, 6)), 2 * int(rng.integers(1, 3))
    online = bool(rng.integers(0, 2))
    in_mask = None
    if online:  # every record IN for exactly half of the references
        in_mask = np.zeros((k, n), bool)
        for i in range(n):
            in_mask[rng.permutation(k)[: k // 2], i] = True
    return dict(target_x=rng.uniform(size=n), refs_x=rng.uniform(size=(k, n)), target_z=rng.uniform(size=z),
                refs_z=rng.uniform(size=(k, z)), in_mask=in_mask, a=1.0 if online else float(rng.uniform()),
                gamma=float(rng.choice([0.5, 1.0, 2.0])))


RMIA_KINDS = dict(target_x="floats", refs_x="floats", target_z="floats", refs_z="floats", in_mask="bools", a="real",
                  gamma="real")


def check_rmia(kwargs, scores):
    assert scores.shape == (np.shape(kwargs["target_x"])[0],)
    finite(scores)
    assert np.all((scores >= 0) & (scores <= 1))


# the testing hooks ---------------------------------------------------------------------------------


def check_vecmath(kwargs, y):
    # A raw math function: exp(1000) = inf and log(-1) = NaN are its correct values.
    assert y.shape == np.shape(kwargs["x"]) and y.dtype == np.float64


def row_isa_call(isa=None):
    previous = _core._row_isa()
    try:
        return _core._row_isa(isa)
    finally:
        _core._row_isa(previous)


TARGETS = {
    # the C++ core
    "_core.signals": Target(core_signals, lambda rng: {k: np.asarray(v) if k in ("preds", "labels") else v
                                                       for k, v in signals_baseline(rng).items()},
                            dict(SIGNALS_KINDS, use_cuda="flag"), check_signals, ("cuda",)),
    "_core.fit_thresholds": Target(_core.fit_thresholds, core_fit_baseline,
                                   dict(FIT_KINDS, want_global="flag", use_cuda="flag", device="junk"),
                                   check_core_fit, ("cuda",)),
    "_core.apply_thresholds": Target(_core.apply_thresholds, lambda rng: {k: np.asarray(v, dtype=float if k != "labels" else np.int64) for k, v in apply_baseline(rng).items()},
                                     dict(values="floats", labels="labels", thresholds="floats"), check_apply),
    "_core.roc_counts": Target(_core.roc_counts, lambda rng: dict(roc_baseline(rng), use_cuda=False),
                               dict(scores="floats", is_member="bools", use_cuda="flag"), check_curve, ("cuda",)),
    "_core.roc_curve": Target(_core.roc_curve, lambda rng: dict(roc_baseline(rng), use_cuda=False),
                              dict(scores="floats", is_member="bools", use_cuda="flag"), check_curve, ("cuda",)),
    "_core.roc_auc": Target(_core.roc_auc, lambda rng: dict(roc_baseline(rng), use_cuda=False),
                            dict(scores="floats", is_member="bools", use_cuda="flag"), check_auc, ("cuda",)),
    "_core.gradstats_update": Target(_core.gradstats_update, core_gradstats_baseline,
                                     dict(state="floats", count="size", chunk="floats"), check_core_gradstats_update),
    "_core.gradstats_finalize": Target(_core.gradstats_finalize, core_finalize_baseline,
                                       dict(state="floats", count="size"), check_core_finalize),
    "_core.bisection_update": Target(_core.bisection_update, core_bisection_baseline, CORE_BISECTION_KINDS,
                                     check_core_bisection, ("cuda",)),
    "_core.risk_ranges": Target(_core.risk_ranges, core_ranges_baseline,
                                dict(values_in="floats", labels_in="labels", values_out="floats", labels_out="labels",
                                     num_classes="size", log_bins="flag"), check_core_ranges),
    "_core.risk_histograms": Target(_core.risk_histograms, core_histograms_baseline,
                                    dict(values_in="floats", labels_in="labels", values_out="floats",
                                         labels_out="labels", edges="floats", pooled_edges="floats", log_bins="flag",
                                         use_cuda="flag"), check_core_histograms, ("cuda",)),
    "_core.risk_scores": Target(_core.risk_scores, core_scores_baseline,
                                dict(values="floats", labels="labels", edges="floats", h_in="floats", h_out="floats",
                                     member_prior="real", use_cuda="flag"), check_core_scores, ("cuda",)),
    "_core.rmia_scores": Target(_core.rmia_scores, rmia_baseline, RMIA_KINDS, check_rmia),
    "_core._vecmath": Target(_core._vecmath, lambda rng: dict(name=str(rng.choice(["exp", "log", "log1p", "log1m",
                                                                                    "log1m_half", "pair_log"])),
                                                              x=rng.normal(size=int(rng.integers(0, 20)))),
                             dict(name="name", x="floats"), check_vecmath),
    "_core._row_isa": Target(row_isa_call, lambda rng: dict(isa=None), dict(isa="name"),
                             lambda kwargs, isa: isinstance(isa, str)),
    "_core.build_info": Target(_core.build_info, lambda rng: {}, {}, lambda kwargs, info: isinstance(info, dict)),
    # the Python wrappers
    "signals.compute": Target(compute, signals_baseline, dict(SIGNALS_KINDS, device="device"), check_signals),
    "signals.member_scores": Target(member_scores, member_scores_baseline, dict(signals="junk", name="name"),
                                    check_member_scores),
    "thresholds.best_threshold": Target(best_threshold, lambda rng: {k: v for k, v in fit_baseline(rng).items()
                                                                      if k.startswith("values")},
                                        dict(values_in="floats", values_out="floats", device="device"),
                                        lambda kwargs, t: finite(t)),
    "thresholds.fit_class_thresholds": Target(fit_class_thresholds, fit_baseline, FIT_KINDS, check_fit),
    "thresholds.class_thresholds": Target(class_thresholds, fit_baseline, FIT_KINDS, check_class_thresholds),
    "thresholds.apply_thresholds": Target(apply_thresholds, apply_baseline,
                                          dict(values="floats", labels="labels", thresholds="floats"), check_apply),
    "metrics.roc_counts": Target(roc_counts, roc_baseline, dict(scores="floats", is_member="bools", device="device"),
                                 check_curve),
    "metrics.roc_curve": Target(roc_curve, roc_baseline, dict(scores="floats", is_member="bools", device="device"),
                                check_curve),
    "metrics.auc": Target(auc, roc_baseline, dict(scores="floats", is_member="bools", device="device"), check_auc),
    "metrics.tpr_at_fpr": Target(tpr_at_fpr, tpr_baseline,
                                 dict(scores="floats", is_member="bools", fpr="floats", device="device"), check_tpr),
    "metrics.low_fpr_index": Target(low_fpr_index, low_fpr_baseline, dict(fps="labels", targets="floats"),
                                    check_low_fpr),
    "metrics.clopper_pearson": Target(clopper_pearson, clopper_baseline,
                                      dict(k="labels", n="labels", confidence="real"), check_clopper),
    "gradstats.GradientStats": Target(gradstats_call, gradstats_baseline, dict(n="size", chunk="floats",
                                                                                device="device"), check_gradstats),
    "bisection.BisectionState": Target(bisection_call, bisection_baseline,
                                       dict(x0="floats", lo="floats", hi="floats", orig_class="labels",
                                            mid_probs="floats", theta="real", max_steps="size", device="device"),
                                       check_bisection),
    "attacks.rmia.rmia_scores": Target(rmia_scores, rmia_baseline, RMIA_KINDS, check_rmia),
    "histograms.ClassHistograms.fit": Target(histograms_call, histograms_baseline,
                                             dict(FIT_KINDS, bins="size", log_bins="flag"), check_histograms),
    "histograms.ClassHistograms.member_probability": Target(risk_scores_call, risk_scores_baseline,
                                                            dict(values="floats", labels="labels",
                                                                 member_prior="real", device="device"),
                                                            check_risk_scores),
}


def _state(rows=1, exponent=0.0):
    state = np.zeros((rows, 10))
    _core.gradstats_update(state, 0, np.ones((rows, 2)))
    state[:, 0] = exponent
    return state


# What the fuzzing found (each raised an unnamed error, crashed a check or returned inf / NaN before).
FOUND = [
    (compute, lambda: dict(preds=[[1e300, 0.0]], labels=[0], sum_tol=None), r"preds row 0 holds a probability of 1.0000000000000001e\+300, above 1"),
    (compute, lambda: dict(preds=np.array([[3e38, -3e38]], np.float32), labels=[1], from_logits=True),
     "preds row 0 overflows the signals in float32"),
    (compute, lambda: dict(preds=[[1.7e308, -1.7e308]], labels=[1], from_logits=True), "preds row 0 overflows"),
    (compute, lambda: dict(preds=[[1e307, 1e307]], labels=[1], sum_tol=1e308), "preds row 0 overflows"),
    (compute, lambda: dict(preds=[[0.5, 0.5], [0.5, 0.5]], labels=[[0], [1, 1]]), "labels must be an array"),
    (roc_curve, lambda: dict(scores=[1.0, 2.0], is_member=[[1], [0, 1]]), "is_member must be an array"),
    (clopper_pearson, lambda: dict(k=[[1], [1, 2]], n=5), "k must hold integers"),
    (low_fpr_index, lambda: dict(fps=[], targets=0.1), "fps must be"),
    (low_fpr_index, lambda: dict(fps=[1, 2], targets=[[0.1], [0.2, 0.3]]), "targets must be"),
    (tpr_at_fpr, lambda: dict(roc_baseline(np.random.default_rng(3)), fpr=[0.1 + 0.5j]), "fpr must be a number"),
    (member_scores, lambda: dict(signals=None, name="loss"), "signals must be a dict"),
    (member_scores, lambda: dict(signals={"loss": [np.nan]}, name="loss"), r"signals\['loss'\] must be finite"),
    (member_scores, lambda: dict(signals={"loss": [1.0]}, name=["loss"]), "name must be one of"),
    (histograms_call, lambda: dict(fit_baseline(np.random.default_rng(0)), bins=5, log_bins=np.array([True, False])),
     "log_bins must be True or False"),
    (histograms_call, lambda: dict(fit_baseline(np.random.default_rng(0)), bins=5, log_bins="no"),
     "log_bins must be True or False"),
    (_core.fit_thresholds, lambda: dict(core_fit_baseline(np.random.default_rng(1)), labels_in=[[0], [1, 2]]),
     "labels_in must be an array"),
    (_core.risk_histograms, lambda: dict(core_histograms_baseline(np.random.default_rng(2)), pooled_edges=[[0.0], [1.0, 2.0]]),
     "pooled_edges must be an array"),
    (_core.gradstats_finalize, lambda: dict(state=_state(), count=2**63 - 1), r"count must be in \[0, 2\*\*53\]"),
    (_core.gradstats_update, lambda: dict(state=_state(exponent=1e300), count=2, chunk=np.ones((1, 2))),
     "state row 0 is not a gradient-statistics state"),
    (_core.gradstats_finalize, lambda: dict(state=_state(exponent=np.nan), count=2), "state row 0 is not"),
    (_core.gradstats_finalize, lambda: dict(state=_state(exponent=1023.0), count=2), "state row 0 is not"),
]


def _risk_scores(h_out=((5e-324, 0.5, 0.0),), member_prior=0.8):
    """Scores of values in bins 0, 1, 2 of one class whose h_in is (0, 0, 1)."""
    edges = np.array([[0.0, 1.0, 2.0, 3.0]])
    return _core.risk_scores(np.array([0.5, 1.5, 2.5]), np.zeros(3, np.int64), edges, np.array([[0.0, 0.0, 1.0]]),
                             np.array(h_out), member_prior, False)


FOUND += [
    (_risk_scores, lambda: dict(h_out=[[2.0, 0.5, 0.0]]), "h_out must hold histogram fractions"),
    (_risk_scores, lambda: dict(member_prior=5e-324), r"member_prior must be in \(0, 1\)"),
]


def test_a_bin_whose_weighted_non_members_underflow_scores_zero():
    # h_out * (1 - prior) / prior = 5e-324 * 0.24 underflows to 0: the ratio was 0 / 0 = NaN.
    np.testing.assert_array_equal(_risk_scores(), [0.0, 0.0, 1.0])


@pytest.mark.parametrize("function, arguments, match", FOUND)
def test_what_the_fuzzing_found(function, arguments, match):
    with pytest.raises(ValueError, match=match):
        function(**arguments())


def test_probabilities_within_the_tolerance_pass_without_sum_tol():
    got = compute([[1.0005, 0.0], [0.2, 0.3]], [0, 1], sum_tol=None)
    np.testing.assert_allclose(got["confidence"], [1.0005, 0.3])
    finite(*got.values())


def test_every_core_function_is_a_target():
    core = {name for name in dir(_core) if not name.startswith("__") and callable(getattr(_core, name))}
    assert core == {name.removeprefix("_core.") for name in TARGETS if name.startswith("_core.")}


# ---- the property ---------------------------------------------------------------------------------


@contextlib.contextmanager
def address_space_limit(extra_bytes: int):
    """Limit the address space to what the process holds plus extra_bytes: an
    absurd allocation then raises MemoryError instead of waking the OOM killer."""
    with open("/proc/self/status") as status:
        held = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = held + extra_bytes
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@st.composite
def calls(draw, target: Target):
    """(kwargs, mutated argument names): a valid call with up to two arguments made hostile."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kwargs = target.baseline(rng)
    names = list(target.kinds)
    mutated = draw(st.lists(st.sampled_from(names), max_size=2, unique=True)) if names else []
    for name in mutated:
        kind = target.kinds[name]
        if kind in ("floats", "labels", "bools") and name in kwargs and isinstance(kwargs[name], (np.ndarray, list)):
            kwargs[name] = draw(hostile_array(np.asarray(kwargs[name]), kind))
        elif kind in ("floats", "labels", "bools", "junk"):
            kwargs[name] = draw(st.sampled_from(JUNK))
        else:
            kwargs[name] = draw(hostile_scalar(kind))
    return kwargs, mutated


def names_an_argument(message: str, target: Target) -> bool:
    words = list(target.kinds) + list(target.aliases)
    return any(re.search(rf"(?<![A-Za-z0-9_]){re.escape(w)}(?![A-Za-z0-9_])", message) for w in words)


def run_target(target: Target, kwargs: dict, mutated: list[str]):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LowFPRWarning)
            warnings.simplefilter("ignore", RuntimeWarning)  # documented overflow warnings (inf l1, distance)
            result = target.call(**kwargs)
    except (ValueError, TypeError) as exc:
        assert mutated, f"a valid call was refused: {exc!r}"
        assert names_an_argument(str(exc), target), f"the message names no argument: {exc!r}"
        return
    target.check(kwargs, result)


@pytest.mark.parametrize("name", sorted(TARGETS))
@settings(settings.get_profile(PROFILE))
@given(data=st.data())
def test_refuses_cleanly_or_returns_a_finite_result(name, data):
    target = TARGETS[name]
    kwargs, mutated = data.draw(calls(target), label="call")
    with address_space_limit(3 * 2**30):
        run_target(target, kwargs, mutated)
