"""AuditReport: the attacks run against one model, with the model's facts.

A report is a set of :class:`~tfmia.evaluation.AttackResult` keyed by attack
name plus :class:`ModelFacts` (train/test accuracy and their gap, sizes, model
name, epoch).  It saves to JSON (never pickle) and back exactly, renders a
self-contained HTML page (``to_html``), prints a text summary and converts to
TensorFlow Privacy's ``AttackResults`` (``to_tf_privacy``).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Iterable, Mapping

from ._serialization import atomic_write_text, decode_float, encode_float, to_json_text
from .evaluation import LOW_FPRS, AttackResult

__all__ = ["ModelFacts", "AuditReport"]

FORMAT_VERSION = 1


@dataclasses.dataclass
class ModelFacts:
    """What the audit knows about the target model."""

    model_name: str | None = None
    train_accuracy: float | None = None
    test_accuracy: float | None = None
    n_train: int | None = None
    n_test: int | None = None
    epoch: int | None = None
    extra: dict = dataclasses.field(default_factory=dict)

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
        self.results: dict[str, AttackResult] = {}
        self.facts = facts or ModelFacts()
        self.title = str(title)
        self.notes = [str(n) for n in notes]
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
        return {
            "format": "tfmia.AuditReport",
            "version": FORMAT_VERSION,
            "title": self.title,
            "notes": self.notes,
            "facts": self.facts.to_dict(),
            "results": [r.to_dict() for r in self.results.values()],
        }

    def to_json(self, path=None) -> str:
        """The report as strict JSON text; written atomically to ``path`` when given."""
        text = to_json_text(self.to_dict())
        if path is not None:
            atomic_write_text(path, text)
        return text

    @classmethod
    def from_dict(cls, d: Mapping) -> "AuditReport":
        if not isinstance(d, Mapping) or d.get("format") != "tfmia.AuditReport":
            raise ValueError("not a tfmia AuditReport (missing format marker)")
        if d.get("version") != FORMAT_VERSION:
            raise ValueError(f"unsupported AuditReport version {d.get('version')!r}")
        return cls(
            (AttackResult.from_dict(r) for r in d.get("results", [])),
            ModelFacts.from_dict(d.get("facts", {})),
            title=d.get("title", "Membership-inference audit"),
            notes=d.get("notes", []),
        )

    @classmethod
    def from_json(cls, source) -> "AuditReport":
        """Load from a path or from JSON text."""
        if isinstance(source, (str, Path)) and not str(source).lstrip().startswith("{"):
            path = Path(source)
            if not path.is_file():
                raise ValueError(f"report file not found: {path}")
            text = path.read_text(encoding="utf-8")
        else:
            text = str(source)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"report is not valid JSON: {exc}") from None
        return cls.from_dict(data)

    # -- rendering ------------------------------------------------------------
    def summary(self) -> str:
        """Plain-text table: FAR and TPR at low FPR first, then the usual metrics."""
        lines = [self.title]
        f = self.facts
        facts = []
        if f.model_name:
            facts.append(f"model {f.model_name}")
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
                [result.name]
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
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def to_html(self, path) -> Path:
        """Write a self-contained HTML page (inline PNG figures, every string escaped)."""
        from ._html import render_report

        return atomic_write_text(Path(path), render_report(self))

    def to_tf_privacy(self):
        """This report as TensorFlow Privacy's ``AttackResults`` (needs tensorflow-privacy installed)."""
        from .tf_privacy import report_to_tf_privacy

        return report_to_tf_privacy(self)


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "nan"
    return f"{value:.4f}"
