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

Attacks are metric names, callables ``f(members, non_members) -> AttackResult``
on the AttackInputs of the audited records, or :class:`ModelAudit` objects,
for attacks that need the model and raw records (population records, public
non-members) as well.  A ModelAudit has

* ``prepare(view)``: called in ``on_train_begin``, before the first epoch:
  checks what it can (shapes, labels) and does the work that does not depend
  on the training target, once (e.g. training reference models);
* ``evaluate(view) -> AttackResult``: called at each audited epoch.

``view`` (:class:`AuditView`) holds the model, the audited ``(x, y)`` records,
the model's outputs on them at this audit, and ``outputs(x, y)`` to run the
model on other records as the callback does (batch size, ``logits``).
Ready-made: :func:`~tfmia.callbacks.rmia_audit` (RMIA with references trained
once before the first epoch) and :func:`~tfmia.callbacks.qmia_audit`
(quantile regression, its regressor retrained at each audited epoch)::

    audit = PrivacyAuditCallback(members, non_members, attacks=[
        "loss",
        rmia_audit(model_fn, reference_data=(x_ref, y_ref), population=(x_pop, y_pop),
                   n_references=2, fit=FitConfig(epochs=20)),
        qmia_audit(public=(x_pub, y_pub), alpha=0.01),
    ])

Python's and numpy's global random generators are restored after a
ModelAudit runs (its training seeds them, as tfmia's training does).

With ``log_dir`` the same values are written as TensorBoard scalars; with
``report_dir`` each fit writes into a fresh numbered folder
``report_dir/fit-000``, ``fit-001``, ... (so a second fit never overwrites
the first's): an AuditReport (JSON) per audited epoch and a privacy-vs-epoch
plot at the end of training.

The callback never breaks ``model.fit`` once training runs, and wastes no
epoch on a set-up it cannot audit:

* At construction: the audit records (``(x, y)`` pairs of matching length,
  x a real numeric or string array without NaN/Inf, class-index or one-hot
  labels), the attacks (known metrics, callables or ModelAudits, names that
  give distinct log keys) and the other arguments.
* In ``on_train_begin``, which needs the model: the model runs on a batch of
  the members (input shapes, N x C class scores, ``logits=True`` feasible
  under the rules of :mod:`tfmia.features.predictions`), every label is below
  its number of classes, every ModelAudit is prepared (its records fit the
  model; RMIA's references are trained), and ``log_dir`` and this fit's
  report folder are created and take a file.  Each failure is a
  ``ValueError`` naming the argument (or the attack), raised before the
  first epoch.
* At an audited epoch, an audit that cannot be computed (a diverged model
  whose outputs are NaN, an attack that raises, a report that cannot be
  written) logs a warning (``RuntimeWarning`` and the ``tfmia.callbacks.audit``
  logger); the epoch's values are NaN under the same keys as every other
  epoch, its AuditReport records why, and training continues.
"""

from __future__ import annotations

import abc
import dataclasses
import inspect
import itertools
import logging
import math
import os
import warnings
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import keras
import numpy as np

from ..attacks.metric import MetricAttack
from ..data import AttackInputs
from ..evaluation import AttackResult
from ..metrics import LowFPRWarning
from ..plotting import figure_png, plot_privacy_vs_epoch
from ..report import AuditReport, ModelFacts
from .._serialization import atomic_write_bytes
from .._validate import check_positive_int, class_indices

__all__ = ["PrivacyAuditCallback", "DEFAULT_ATTACKS", "ModelAudit", "AuditView", "audit_records"]

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


def _warn(message: str) -> str:
    """Report a problem that must not stop training: the package's logger and a RuntimeWarning."""
    logger.warning(message)
    warnings.warn(message, RuntimeWarning, stacklevel=3)
    return message


def _audit_inputs(x, name: str) -> np.ndarray:
    """``x`` as one array of records: real numbers without NaN/Inf, or strings (a model that tokenises)."""
    try:
        x = np.asarray(x)
    except Exception as exc:  # ragged lists and other non-arrays
        raise ValueError(f"{name} must be one array of records: {exc}") from None
    if x.dtype.kind not in "biufUS":
        raise ValueError(f"{name} must be a real numeric (or string) array, got dtype {x.dtype}")
    if x.ndim == 0:
        raise ValueError(f"{name} must be an array of records, got a scalar")
    if x.dtype.kind == "f" and x.size and not (np.isfinite(x.min()) and np.isfinite(x.max())):
        bad = np.flatnonzero(~np.isfinite(x.reshape(len(x), -1)).all(axis=1))
        raise ValueError(f"{name} contains NaN or Inf (records {bad[:5].tolist()}{', ...' if len(bad) > 5 else ''})")
    return x


def audit_records(records, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(x, labels)``: x checked by :func:`_audit_inputs`, labels as 1-D class indices; errors name ``name``."""
    if not (isinstance(records, tuple) and len(records) == 2):
        raise ValueError(f"{name} must be an (x, y) tuple")
    x = _audit_inputs(records[0], f"{name} x")
    if len(x) == 0:
        raise ValueError(f"{name} must not be empty")
    if np.ndim(records[1]) == 0 or len(records[1]) != len(x):
        raise ValueError(f"{name}: x has {len(x)} records but y has shape {np.shape(records[1])}")
    return x, class_indices(records[1], f"{name} y", n=len(x))


@dataclasses.dataclass(frozen=True)
class AuditView:
    """What a :class:`ModelAudit` sees: the model as it is now, the audited records and how the callback runs it.

    ``members`` and ``non_members`` are the model's outputs on the audited
    records at this audit (computed once and shared by every attack); they are
    None in :meth:`ModelAudit.prepare`, before training.
    """

    model: keras.Model
    members_xy: tuple[np.ndarray, np.ndarray]
    non_members_xy: tuple[np.ndarray, np.ndarray]
    members: AttackInputs | None
    non_members: AttackInputs | None
    num_classes: int
    batch_size: int
    logits: bool

    def outputs(self, x, y) -> AttackInputs:
        """The model's outputs on other records (population, public), run as the audited ones are."""
        return AttackInputs.from_model(self.model, x, y, batch_size=self.batch_size, logits=self.logits)

    def check_records(self, xy: tuple[np.ndarray, np.ndarray], name: str) -> None:
        """Records of the audited records' shape whose labels the model has (a ValueError naming ``name``)."""
        x, y = xy
        if x.shape[1:] != self.members_xy[0].shape[1:]:
            raise ValueError(f"{name} x holds records of shape {x.shape[1:]}, the audited records have "
                             f"{self.members_xy[0].shape[1:]}")
        if y.max() >= self.num_classes:
            raise ValueError(f"{name} y holds label {int(y.max())}, but the model has {self.num_classes} classes")


class ModelAudit(abc.ABC):
    """An attack that needs the model and raw records, not only the audited outputs (see module docstring).

    Subclasses set :attr:`name` (the default log key) and implement
    :meth:`evaluate`; :meth:`prepare` does the one-time work.
    """

    name: str = "model_audit"

    def prepare(self, view: AuditView) -> None:
        """Check what can be checked and do the work that does not depend on the training target.

        Called in ``on_train_begin`` of every fit (so it should skip work it
        has done already); an exception stops ``fit`` before the first epoch.
        """

    @abc.abstractmethod
    def evaluate(self, view: AuditView) -> AttackResult:
        """The attack on the model as it is at this audit (an exception logs NaN and a warning)."""


def _writable_folder(path: Path, name: str) -> Path:
    """Create ``path`` (and its parents) and prove that it takes files with a probe file."""
    probe = path / f".tfmia-probe-{os.getpid()}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ValueError(f"{name} {str(path)!r} is not a writable folder: {exc}") from None
    return path


def _new_fit_folder(report_dir: Path) -> Path:
    """``report_dir/fit-NNN`` numbered after the highest existing one, created exclusively.

    Exclusive creation means two fits -- one after the other, or at the same
    time in two processes -- never share a folder.
    """
    _writable_folder(report_dir, "report_dir")
    taken = [int(p.name[4:]) for p in report_dir.glob("fit-*") if p.name[4:].isdigit()]
    for index in itertools.count(max(taken, default=-1) + 1):
        folder = report_dir / f"fit-{index:03d}"
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
        except OSError as exc:
            raise ValueError(f"report_dir {str(report_dir)!r}: cannot create {folder.name}: {exc}") from None


class PrivacyAuditCallback(keras.callbacks.Callback):
    """Audit membership leakage during ``model.fit`` (see module docstring).

    Args:
        members: ``(x, y)`` training records to audit (a sample of the training set).
        non_members: ``(x, y)`` records the model never trains on.
        attacks: metric names (``"loss"``, ``"confidence"``, ``"entropy"``,
            ``"modified_entropy"``, ``"correctness"``), callables
            ``f(members, non_members) -> AttackResult`` (e.g. a fitted trained
            attack's ``evaluate``) and/or :class:`ModelAudit` objects
            (:func:`~tfmia.callbacks.rmia_audit`, :func:`~tfmia.callbacks.qmia_audit`),
            keyed by name when given as a dict.
        every_n_epochs: audit every n-th epoch, and always the first (so that CSVLogger
            sees the keys) and the last one.
        log_dir: folder for TensorBoard scalars (None: none).
        report_dir: folder that gets one numbered sub-folder per fit,
            ``fit-000``, ``fit-001``, ... (:attr:`run_dir`), each with one
            AuditReport JSON per audited epoch and the fit's privacy-vs-epoch
            plot (None: none).
        slicing: keyword arguments for ``AttackResult.slices`` whose per-slice AUCs
            are logged too, e.g. ``{"by_correctness": True}`` (None: entire set only).
        batch_size: inference batch size.
        logits: audit the pre-softmax scores of a model ending in a softmax
            (``AttackInputs.from_model(..., logits=True)``): float32
            probabilities of confident records round to 1.0 and tie.
        prefix: prefix of the log keys (default ``"mia_"``).

    Attributes:
        reports: the AuditReports of the latest fit, one per audited epoch.
        run_dir: the latest fit's folder under ``report_dir`` (None before a fit or without one).
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
        self.members_xy = audit_records(members, "members")
        self.non_members_xy = audit_records(non_members, "non_members")
        if self.members_xy[0].shape[1:] != self.non_members_xy[0].shape[1:]:
            raise ValueError(f"members and non_members must hold records of one shape, got x of shapes "
                             f"{self.members_xy[0].shape} and {self.non_members_xy[0].shape}")
        self.attacks = self._resolve_attacks(attacks)
        self.every_n_epochs = check_positive_int(every_n_epochs, "every_n_epochs")
        self.log_dir = self._check_folder(log_dir, "log_dir")
        self.report_dir = self._check_folder(report_dir, "report_dir")
        self.slicing = self._check_slicing(slicing)
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.logits = bool(logits)
        if not isinstance(prefix, str):
            raise ValueError(f"prefix must be a string, got {type(prefix).__name__}")
        self.prefix = prefix
        self.reports: list[AuditReport] = []
        self.run_dir: Path | None = None
        self._writer = None
        # The log keys of every audit (slice keys join when first seen): NaN under each when an audit fails.
        shorts = [*_HEADLINE, *_OF_BEST]
        groups = ["", *(f"{_slug(name)}_" for name in self.attacks)]
        self._log_keys = dict.fromkeys(f"{prefix}{group}{short}" for group in groups for short in shorts)

    # -- configuration ----------------------------------------------------------
    @staticmethod
    def _check_folder(folder, name) -> Path | None:
        if folder is None:
            return None
        if not isinstance(folder, (str, os.PathLike)):
            raise ValueError(f"{name} must be a path or None, got {type(folder).__name__}")
        return Path(folder)

    @staticmethod
    def _check_slicing(slicing) -> dict | None:
        """The keyword arguments of ``AttackResult.slice_masks``, checked against its signature."""
        if not slicing:
            return None
        if not isinstance(slicing, Mapping):
            raise ValueError(f"slicing must be a dict of AttackResult.slices arguments, got {type(slicing).__name__}")
        try:
            inspect.signature(AttackResult.slice_masks).bind(None, **slicing)
        except TypeError as exc:
            raise ValueError(f"slicing: {exc}") from None
        return dict(slicing)

    @staticmethod
    def _resolve_attacks(attacks) -> dict[str, AttackFn | ModelAudit]:
        """Attacks keyed by name; names must be strings that give distinct, non-empty log keys."""
        from ..attacks.metric import METRICS

        if isinstance(attacks, str) or not isinstance(attacks, Iterable):
            raise ValueError(f"attacks must be a sequence or dict of metric names and callables, got {attacks!r}")
        items = attacks.items() if isinstance(attacks, dict) else [(a if isinstance(a, str) else None, a) for a in attacks]
        resolved: dict[str, AttackFn | ModelAudit] = {}
        keys: dict[str, str] = {}
        for name, attack in items:
            if isinstance(attack, str):
                if attack not in METRICS:
                    raise ValueError(f"attacks: unknown metric {attack!r}; choose from {METRICS} or pass a callable")
                name, attack = name or attack, _metric_attack(attack)
            elif isinstance(attack, ModelAudit):
                name = name or attack.name
            elif callable(attack):
                name = name or getattr(attack, "__name__", f"attack_{len(resolved)}")
            else:
                raise ValueError(f"attacks: {attack!r} is neither a metric name, a callable nor a ModelAudit")
            if not isinstance(name, str):
                raise ValueError(f"attacks: names must be strings, got {name!r}")
            key = _slug(name)
            if not key:
                raise ValueError(f"attacks: the name {name!r} has no letter or digit to make a log key of")
            if key in keys:
                raise ValueError(f"attacks: the names {keys[key]!r} and {name!r} give the same log key {key!r}")
            keys[key] = name
            resolved[name] = attack
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
                             title=self._title(epoch))
        view = self._view(members, non_members, members.num_classes)
        for name, attack in self.attacks.items():
            try:
                if isinstance(attack, ModelAudit):
                    result = attack.evaluate(view)
                else:
                    result = attack(members, non_members)
                if not isinstance(result, AttackResult):
                    raise TypeError(f"returned {type(result).__name__}, not an AttackResult")
                if result.name != name:
                    result.name = name
                report.add(result)
            except Exception as exc:  # an attack must never stop training
                report.notes.append(_warn(f"tfmia: attack {name!r} failed at epoch {epoch}: "
                                          f"{exc.__class__.__name__}: {exc}"))
        return report

    def _view(self, members: AttackInputs | None, non_members: AttackInputs | None, num_classes: int) -> AuditView:
        return AuditView(self.model, self.members_xy, self.non_members_xy, members, non_members,
                         num_classes=num_classes, batch_size=self.batch_size, logits=self.logits)

    def _title(self, epoch: int | None) -> str:
        return f"Privacy audit of {self.model.name}, epoch {epoch}"

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
    def on_train_begin(self, logs=None):
        """Check what needs the model and create this fit's folders, before any epoch is spent."""
        num_classes = self._probe_model()
        for name, (_, labels) in (("members", self.members_xy), ("non_members", self.non_members_xy)):
            if labels.max() >= num_classes:
                raise ValueError(f"{name} y holds label {int(labels.max())}, but the model has {num_classes} classes")
        if self.log_dir is not None:
            _writable_folder(self.log_dir, "log_dir")
        self._prepare_model_audits(num_classes)
        self.run_dir = None if self.report_dir is None else _new_fit_folder(self.report_dir)
        self.reports = []

    def _prepare_model_audits(self, num_classes: int) -> None:
        """:meth:`ModelAudit.prepare` of each model-aware attack; a failure is a ValueError naming it."""
        view = self._view(None, None, num_classes)
        for name, attack in self.attacks.items():
            if not isinstance(attack, ModelAudit):
                continue
            try:
                attack.prepare(view)
            except Exception as exc:
                raise ValueError(f"attacks: {name!r} cannot audit {self.model.name!r}: "
                                 f"{exc.__class__.__name__}: {exc}") from exc

    def _probe_model(self) -> int:
        """Run the audit's inference on the members' first batch; return the number of classes.

        The same call as every audit (so its compiled function is reused):
        it fails here, not after an epoch, when the records do not fit the
        model, its outputs are not N x C class scores or ``logits=True``
        cannot be honoured.  Labels are checked separately, for all records.
        """
        x = self.members_xy[0][: self.batch_size]
        try:
            probe = AttackInputs.from_model(self.model, x, np.zeros(len(x), np.int64), batch_size=self.batch_size,
                                            logits=self.logits)
        except Exception as exc:
            option = ", logits=True" if self.logits else ""
            raise ValueError(f"members x of shape {self.members_xy[0].shape}{option} cannot be audited on "
                             f"{self.model.name!r}: {exc.__class__.__name__}: {exc}") from exc
        return probe.num_classes

    def _should_audit(self, epoch: int) -> bool:
        last = self.params.get("epochs") if self.params else None
        return epoch == 0 or (epoch + 1) % self.every_n_epochs == 0 or (last is not None and epoch + 1 == last)

    def on_epoch_end(self, epoch, logs=None):
        if not self._should_audit(epoch):
            return
        report, values = self._guarded_audit(epoch + 1)
        self.reports.append(report)
        self._log_keys.update(dict.fromkeys(values))
        values = {**dict.fromkeys(self._log_keys, math.nan), **values}
        if logs is not None:
            logs.update(values)
        self._save(report, values, epoch + 1)

    def _guarded_audit(self, epoch: int) -> tuple[AuditReport, dict[str, float]]:
        """The audit and its log values; when it cannot be computed, a warning and a report saying why."""
        try:
            report = self.audit(epoch=epoch)
            return report, self.log_values(report)
        except Exception as exc:  # the audit must never stop training
            message = _warn(f"tfmia: the privacy audit at epoch {epoch} could not be computed, its metrics are "
                            f"NaN ({exc.__class__.__name__}: {exc})")
            facts = ModelFacts(model_name=self.model.name, n_train=len(self.members_xy[1]),
                               n_test=len(self.non_members_xy[1]), epoch=epoch)
            return AuditReport(facts=facts, title=self._title(epoch), notes=[message]), {}

    def _save(self, report: AuditReport, values: dict[str, float], epoch: int) -> None:
        """TensorBoard scalars and the report JSON; a failure to write warns and training continues."""
        try:
            if self.log_dir is not None:
                self._write_scalars(values, epoch)
            if self.run_dir is not None:
                report.to_json(self.run_dir / f"audit_epoch_{epoch:04d}.json")
        except Exception as exc:
            _warn(f"tfmia: could not save the privacy audit of epoch {epoch}: {exc.__class__.__name__}: {exc}")

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.flush()
        audited = [r for r in self.reports if r.results]
        if self.run_dir is None or not audited:
            return
        try:
            atomic_write_bytes(self.run_dir / "privacy_vs_epoch.png", figure_png(plot_privacy_vs_epoch(audited, "auc")))
        except Exception as exc:
            _warn(f"tfmia: could not save the privacy-vs-epoch plot: {exc.__class__.__name__}: {exc}")

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

