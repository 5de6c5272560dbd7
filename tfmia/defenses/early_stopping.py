"""The early-stopping baseline: the undefended recipe stopped at the defended model's test accuracy.

A defence that costs accuracy also lowers membership leakage simply because
the model fits its training set less; Song & Mittal (2021, section 6) ask
that it be compared with the *undefended* model stopped early at the same
test accuracy -- if early stopping leaks as little, the defence bought
nothing.  :class:`EarlyStoppingBaseline` trains the undefended ``model_fn``
keeping the weights and the test accuracy after every epoch (or reads
per-epoch checkpoints someone else saved: ``ModelCheckpoint`` files, a
``TrajectoryRecorder`` run with ``save_weights``), and picks the epoch whose
test accuracy is closest to a target (:func:`closest_epoch`).  An adaptive
attacker against the early-stopped model trains its shadow models with the
same recipe stopped at the same epoch (:meth:`EarlyStoppingBaseline.fit_config`).
:func:`side_by_side` tabulates the attacks against both models.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Mapping

import keras
import numpy as np

from .._validate import as_labels, check_fraction, check_positive_int
from ..evaluation import LOW_FPRS
from ..features.predictions import predict
from ..report import AuditReport
from ..training import FitConfig, build_model, fit_model

__all__ = ["EarlyStoppingBaseline", "EpochMatch", "closest_epoch", "side_by_side"]


def closest_epoch(accuracies: Mapping[int, float], target: float) -> int:
    """The epoch whose accuracy is closest to ``target`` (ties: the earliest epoch)."""
    target = check_fraction(target, "target", inclusive=True)
    if not accuracies:
        raise ValueError("accuracies must hold at least one epoch")
    return min(sorted(accuracies), key=lambda epoch: abs(accuracies[epoch] - target))


@dataclasses.dataclass(frozen=True)
class EpochMatch:
    """The epoch chosen for a target test accuracy."""

    epoch: int
    test_accuracy: float
    target_accuracy: float

    @property
    def difference(self) -> float:
        """test_accuracy - target_accuracy."""
        return self.test_accuracy - self.target_accuracy


def _accuracy(model, x, y) -> float:
    return float(np.mean(np.argmax(predict(model, x), axis=1) == y))


class _Snapshots(keras.callbacks.Callback):
    """Keeps the weights and the test accuracy after every epoch (in memory)."""

    def __init__(self, x_test, y_test):
        super().__init__()
        self.x_test, self.y_test = x_test, y_test
        self.weights: dict[int, list[np.ndarray]] = {}
        self.accuracies: dict[int, float] = {}

    def on_epoch_end(self, epoch, logs=None):
        self.weights[epoch + 1] = [np.array(w) for w in self.model.get_weights()]
        self.accuracies[epoch + 1] = _accuracy(self.model, self.x_test, self.y_test)


class EarlyStoppingBaseline:
    """Per-epoch snapshots of the undefended recipe and the epoch matching a target test accuracy.

    Args:
        model_fn: zero-argument callable returning the undefended compiled model.
        x_test, y_test: held-out records on which test accuracy is measured (integer labels).

    Build with :meth:`train` or :meth:`from_checkpoints`.
    """

    def __init__(self, model_fn, x_test, y_test):
        if not callable(model_fn):
            raise ValueError(f"model_fn must be callable, got {type(model_fn).__name__}")
        self.model_fn = model_fn
        self.x_test = np.asarray(x_test)
        self.y_test = as_labels(y_test, "y_test", n=self.x_test.shape[0])
        self.accuracies: dict[int, float] = {}
        self.weights: dict[int, object] = {}
        self.recipe: FitConfig | None = None

    @classmethod
    def train(cls, model_fn, x, y, x_test, y_test, fit: FitConfig, *, seed: int = 0) -> "EarlyStoppingBaseline":
        """Train ``model_fn`` for ``fit.epochs`` epochs on ``(x, y)``, keeping every epoch's weights."""
        baseline = cls(model_fn, x_test, y_test)
        snapshots = _Snapshots(baseline.x_test, baseline.y_test)
        fit_model(build_model(model_fn, seed=seed), x, y, fit, seed=seed, callbacks=[snapshots])
        baseline.recipe, baseline.weights, baseline.accuracies = fit, snapshots.weights, snapshots.accuracies
        return baseline

    @classmethod
    def from_checkpoints(cls, model_fn, checkpoints: Mapping[int, object], x_test, y_test) -> "EarlyStoppingBaseline":
        """Snapshots someone else saved: epoch (1-based) -> ``.weights.h5`` path or list of weight arrays."""
        if not checkpoints:
            raise ValueError("checkpoints must hold at least one epoch")
        baseline = cls(model_fn, x_test, y_test)
        for key in sorted(checkpoints):
            epoch = check_positive_int(key, "checkpoints epoch")
            baseline.weights[epoch] = checkpoints[key]
            baseline.accuracies[epoch] = baseline.accuracy(baseline.model(epoch))
        return baseline

    def accuracy(self, model) -> float:
        """``model``'s accuracy on the baseline's test records (e.g. the defended model's, to match)."""
        return _accuracy(model, self.x_test, self.y_test)

    def match(self, target_accuracy: float) -> EpochMatch:
        """The epoch whose test accuracy is closest to ``target_accuracy``."""
        epoch = closest_epoch(self.accuracies, target_accuracy)
        return EpochMatch(epoch, self.accuracies[epoch], float(target_accuracy))

    def model(self, epoch: int):
        """A fresh ``model_fn()`` model holding the weights after ``epoch``."""
        if epoch not in self.weights:
            raise ValueError(f"epoch {epoch} has no snapshot; available: {sorted(self.weights)}")
        model = build_model(self.model_fn)
        weights = self.weights[epoch]
        if isinstance(weights, list):
            model.set_weights(weights)
        else:
            model.load_weights(weights)
        return model

    def fit_config(self, epoch: int) -> FitConfig:
        """The recipe stopped after ``epoch`` epochs (for an adaptive attacker's shadow models)."""
        if self.recipe is None:
            raise ValueError("the training recipe is unknown for a baseline built from checkpoints")
        if not 1 <= epoch <= self.recipe.epochs:
            raise ValueError(f"epoch must be in [1, {self.recipe.epochs}], got {epoch}")
        return dataclasses.replace(self.recipe, epochs=epoch)


def _cell(value, markdown: bool, metric: bool = False) -> str:
    """Metrics with 4 decimals, other numbers (epsilon, seconds) with 3 significant digits."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4f}" if metric else f"{value:.3g}"
    return str(value).replace("|", "\\|") if markdown else str(value)


def side_by_side(reports: Mapping[str, AuditReport], *, markdown: bool = False) -> str:
    """One row per (model, attack): the model's test accuracy and gap, then the attack's headline numbers.

    Columns: model label, test accuracy, train-test gap, each key of the
    reports' ``facts.extra`` (e.g. epsilon, training seconds), attack,
    adaptive, TPR at 0.1 % and 1 % FPR, balanced accuracy, AUC, and
    ``attack s`` when results carry ``metadata["seconds"]``.  ``markdown``
    gives a Markdown table, otherwise aligned plain text.
    """
    if not reports:
        raise ValueError("reports must hold at least one AuditReport")
    extra = list(dict.fromkeys(k for r in reports.values() for k in r.facts.extra))
    timed = any("seconds" in res.metadata for r in reports.values() for res in r.results.values())
    header = (["model", "test acc", "gap"] + extra + ["attack", "adaptive"]
              + [f"TPR@{f * 100:g}%FPR" for f in LOW_FPRS] + ["bal. acc", "AUC"] + (["attack s"] if timed else []))
    rows = []
    for label, report in reports.items():
        facts = report.facts
        model_cells = [_cell(label, markdown), _cell(facts.test_accuracy, markdown, True),
                       _cell(facts.gap, markdown, True)] + [_cell(facts.extra.get(k), markdown) for k in extra]
        for result in report.results.values():
            metrics = [result.tpr_at_fpr(f) for f in LOW_FPRS] + [result.balanced_accuracy, result.auc]
            rows.append(model_cells + [_cell(result.name, markdown), _cell(result.adaptive, markdown)]
                        + [_cell(m, markdown, True) for m in metrics]
                        + ([_cell(result.metadata.get("seconds"), markdown)] if timed else []))
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)), "  ".join("-" * w for w in widths)]
    return "\n".join(lines + ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows])
