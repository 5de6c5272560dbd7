"""Render an AuditReport as one self-contained HTML page.

Figures are inline PNGs (``data:`` URIs), styles are inline, there is no
script and nothing is fetched.  Every string that can come from a user
(attack names, model name, notes, slice names, metadata) passes through
:func:`html.escape`.
"""

from __future__ import annotations

import base64
import html
import math
import warnings

from . import metrics as _metrics
from ._describe import attack_settings, calibration, calibration_reading, format_value
from .evaluation import LOW_FPRS
from .plotting import figure_png, plot_roc, plot_score_histograms

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.85em; }
.wide { overflow-x: auto; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.55em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f3f3f3; } tr.baseline td { color: #666; font-style: italic; }
.lead { background: #fff7e0; } .note { color: #555; font-size: 0.9em; }
img { max-width: 100%; }
"""

_RATIOS = ((5, 1), (1, 1), (1, 5))


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _num(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _img(png: bytes, alt: str, element_id: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img id="{_e(element_id)}" alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _table(header: list[str], rows: list[list[str]], row_classes: list[str] | None = None, lead: int = 0) -> str:
    """Cells must already be escaped; the first ``lead`` metric columns are highlighted."""
    out = ['<div class="wide"><table><thead><tr>']
    out += [f'<th{" class=lead" if 0 < i <= lead else ""}>{h}</th>' for i, h in enumerate(header)]
    out.append("</tr></thead><tbody>")
    for i, row in enumerate(rows):
        cls = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        out.append(f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def _low_fpr_cell(result, f: float) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", _metrics.LowFPRWarning)
        p = result.low_fpr(f)
    if math.isnan(p.tpr):
        return f"n/a (below 1/{result.n_non_members})"
    return f"{p.tpr:.4f} [{p.ci_low:.4f}, {p.ci_high:.4f}]"


def _facts_section(report) -> str:
    f = report.facts
    rows = [
        ["model", _e(f.model_name or "n/a")],
        ["epoch", _e(f.epoch if f.epoch is not None else "n/a")],
        ["train accuracy", _num(f.train_accuracy)],
        ["test accuracy", _num(f.test_accuracy)],
        ["generalisation gap", _num(f.gap)],
        ["members (train) audited", _e(f.n_train if f.n_train is not None else "n/a")],
        ["non-members (test) audited", _e(f.n_test if f.n_test is not None else "n/a")],
    ]
    rows += [[_e(k), _e(format_value(v))] for k, v in f.extra.items()]
    return "<h2>Target model</h2>" + _table(["fact", "value"], rows)


def _metrics_section(report) -> str:
    header = (
        ["attack"]
        + [f"TPR @ {f * 100:g}% FPR [95% CI]" for f in LOW_FPRS]
        + ["FAR", "balanced acc.", "AUC", "advantage", "accuracy", "precision (member)", "recall (member)",
           "precision (non-member)", "recall (non-member)", "F1", "decision", "adaptive"]
    )
    rows, classes = [], []
    for r in report.results.values():
        c = r.confusion
        rows.append(
            [_e(r.name)]
            + [_low_fpr_cell(r, f) for f in LOW_FPRS]
            + [_num(c.far), _num(c.balanced_accuracy), _num(r.auc), _num(r.advantage), _num(c.accuracy),
               _num(c.precision_member), _num(c.tpr), _num(c.precision_non_member), _num(c.tnr), _num(c.f1),
               _e(r.decision_source), _e("n/a" if r.adaptive is None else ("yes" if r.adaptive else "no"))]
        )
        classes.append("")
    if report.results:
        first = next(iter(report.results.values()))
        for label, c in (("ZeroR (always member)", first.zero_r), ("naive (member iff correctly classified)", first.naive)):
            if c is None:
                continue
            rows.append(
                [_e(label), "-", "-", _num(c.far), _num(c.balanced_accuracy), "-", "-", _num(c.accuracy),
                 _num(c.precision_member), _num(c.tpr), _num(c.precision_non_member), _num(c.tnr), _num(c.f1),
                 "baseline", "-"]
            )
            classes.append("baseline")
    return "<h2>Attacks</h2>" + _table(header, rows, classes, lead=len(LOW_FPRS) + 1)


def _settings_section(report) -> str:
    """RMIA's and QMIA's settings, QMIA's calibration next to alpha, and every attack's metadata (collapsed)."""
    results = list(report.results.values())
    parts = []
    described = [[_e(r.name), _e(attack_settings(r.metadata))] for r in results
                 if attack_settings(r.metadata) is not None]
    if described:
        parts.append("<h2>Attack settings</h2>" + _table(["attack", "settings"], described))
    calibrated = [(r, calibration(r.metadata)) for r in results]
    rows = [[_e(r.name), _e(format_value(c["alpha"])), _e(format_value(c["observed_fpr"])),
             _e(f"{format_value(c['false_positives'])} / {format_value(c['held_out'])}"),
             _e(f"[{format_value(c['ci_low'])}, {format_value(c['ci_high'])}] ({100 * c['confidence']:.4g}%)"),
             _e(calibration_reading(c))] for r, c in calibrated if c is not None]
    if rows:
        note = ('<p class="note">The false-positive rate the attack was asked for (&alpha;) next to the one it '
                "shows on held-out public non-members that never trained its regressor, with the exact "
                "(Clopper-Pearson) interval.</p>")
        parts.append("<h2>Calibration (QMIA)</h2>" + note
                     + _table(["attack", "&alpha; (targeted FPR)", "observed FPR", "false positives / held out",
                               "interval", "reading"], rows))
    metadata = [[_e(r.name), _e(key), _e(format_value(value))] for r in results for key, value in r.metadata.items()]
    if metadata:
        parts.append("<details><summary>Every attack's metadata</summary>"
                     + _table(["attack", "key", "value"], metadata) + "</details>")
    return "".join(parts)


def _ratio_section(report) -> str:
    header = ["attack"] + [f"precision @ {m}:{n}" for m, n in _RATIOS] + [f"accuracy @ {m}:{n}" for m, n in _RATIOS]
    rows = []
    for r in report.results.values():
        at = [r.at_ratio(m, n) for m, n in _RATIOS]
        rows.append([_e(r.name)] + [_num(c.precision_member) for c in at] + [_num(c.accuracy) for c in at])
    note = (
        '<p class="note">The same decisions re-evaluated at other member:non-member ratios '
        "(exact reweighting; recall and FAR do not change, precision does).</p>"
    )
    return "<h2>Other member:non-member ratios</h2>" + note + _table(header, rows)


def _slices_section(report) -> str:
    parts = []
    correctness_rows, class_rows, detail_rows, skipped_notes = [], [], [], []
    for r in report.results.values():
        slices, skipped = r.slices(by_class=True, by_correctness=True)
        for key in ("correctly classified", "misclassified"):
            if key in slices:
                s = slices[key]
                correctness_rows.append(
                    [_e(r.name), _e(key), _e(s.n_members), _e(s.n_non_members), _num(s.far),
                     _num(s.balanced_accuracy), _num(s.auc), _num(s.confusion.precision_member), _num(s.confusion.tpr)]
                )
        if r.labels is not None:
            summary = r.per_class_summary()
            class_rows.append(
                [_e(r.name), _e(summary["auc"]["classes"])]
                + [f'{_num(v["mean"])} &plusmn; {_num(v["std"])} (pooled {_num(v["pooled"])})' for v in summary.values()]
            )
            for key, s in slices.items():
                if key.startswith("class="):
                    detail_rows.append(
                        [_e(r.name), _e(key), _e(s.n_members), _e(s.n_non_members), _num(s.auc),
                         _num(s.balanced_accuracy), _num(s.far), _num(s.advantage)]
                    )
        skipped_notes += [f"{_e(r.name)}: slice {_e(k)} skipped ({_e(v)})" for k, v in skipped.items()]
    if correctness_rows:
        parts.append("<h2>Correctly classified vs misclassified records</h2>")
        parts.append(_table(["attack", "slice", "members", "non-members", "FAR", "balanced acc.", "AUC",
                             "precision (member)", "recall (member)"], correctness_rows))
    if class_rows:
        parts.append("<h2>Per class (mean &plusmn; std over classes)</h2>")
        parts.append(_table(["attack", "classes", "AUC", "balanced acc.", "FAR", "advantage"], class_rows))
        parts.append("<details><summary>Every class</summary>")
        parts.append(_table(["attack", "class", "members", "non-members", "AUC", "balanced acc.", "FAR", "advantage"],
                            detail_rows))
        parts.append("</details>")
    if skipped_notes:
        parts.append('<p class="note">' + "<br>".join(skipped_notes) + "</p>")
    return "".join(parts)


def render_report(report) -> str:
    """The whole page as a string."""
    results = list(report.results.values())
    body = [f"<h1>{_e(report.title)}</h1>", _facts_section(report)]
    if results:
        body.append(_metrics_section(report))
        body.append(_settings_section(report))
        body.append("<h2>ROC curves (log-log)</h2>")
        body.append(_img(figure_png(plot_roc(results)), "ROC curves of every attack on log-log axes", "roc"))
        body.append(_ratio_section(report))
        body.append(_slices_section(report))
        body.append("<h2>Score distributions</h2>")
        body.append(_img(figure_png(plot_score_histograms(results)), "member and non-member score histograms", "histograms"))
    else:
        body.append('<p class="note">No attack results.</p>')
    if report.notes:
        body.append("<h2>Notes</h2><ul>" + "".join(f"<li>{_e(n)}</li>" for n in report.notes) + "</ul>")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{_e(report.title)}</title><style>{_CSS}</style></head><body>"
        + "\n".join(body)
        + "</body></html>\n"
    )
