"""PrivacyAuditCallback: membership-inference leakage next to accuracy, epoch by epoch.

Add it to ``model.fit`` with some training records (members) and held-out
records (non-members)::

    audit = tfmia.callbacks.PrivacyAuditCallback((x_train[:2000], y_train[:2000]), (x_val, y_val))
    model.fit(x_train, y_train, epochs=20, callbacks=[audit, keras.callbacks.CSVLogger("log.csv")])

At the audited epochs it runs the model over both sets in inference mode,
computes the per-sample signals in the C++ core and evaluates the fast
threshold attacks (loss, confidence, entropy, modified entropy) on them.
Their AUC, advantage and TPR at low FPR need no threshold; FAR and balanced
accuracy are taken at the best threshold on the audited records (an upper
bound an attacker could approach with calibration data).  Results go into
the Keras ``logs`` (so History, CSVLogger, EarlyStopping and ModelCheckpoint
see them; put this callback before those in the list):

``mia_auc``, ``mia_advantage``, ``mia_tpr_at_0.1pct_fpr``, ``mia_tpr_at_1pct_fpr``,
``mia_far``, ``mia_balanced_accuracy``   the worst case over the attacks (FAR and
                                          balanced accuracy of the attack with the highest AUC);
``mia_<attack>_auc`` etc.                 each attack.

With ``log_dir`` the same values are written as TensorBoard scalars; with
``report_dir`` an AuditReport (JSON) is saved per audited epoch and a
privacy-vs-epoch plot at the end of training.  An attack that fails logs a
warning and training continues.
"""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path
from typing import Callable, Sequence

import keras

from ..attacks.metric import MetricAttack
from ..data import AttackInputs
from ..evaluation import AttackResult
from ..metrics import LowFPRWarning
from ..plotting import figure_png, plot_privacy_vs_epoch
from ..report import AuditReport, ModelFacts
from .._serialization import atomic_write_bytes
from .._validate import check_positive_int

__all__ = ["PrivacyAuditCallback", "DEFAULT_ATTACKS"]

logger = logging.getLogger(__name__)

DEFAULT_ATTACKS = ("loss", "confidence", "entropy", "modified_entropy")
_HEADLINE = {
    "auc": "auc",
    "advantage": "advantage",
    "tpr_at_0.1pct_fpr": "tpr_at_0.1%_fpr",
    "tpr_at_1pct_fpr": "tpr_at_1%_fpr",
}
_OF_BEST = {"far": "far", "balanced_accuracy": "balanced_accuracy"}

AttackFn = Callable[[AttackInputs, AttackInputs], AttackResult]


def _metric_attack(metric: str) -> AttackFn:
    attack = MetricAttack(metric, class_dependent=False)
    return lambda members, non_members: attack.evaluate(members, non_members, name=metric)


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name).strip("_").lower()


class PrivacyAuditCallback(keras.callbacks.Callback):
    """Audit membership leakage during ``model.fit`` (see module docstring).

    Args:
        members: ``(x, y)`` training records to audit (a sample of the training set).
        non_members: ``(x, y)`` records the model never trains on.
        attacks: metric names (``"loss"``, ``"confidence"``, ``"entropy"``,
            ``"modified_entropy"``, ``"correctness"``) and/or callables
            ``f(members, non_members) -> AttackResult`` (e.g. a fitted trained
            attack's ``evaluate``), keyed by name when given as a dict.
        every_n_epochs: audit every n-th epoch, and always the first (so that CSVLogger
            sees the keys) and the last one.
        log_dir: folder for TensorBoard scalars (None: none).
        report_dir: folder for one AuditReport JSON per audited epoch and the
            privacy-vs-epoch plot (None: none).
        slicing: keyword arguments for ``AttackResult.slices`` whose per-slice AUCs
            are logged too, e.g. ``{"by_correctness": True}`` (None: entire set only).
        batch_size: inference batch size.
        logits: audit the pre-softmax scores of a model ending in a softmax
            (``AttackInputs.from_model(..., logits=True)``): float32
            probabilities of confident records round to 1.0 and tie.
        prefix: prefix of the log keys (default ``"mia_"``).
    """

    def __init__(
        self,
        members,
        non_members,
        attacks: Sequence[str] | dict = DEFAULT_ATTACKS,
        *,
        every_n_epochs: int = 1,
        log_dir=None,
        report_dir=None,
        slicing: dict | None = None,
        batch_size: int = 512,
        logits: bool = False,
        prefix: str = "mia_",
    ):
        super().__init__()
        self.members_xy = self._check_records(members, "members")
        self.non_members_xy = self._check_records(non_members, "non_members")
        self.attacks = self._resolve_attacks(attacks)
        self.every_n_epochs = check_positive_int(every_n_epochs, "every_n_epochs")
        self.log_dir = None if log_dir is None else Path(log_dir)
        self.report_dir = None if report_dir is None else Path(report_dir)
        self.slicing = dict(slicing) if slicing else None
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.logits = bool(logits)
        self.prefix = str(prefix)
        self.reports: list[AuditReport] = []
        self._writer = None

    # -- configuration ----------------------------------------------------------
    @staticmethod
    def _check_records(records, name):
        if not (isinstance(records, tuple) and len(records) == 2):
            raise ValueError(f"{name} must be an (x, y) tuple")
        x, y = records
        if len(x) != len(y):
            raise ValueError(f"{name}: x has {len(x)} records but y has {len(y)}")
        if len(y) == 0:
            raise ValueError(f"{name} must not be empty")
        return x, y

    @staticmethod
    def _resolve_attacks(attacks) -> dict[str, AttackFn]:
        items = attacks.items() if isinstance(attacks, dict) else [(a if isinstance(a, str) else None, a) for a in attacks]
        resolved: dict[str, AttackFn] = {}
        for name, attack in items:
            if isinstance(attack, str):
                from ..attacks.metric import METRICS

                if attack not in METRICS:
                    raise ValueError(f"attacks: unknown metric {attack!r}; choose from {METRICS} or pass a callable")
                resolved[name or attack] = _metric_attack(attack)
            elif callable(attack):
                resolved[name or getattr(attack, "__name__", f"attack_{len(resolved)}")] = attack
            else:
                raise ValueError(f"attacks: {attack!r} is neither a metric name nor a callable")
        if not resolved:
            raise ValueError("attacks must not be empty")
        return resolved

    # -- one audit ---------------------------------------------------------------
    def audit(self, epoch: int | None = None) -> AuditReport:
        """Run every attack on the current model and return the AuditReport."""
        members = AttackInputs.from_model(self.model, *self.members_xy, batch_size=self.batch_size, logits=self.logits)
        non_members = AttackInputs.from_model(self.model, *self.non_members_xy, batch_size=self.batch_size,
                                              logits=self.logits)
        report = AuditReport(facts=ModelFacts.from_inputs(members, non_members, model_name=self.model.name, epoch=epoch),
                             title=f"Privacy audit of {self.model.name}, epoch {epoch}")
        for name, attack in self.attacks.items():
            try:
                result = attack(members, non_members)
                if not isinstance(result, AttackResult):
                    raise TypeError(f"returned {type(result).__name__}, not an AttackResult")
                if result.name != name:
                    result.name = name
                report.add(result)
            except Exception as exc:  # an attack must never stop training
                message = f"tfmia: attack {name!r} failed at epoch {epoch}: {exc.__class__.__name__}: {exc}"
                logger.warning(message)
                warnings.warn(message, RuntimeWarning, stacklevel=2)
                report.notes.append(message)
        return report

    def log_values(self, report: AuditReport) -> dict[str, float]:
        """The ``logs`` entries for one report (see module docstring)."""
        values: dict[str, float] = {}
        if not report.results:
            return values
        per_attack = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LowFPRWarning)
            for name, result in report.results.items():
                m = result.metrics()
                per_attack[name] = m
                key = _slug(name)
                for short, metric in {**_HEADLINE, **_OF_BEST}.items():
                    values[f"{self.prefix}{key}_{short}"] = float(m[metric])
                if self.slicing:
                    slices, _ = result.slices(**self.slicing)
                    for slice_name, s in slices.items():
                        if slice_name != "entire dataset":
                            values[f"{self.prefix}{key}_{_slug(slice_name)}_auc"] = float(s.auc)
        for short, metric in _HEADLINE.items():
            column = [m[metric] for m in per_attack.values() if not math.isnan(m[metric])]
            values[f"{self.prefix}{short}"] = float(max(column)) if column else math.nan
        best = max(per_attack.values(), key=lambda m: m["auc"])
        for short, metric in _OF_BEST.items():
            values[f"{self.prefix}{short}"] = float(best[metric])
        return values

    # -- Keras hooks ---------------------------------------------------------------
    def _should_audit(self, epoch: int) -> bool:
        last = self.params.get("epochs") if self.params else None
        return epoch == 0 or (epoch + 1) % self.every_n_epochs == 0 or (last is not None and epoch + 1 == last)

    def on_epoch_end(self, epoch, logs=None):
        if not self._should_audit(epoch):
            return
        report = self.audit(epoch=epoch + 1)
        self.reports.append(report)
        values = self.log_values(report)
        if logs is not None:
            logs.update(values)
        if self.log_dir is not None:
            self._write_scalars(values, epoch + 1)
        if self.report_dir is not None:
            report.to_json(self.report_dir / f"audit_epoch_{epoch + 1:04d}.json")

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.flush()
        if self.report_dir is not None and self.reports:
            reports = [r for r in self.reports if r.results]
            if reports:
                atomic_write_bytes(self.report_dir / "privacy_vs_epoch.png", figure_png(plot_privacy_vs_epoch(reports, "auc")))

    def _write_scalars(self, values: dict[str, float], step: int) -> None:
        """TensorBoard scalar summaries, written with core TensorFlow ops.

        ``tf.summary.scalar`` needs the tensorboard package at write time; the
        same event (a float tensor tagged with the "scalars" plugin) is written
        here with ``tf.summary.write``, so logging works without it.
        """
        import tensorflow as tf
        from tensorflow.core.framework import summary_pb2

        if self._writer is None:
            self._writer = tf.summary.create_file_writer(str(self.log_dir))
        metadata = summary_pb2.SummaryMetadata(
            plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
            data_class=summary_pb2.DATA_CLASS_SCALAR,
        )
        with self._writer.as_default():
            for key, value in values.items():
                if not math.isnan(value):
                    tf.summary.write(key, tf.constant(value, tf.float32), step=step, metadata=metadata)
        self._writer.flush()

