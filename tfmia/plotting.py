"""Figures for audit reports, drawn with matplotlib's object API (no pyplot state).

* :func:`plot_roc`: ROC curves of several attacks on log-log axes with the
  chance line, the way Carlini et al. (2022) and SeqMIA compare attacks at low
  FPR.
* :func:`plot_score_histograms`: member vs non-member score distributions.
* :func:`plot_privacy_vs_epoch` and :func:`plot_privacy_vs_accuracy`: the two
  TensorFlow Privacy privacy-report plots, done natively from AuditReports.

Every function returns a :class:`matplotlib.figure.Figure`; nothing opens a
window, so they work on headless machines and in threads.  Names (of attacks,
models) and titles are drawn literally: never parsed as mathtext or TeX, so
that a name such as ``loss $\\foo$`` neither fails to render nor turns into a
formula.
"""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

__all__ = [
    "plot_roc",
    "plot_score_histograms",
    "plot_privacy_vs_epoch",
    "plot_privacy_vs_accuracy",
    "figure_png",
]


#: Text properties that draw a string as it is (no mathtext between dollars, no TeX).
_LITERAL = {"usetex": False, "parse_math": False}


def _literal_legend(ax, **kwargs) -> None:
    """``ax.legend(**kwargs)`` with every entry drawn literally."""
    for text in ax.legend(**kwargs).get_texts():
        text.set(**_LITERAL)


def figure_png(fig: Figure, dpi: int = 110) -> bytes:
    """Render ``fig`` to PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def plot_roc(results: Sequence, *, log_scale: bool = True, title: str = "ROC curve") -> Figure:
    """ROC curves of ``results`` (AttackResults), log-log by default, with the chance line.

    On log axes the smallest FPR shown is the resolution of the evaluation
    set, 1 / (number of non-members); points at FPR 0 sit on that edge.
    """
    results = list(results)
    fig = Figure(figsize=(6.5, 6.0 + 0.22 * len(results)))
    ax = fig.add_subplot()
    floor = 1.0
    for result in results:
        roc = result.roc
        floor = min(floor, 1.0 / result.n_non_members)
        ax.plot(roc.fpr, roc.tpr, lw=1.5, label=f"{result.name} (AUC {result.auc:.3f})")
    if log_scale:
        lo = floor / 2
        ax.set_xscale("log", nonpositive="clip")
        ax.set_yscale("log", nonpositive="clip")
        ax.set_xlim(lo, 1)
        ax.set_ylim(lo, 1)
        grid = np.logspace(np.log10(lo), 0, 50)
        ax.plot(grid, grid, ls="--", color="grey", lw=1, label="chance")
    else:
        ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="chance")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
    ax.set_xlabel("false-positive rate (FAR)")
    ax.set_ylabel("true-positive rate")
    ax.set_title(title, **_LITERAL)
    ax.grid(True, which="both", alpha=0.3)
    _literal_legend(ax, fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=1, frameon=False)
    fig.tight_layout()
    return fig


def plot_score_histograms(results: Sequence, *, bins: int = 50) -> Figure:
    """One panel per attack: histograms (density) of member and non-member score quantiles.

    The x axis is each record's score quantile among all of the attack's
    records, ``(rank - 1/2) / N`` with ties at their average rank, not the raw
    score: the panels then read the same for every attack, whatever the
    scale of its scores (log-likelihood ratios, probabilities, or the
    float64-step margins of class-dependent thresholds), and separation shows
    as members piling up on the right.
    """
    from scipy.stats import rankdata

    results = list(results)
    cols = min(3, max(1, len(results)))
    rows = int(np.ceil(len(results) / cols)) if results else 1
    fig = Figure(figsize=(4.2 * cols, 3.2 * rows))
    edges = np.linspace(0.0, 1.0, bins + 1)
    for i, result in enumerate(results):
        ax = fig.add_subplot(rows, cols, i + 1)
        quantiles = (rankdata(result.scores, method="average") - 0.5) / result.scores.size
        ax.hist(quantiles[result.is_member], bins=edges, density=True, alpha=0.55, label="members")
        ax.hist(quantiles[~result.is_member], bins=edges, density=True, alpha=0.55, label="non-members")
        ax.set_title(result.name, fontsize="medium", **_LITERAL)
        ax.set_xlabel("score quantile among all records (higher = member)")
        ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def _series(reports: Sequence, x_of, metric: str) -> dict[str, list[tuple[float, float]]]:
    series: dict[str, list[tuple[float, float]]] = {}
    for report in reports:
        x = x_of(report)
        if x is None:
            continue
        label = report.facts.model_name or "model"
        for name, result in report.results.items():
            series.setdefault(f"{label} - {name}", []).append((x, result.metrics()[metric]))
    return {k: sorted(v) for k, v in series.items()}


def _plot_series(series, xlabel: str, metric: str, title: str) -> Figure:
    fig = Figure(figsize=(7.5, 4.5))
    ax = fig.add_subplot()
    for label, points in series.items():
        xs, ys = zip(*points)
        ax.plot(xs, ys, marker="o", ms=3, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(metric)
    ax.set_title(title, **_LITERAL)
    ax.grid(True, alpha=0.3)
    if series:
        _literal_legend(ax, fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1))
    fig.tight_layout()
    return fig


def plot_privacy_vs_epoch(reports: Sequence, metric: str = "auc") -> Figure:
    """``metric`` of every attack against the epoch recorded in each report's facts."""
    missing = [i for i, r in enumerate(reports) if r.facts.epoch is None]
    if missing:
        raise ValueError(f"reports {missing} have no epoch in their facts")
    series = _series(reports, lambda r: r.facts.epoch, metric)
    return _plot_series(series, "epoch", metric, "Vulnerability per epoch")


def plot_privacy_vs_accuracy(reports: Sequence, metric: str = "auc") -> Figure:
    """``metric`` of every attack against the target's train accuracy (privacy vs utility)."""
    missing = [i for i, r in enumerate(reports) if r.facts.train_accuracy is None]
    if missing:
        raise ValueError(f"reports {missing} have no train_accuracy in their facts")
    series = _series(reports, lambda r: r.facts.train_accuracy, metric)
    return _plot_series(series, "train accuracy", metric, "Privacy vs utility")
