"""AuditReport: the attacks run against one model, with the model's facts.

A report is a set of :class:`~tfmia.evaluation.AttackResult` keyed by attack
name plus :class:`ModelFacts` (train/test accuracy and their gap, sizes, model
name, epoch).  It renders a self-contained HTML page (``to_html``), prints a
text summary and converts to TensorFlow Privacy's ``AttackResults``
(``to_tf_privacy``).

A saved report is two files (never pickle):

* ``report.json``: everything the report shows, readable by any JSON tool:
  title, notes, facts and, per attack, its sizes, threshold, every metric,
  the low-FPR points with their intervals, the baselines, a thinned ROC
  (:attr:`~tfmia.evaluation.AttackResult.reported_roc`) and the metrics of
  every slice.  Its size does not grow with the number of records.
* ``report.arrays.npz`` beside it (:func:`side_file_path`): the per-record
  arrays (scores, membership, labels, predicted labels, losses, the attack's
  own decisions), stored once each when attacks share them.  The JSON records
  the side file's name, size, SHA-256 and each array's dtype and shape.

:meth:`AuditReport.from_json` checks the JSON against the format's schema
(errors name the file and the field), then checks the side file against what
the JSON recorded before reading it and rebuilds every result from its
arrays, so metrics, slices, plots and ``to_tf_privacy`` are exactly those of
the saved report.  A report whose side file is missing or altered is refused
with a message saying so: what cannot be rebuilt exactly is not shown.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import numbers
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from ._describe import attack_settings, calibration, calibration_line, format_value
from ._schema import AnyJson, Boolean, Constant, Integer, ListOf, MapOf, Nullable, Number, Record, String
from ._serialization import (atomic_write_text, decode_float, encode_float, read_npz, sha256_file, to_json_text,
                             write_npz)
from ._text import printable
from .evaluation import LOW_FPRS, AttackResult

__all__ = ["ModelFacts", "AuditReport", "side_file_path"]

FORMAT_VERSION = 2
SIDE_FILE_SUFFIX = ".arrays.npz"

ARRAY_DTYPES = {
    "scores": "float64",
    "is_member": "bool",
    "decisions": "bool",
    "labels": "int64",
    "predicted_labels": "int64",
    "losses": "float64",
}
"""The per-record arrays of a result and the dtypes ``AttackResult.from_scores`` keeps them in."""


def side_file_path(json_path) -> Path:
    """Where the per-record arrays of the report at ``json_path`` go: ``report.json`` -> ``report.arrays.npz``."""
    json_path = Path(json_path)
    return json_path.with_name(json_path.stem + SIDE_FILE_SUFFIX)


@dataclasses.dataclass
class ModelFacts:
    """What the audit knows about the target model.

    ``extra`` holds any other facts as JSON values (string keys); the text
    summary and the HTML page show each as ``key: value``.  A one-run epsilon
    lower bound (:func:`tfmia.auditing.one_run_epsilon`) goes here with the
    parameters that make it meaningful, e.g.
    ``extra["one-run epsilon lower bound"] = {"epsilon": eps, "delta": 1e-5,
    "p_value": 0.05, "canaries": m, "guesses": r, "correct": v}``.
    """

    model_name: str | None = None
    train_accuracy: float | None = None
    test_accuracy: float | None = None
    n_train: int | None = None
    n_test: int | None = None
    epoch: int | None = None
    extra: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.model_name is not None and not isinstance(self.model_name, str):
            raise TypeError(f"model_name must be a string or None, got {self.model_name!r}")
        for name in ("train_accuracy", "test_accuracy"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"{name} must be a number or None, got {value!r}")
            if not (0.0 <= value <= 1.0 or math.isnan(value)):
                raise ValueError(f"{name} must be in [0, 1] (or NaN), got {value!r}")
        for name in ("n_train", "n_test", "epoch"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise TypeError(f"{name} must be a non-negative integer or None, got {value!r}")
            if value < 0:
                raise ValueError(f"{name} must be a non-negative integer or None, got {value!r}")
        if not isinstance(self.extra, Mapping) or not all(isinstance(k, str) for k in self.extra):
            raise TypeError(f"extra must be a mapping with string keys, got {self.extra!r}")
        self.extra = dict(self.extra)

    @property
    def gap(self) -> float | None:
        """Generalisation gap, train accuracy minus test accuracy."""
        if self.train_accuracy is None or self.test_accuracy is None:
            return None
        return self.train_accuracy - self.test_accuracy

    @classmethod
    def from_inputs(cls, members, non_members, *, model_name: str | None = None, epoch: int | None = None, **extra) -> "ModelFacts":
        """Facts measured on the audited records (AttackInputs): members are training data."""
        return cls(
            model_name=model_name,
            train_accuracy=float(members.correct.mean()),
            test_accuracy=float(non_members.correct.mean()),
            n_train=len(members),
            n_test=len(non_members),
            epoch=epoch,
            extra=dict(extra),
        )

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["train_accuracy"] = encode_float(self.train_accuracy)
        d["test_accuracy"] = encode_float(self.test_accuracy)
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> "ModelFacts":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown model fact fields: {sorted(unknown)}")
        d = dict(d)
        d["train_accuracy"] = decode_float(d.get("train_accuracy"))
        d["test_accuracy"] = decode_float(d.get("test_accuracy"))
        return cls(**d)


class AuditReport:
    """Attack results against one model plus the model's facts."""

    def __init__(
        self,
        results: Iterable[AttackResult] = (),
        facts: ModelFacts | None = None,
        *,
        title: str = "Membership-inference audit",
        notes: Iterable[str] = (),
    ):
        if facts is not None and not isinstance(facts, ModelFacts):
            raise TypeError(f"facts must be a ModelFacts or None, got {type(facts).__name__}")
        if not isinstance(title, str):
            raise TypeError(f"title must be a string, got {title!r}")
        if isinstance(notes, (str, bytes)) or not isinstance(notes, Iterable):
            raise TypeError(f"notes must be a list of strings, got {type(notes).__name__} {notes!r:.60}")
        notes = list(notes)
        for note in notes:
            if not isinstance(note, str):
                raise TypeError(f"notes must hold strings, got {type(note).__name__} {note!r:.60}")
        self.results: dict[str, AttackResult] = {}
        self.facts = facts or ModelFacts()
        self.title = title
        self.notes = notes
        for result in results:
            self.add(result)

    def add(self, result: AttackResult) -> None:
        """Add one attack's result; names must be unique within a report."""
        if not isinstance(result, AttackResult):
            raise ValueError(f"result must be an AttackResult, got {type(result).__name__}")
        if result.name in self.results:
            raise ValueError(f"a result named {result.name!r} is already in the report")
        self.results[result.name] = result

    def __getitem__(self, name: str) -> AttackResult:
        return self.results[name]

    def __len__(self) -> int:
        return len(self.results)

    def best(self, metric: str = "auc") -> AttackResult:
        """The result with the highest ``metric`` (NaN counts as lowest)."""
        if not self.results:
            raise ValueError("the report has no results")

        def key(r):
            v = r.metrics()[metric]
            return -math.inf if math.isnan(v) else v

        return max(self.results.values(), key=key)

    # -- JSON -----------------------------------------------------------------
    def to_dict(self) -> dict:
        """The report without its per-record arrays, JSON-ready (see the module docstring)."""
        return {
            "format": "tfmia.AuditReport",
            "version": FORMAT_VERSION,
            "title": self.title,
            "notes": self.notes,
            "facts": self.facts.to_dict(),
            "results": [r.summary_dict() for r in self.results.values()],
        }

    def to_json(self, path=None) -> str:
        """Save the report to ``path`` (JSON) and its side file (:func:`side_file_path`); returns the JSON text.

        Both files are written atomically, the side file first, so the JSON
        never names a side file that is not there; a crash between the two
        while overwriting a report leaves the old JSON with the new side file,
        which :meth:`from_json` refuses (the SHA-256 differs) rather than mix
        them.  The side file's bytes depend on the arrays alone, so saving the
        same report twice gives identical files.  Without ``path`` nothing
        is written and the text has no per-record arrays: a summary that
        :meth:`from_json` cannot rebuild a report from.
        """
        document = self.to_dict()
        if path is not None:
            path = Path(path)
            side = side_file_path(path)
            arrays, references = self._shared_arrays()
            write_npz(side, arrays)
            document["arrays"] = {
                "file": side.name,
                "bytes": side.stat().st_size,
                "sha256": sha256_file(side),
                "entries": {key: {"dtype": a.dtype.name, "shape": list(a.shape)} for key, a in arrays.items()},
            }
            for record, reference in zip(document["results"], references):
                record["arrays"] = reference
        text = to_json_text(document)
        if path is not None:
            atomic_write_text(path, text)
        return text

    def _shared_arrays(self) -> tuple[dict[str, np.ndarray], list[dict[str, str | None]]]:
        """(side-file arrays by key, per result: array field -> key): equal arrays stored once.

        Attacks evaluated on the same records share membership, labels,
        predicted labels and losses; storing each distinct array once keeps
        the side file close to the size of the scores.
        """
        arrays: dict[str, np.ndarray] = {}
        key_of: dict[tuple, str] = {}
        references = []
        for i, result in enumerate(self.results.values()):
            reference = {}
            for field, array in result.per_record_arrays().items():
                if array is None:
                    reference[field] = None
                    continue
                array = np.ascontiguousarray(array)
                identity = (array.dtype.str, array.shape, hashlib.sha256(array.data).digest())
                if identity not in key_of:
                    key_of[identity] = f"r{i}.{field}"
                    arrays[key_of[identity]] = array
                reference[field] = key_of[identity]
            references.append(reference)
        return arrays, references

    @classmethod
    def from_json(cls, source) -> "AuditReport":
        """Load a report saved by :meth:`to_json` from its path (``str`` or ``Path``).

        The JSON is checked against the format's schema, the side file
        against the size and SHA-256 the JSON recorded, and every array
        against its recorded dtype and shape, before anything is rebuilt.
        Every problem is a ValueError naming the file and, for the JSON, the
        field (``report.json: results[0].threshold must be a number or null,
        got "abc"``).  JSON text is accepted too, but cannot locate a side
        file, so it is only checked.
        """
        path, label, text = _read_source(source)
        document = _parse_json(text, label)
        try:
            checked = _REPORT_SCHEMA(document, "")
        except ValueError as exc:
            raise ValueError(f"{label}: {exc}") from None
        if "arrays" not in checked:
            raise ValueError(f"{label}: the report holds no per-record arrays (it was written by to_json() "
                             "without a path), so its results cannot be rebuilt")
        if path is None:
            raise ValueError(f"{label}: a report's per-record arrays are in its side file "
                             f"{checked['arrays']['file']!r}; load the report from its path to find it")
        arrays = _read_side_file(path, checked["arrays"], label)
        try:
            facts = ModelFacts.from_dict(checked["facts"])
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{label}: facts.{exc}") from None
        try:
            results = [_result_from(record, arrays, checked["arrays"]["entries"], f"results[{i}]")
                       for i, record in enumerate(checked["results"])]
            return cls(results, facts, title=checked["title"], notes=checked["notes"])
        except ValueError as exc:
            raise ValueError(f"{label}: {exc}") from None

    # -- rendering ------------------------------------------------------------
    def summary(self) -> str:
        """Plain-text table: FAR and TPR at low FPR first, then the usual metrics.

        Below the table: the settings of RMIA and QMIA results (K reference
        models, online/offline, a, gamma, T; QMIA's head and alpha) and QMIA's
        calibration (observed FPR on held-out public non-members with its
        interval, next to alpha), then ``facts.extra`` (``key: value``, e.g. a
        one-run epsilon lower bound) and the notes.  Names, title, notes and
        metadata are shown with non-printable characters escaped
        (:func:`~tfmia._text.printable`): the text is safe to print on a terminal.
        """
        lines = [printable(self.title)]
        f = self.facts
        facts = []
        if f.model_name:
            facts.append(f"model {printable(f.model_name)}")
        if f.epoch is not None:
            facts.append(f"epoch {f.epoch}")
        if f.train_accuracy is not None and f.test_accuracy is not None:
            facts.append(f"train acc {f.train_accuracy:.4f}, test acc {f.test_accuracy:.4f}, gap {f.gap:.4f}")
        if f.n_train is not None and f.n_test is not None:
            facts.append(f"{f.n_train} members, {f.n_test} non-members")
        if facts:
            lines.append("; ".join(facts))
        header = ["attack"] + [f"TPR@{x * 100:g}%FPR" for x in LOW_FPRS] + ["FAR", "bal.acc", "AUC", "adv", "prec(in)", "rec(in)", "decision"]
        rows = []
        unresolved = set()  # low FPRs below some result's resolution 1/non-members
        for result in self.results.values():
            m = result.metrics()
            tprs = []
            for x in LOW_FPRS:
                tpr = m[f"tpr_at_{x * 100:g}%_fpr"]
                if math.isnan(tpr) and x * result.n_non_members < 1:
                    unresolved.add((x, result.n_non_members))
                    tprs.append("n/a")
                else:
                    tprs.append(_fmt(tpr))
            rows.append(
                [printable(result.name)]
                + tprs
                + [_fmt(m[k]) for k in ("far", "balanced_accuracy", "auc", "advantage", "precision_member", "recall_member")]
                + [result.decision_source]
            )
        if self.results:
            first = next(iter(self.results.values()))
            for label, conf in (("ZeroR (all member)", first.zero_r), ("naive (correct = member)", first.naive)):
                if conf is not None:
                    rows.append(
                        [label, "-", "-", _fmt(conf.far), _fmt(conf.balanced_accuracy), "-", "-", _fmt(conf.precision_member), _fmt(conf.tpr), "baseline"]
                    )
        widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
        lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip())
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        lines += [f"note: n/a = TPR at {x * 100:g}% FPR cannot be measured with {n} non-members "
                  f"(one false positive is already {100 / n:.2g}% FPR); it needs at least {math.ceil(1 / x)}"
                  for x, n in sorted(unresolved)]
        lines += self._attack_lines()
        lines += [f"{printable(key)}: {printable(format_value(value))}" for key, value in self.facts.extra.items()]
        lines += [f"note: {printable(n)}" for n in self.notes]
        return "\n".join(lines)

    def _attack_lines(self) -> list[str]:
        """The settings of RMIA and QMIA results and QMIA's calibration, one line each (:mod:`tfmia._describe`)."""
        lines = []
        for result in self.results.values():
            settings = attack_settings(result.metadata)
            if settings is not None:
                lines.append(f"settings of {printable(result.name)}: {printable(settings)}")
            observed = calibration(result.metadata)
            if observed is not None:
                lines.append(f"calibration of {printable(result.name)}: {printable(calibration_line(observed))}")
        return lines

    def to_html(self, path) -> Path:
        """Write a self-contained HTML page (inline PNG figures, every string escaped)."""
        from ._html import render_report

        return atomic_write_text(Path(path), render_report(self))

    def to_tf_privacy(self):
        """This report as TensorFlow Privacy's ``AttackResults`` (needs tensorflow-privacy installed)."""
        from .tf_privacy import report_to_tf_privacy

        return report_to_tf_privacy(self)


# -- reading a saved report ---------------------------------------------------------------
_COUNTS = Record({"members": Integer(), "non_members": Integer()})
_NUMBERS = MapOf(Number())
_RESULT_SCHEMA = Record(
    {
        "name": String(),
        "records": _COUNTS,
        "threshold": Nullable(Number()),
        "decision_source": String(),
        "adaptive": Nullable(Boolean()),
        "metadata": MapOf(AnyJson()),
        "metrics": _NUMBERS,
        "low_fpr": ListOf(_NUMBERS),
        "baselines": Record({"zero_r": _NUMBERS, "naive": Nullable(_NUMBERS)}),
        "roc": Record({key: ListOf(Number()) for key in ("fpr", "tpr", "thresholds", "fps", "tps")}),
        "slices": MapOf(Record({"records": _COUNTS, "metrics": _NUMBERS})),
        "skipped_slices": MapOf(String()),
    },
    optional={"arrays": Record({field: Nullable(String()) for field in ARRAY_DTYPES})},
)
_REPORT_SCHEMA = Record(
    {
        "format": Constant("tfmia.AuditReport"),
        "version": Constant(FORMAT_VERSION),
        "title": String(),
        "notes": ListOf(String()),
        "facts": Record({}, optional={
            "model_name": Nullable(String()),
            "train_accuracy": Nullable(Number()),
            "test_accuracy": Nullable(Number()),
            "n_train": Nullable(Integer()),
            "n_test": Nullable(Integer()),
            "epoch": Nullable(Integer()),
            "extra": MapOf(AnyJson()),
        }),
        "results": ListOf(_RESULT_SCHEMA),
    },
    optional={
        "arrays": Record({
            "file": String(pattern=r"(?!\.\.?$)[^/\\\x00-\x1f]+", what="a file name without folders"),
            "bytes": Integer(),
            "sha256": String(pattern="[0-9a-f]{64}", what="64 lowercase hex digits"),
            "entries": MapOf(Record({
                "dtype": String(choices=sorted(set(ARRAY_DTYPES.values()))),
                "shape": ListOf(Integer(), max_length=1),
            })),
        }),
    },
)


def _read_source(source) -> tuple[Path | None, str, str]:
    """(path or None, how to name it in messages, text) of a report given as a path or as JSON text."""
    if isinstance(source, (str, Path)) and not str(source).lstrip().startswith("{"):
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"report file not found: {path}")
        try:
            return path, str(path), path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{path}: not a tfmia report (not UTF-8 text)") from None
        except OSError as exc:
            raise ValueError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return None, "report JSON text", str(source)


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not valid in strict JSON (tfmia writes non-finite numbers as strings)")


def _parse_json(text: str, label: str):
    try:
        document = json.loads(text, parse_constant=_refuse_constant)
    except ValueError as exc:  # JSONDecodeError, or a NaN/Infinity token
        raise ValueError(f"{label}: report is not valid JSON: {exc}") from None
    except RecursionError:
        raise ValueError(f"{label}: report is not valid JSON for tfmia (nested too deeply)") from None
    if not isinstance(document, dict) or document.get("format") != "tfmia.AuditReport":
        raise ValueError(f"{label}: not a tfmia AuditReport (missing format marker)")
    if document.get("version") != FORMAT_VERSION:
        raise ValueError(f"{label}: unsupported AuditReport version {document.get('version')!r}; "
                         f"this tfmia reads version {FORMAT_VERSION}")
    return document


def _read_side_file(json_path: Path, spec: Mapping, label: str) -> dict[str, np.ndarray]:
    """The side file's arrays, once its size, SHA-256, dtypes and shapes match what the JSON recorded."""
    side = json_path.with_name(spec["file"])
    if not side.is_file():
        raise ValueError(f"{label}: its per-record side file {side} is missing; a saved report is the pair "
                         f"{json_path.name} + {side.name} (copy both). The JSON alone still holds every metric "
                         "for other tools, but tfmia does not show a report it cannot rebuild exactly")
    size = side.stat().st_size
    if size != spec["bytes"]:
        difference = f"it has {size} bytes, the report recorded {spec['bytes']}"
    elif sha256_file(side) != spec["sha256"]:
        difference = "its SHA-256 differs from the one the report recorded"
    else:
        difference = None
    if difference:
        raise ValueError(f"{label}: the side file {side} does not match the report ({difference}): it was "
                         "modified, truncated or belongs to another report")
    entries = spec["entries"]
    try:
        arrays = read_npz(side, list(entries))
    except ValueError as exc:
        raise ValueError(f"{label}: {exc}") from None
    for key, entry in entries.items():
        array = arrays[key]
        if array.dtype.name != entry["dtype"] or list(array.shape) != entry["shape"]:
            raise ValueError(f"{label}: array {key!r} of {side} is {array.dtype.name} {list(array.shape)}, "
                             f"the report recorded {entry['dtype']} {entry['shape']}")
    return arrays


def _result_from(record: Mapping, arrays: Mapping[str, np.ndarray], entries: Mapping, path: str) -> AttackResult:
    """Rebuild one AttackResult from its checked JSON record and the side file's arrays."""
    if "arrays" not in record:
        raise ValueError(f"{path}.arrays is missing")
    n = record["records"]["members"] + record["records"]["non_members"]
    per_record = {}
    for field, key in record["arrays"].items():
        if key is None:
            per_record[field] = None
            continue
        if key not in entries:
            raise ValueError(f"{path}.arrays.{field} names {key!r}, which is not among arrays.entries")
        want = {"dtype": ARRAY_DTYPES[field], "shape": [n]}
        if entries[key] != want:
            raise ValueError(f"{path}.arrays.{field}: array {key!r} is {entries[key]['dtype']} {entries[key]['shape']}, "
                             f"a {field} array of {n} records must be {want['dtype']} {want['shape']}")
        per_record[field] = arrays[key]
    for field in ("scores", "is_member"):
        if per_record[field] is None:
            raise ValueError(f"{path}.arrays.{field} must name an array, got null")
    scores, is_member = per_record.pop("scores"), per_record.pop("is_member")
    try:
        result = AttackResult.from_scores(scores, is_member, name=record["name"], threshold=record["threshold"],
                                          adaptive=record["adaptive"], metadata=record["metadata"], **per_record)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    if result.n_members != record["records"]["members"]:
        raise ValueError(f"{path}.records.members is {record['records']['members']} but is_member marks "
                         f"{result.n_members} members")
    return result


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "nan"
    return f"{value:.4f}"
