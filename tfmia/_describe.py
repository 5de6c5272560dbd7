"""Readable one-line descriptions of what a report stores as free-form JSON.

An attack's settings travel in ``AttackResult.metadata`` (its ``config()``)
and a user's own facts in ``ModelFacts.extra``; both are arbitrary JSON once a
report is read back from a file.  The text summary and the HTML page show
them through the functions here, which never fail on unexpected values (a
hand-edited report still renders) and return plain text: the caller makes it
printable (:func:`tfmia._text.printable`) or escapes it for HTML.

Two attacks get a purpose-built line, recognised by ``metadata["method"]``:

* ``"RMIA"``: K reference models, online or offline, ``a`` and how it was
  chosen, gamma, the temperature T and the number of population records;
* ``"QMIA"``: the head, alpha and the regressor, and its *calibration*: the
  observed false-positive rate on held-out public non-members with its
  Clopper-Pearson interval, and where alpha lies relative to that interval.

Text is ASCII (``gamma``, not the Greek letter) so that it prints on any terminal.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Mapping

__all__ = ["format_value", "attack_settings", "calibration", "calibration_line", "calibration_reading"]

_LIST_SHOWN = 8  # longer lists show their first items and their length
_DEPTH_SHOWN = 4  # objects and lists nested deeper are elided


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def format_value(value: Any, _depth: int = 0) -> str:
    """A JSON value as short text: numbers to 4 significant digits, ``k=v`` for objects, long lists cut.

    Objects and lists nested deeper than :data:`_DEPTH_SHOWN` show as ``{...}``
    and ``[...]`` (a hand-edited report can nest them as deep as JSON allows).
    """
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if _is_number(value):
        return f"{float(value):.4g}"
    if isinstance(value, Mapping):
        if _depth >= _DEPTH_SHOWN:
            return "{...}"
        return "{" + ", ".join(f"{k}={format_value(v, _depth + 1)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        if _depth >= _DEPTH_SHOWN:
            return "[...]"
        shown = ", ".join(format_value(v, _depth + 1) for v in value[:_LIST_SHOWN])
        if len(value) > _LIST_SHOWN:
            return f"[{shown}, ... ({len(value)} values)]"
        return f"[{shown}]"
    return str(value)


def _rmia_settings(m: Mapping) -> str:
    online = m.get("online") is True
    parts = [f"{format_value(m.get('n_models'))} reference models",
             "online (each audited record in half of them)" if online else "offline (none trained on an audited record)"]
    if not online:
        if m.get("a_setting") == "auto":
            grid = m.get("a_grid_auc")
            best = (f", mean AUC {max(grid):.4g} on the grid 0..1"
                    if isinstance(grid, list) and grid and all(_is_number(v) for v in grid) else "")
            how = f"chosen from the reference models alone{best}"
        else:
            how = "given"
        parts.append(f"a = {format_value(m.get('a'))} ({how})")
    parts += [f"gamma = {format_value(m.get('gamma'))}", f"T = {format_value(m.get('temperature'))}"]
    if m.get("population_records") is not None:
        parts.append(f"{format_value(m.get('population_records'))} population records")
    return ", ".join(parts)


def _qmia_settings(m: Mapping) -> str:
    parts = [f"{format_value(m.get('head'))} head", f"alpha = {format_value(m.get('alpha'))}",
             f"regressor: {format_value(m.get('architecture'))}"]
    if m.get("epochs_run") is not None:
        parts.append(f"{format_value(m.get('epochs_run'))} of {format_value(m.get('epochs'))} epochs")
    sizes = m.get("public_records")
    if isinstance(sizes, Mapping):
        parts.append("public records " + ", ".join(f"{format_value(v)} {k}" for k, v in sizes.items()))
    return ", ".join(parts)


_SETTINGS = {"RMIA": _rmia_settings, "QMIA": _qmia_settings}


def attack_settings(metadata: Mapping) -> str | None:
    """The settings line of an attack with a purpose-built description (RMIA, QMIA), else None."""
    describe = _SETTINGS.get(metadata.get("method")) if isinstance(metadata, Mapping) else None
    return None if describe is None else describe(metadata)


_CALIBRATION_NUMBERS = ("alpha", "observed_fpr", "false_positives", "held_out", "ci_low", "ci_high", "confidence")


def calibration(metadata: Mapping) -> Mapping | None:
    """``metadata["calibration"]`` when it holds the finite numbers of a QMIA calibration, else None."""
    c = metadata.get("calibration") if isinstance(metadata, Mapping) else None
    if isinstance(c, Mapping) and all(_is_number(c.get(k)) and math.isfinite(c[k]) for k in _CALIBRATION_NUMBERS):
        return c
    return None


def calibration_reading(c: Mapping) -> str:
    """Where alpha lies relative to the observed FPR's interval (see docs/qmia.md, "Reading the calibration")."""
    if c["alpha"] < c["ci_low"]:
        return "alpha below the interval: more non-members called members than asked for"
    if c["alpha"] > c["ci_high"]:
        return "alpha above the interval: fewer non-members called members than asked for (conservative)"
    return "alpha inside the interval: calibrated as far as these records tell"


def calibration_line(c: Mapping) -> str:
    """``alpha = 0.05; observed FPR 0.06 (6/100 held-out public non-members), 95% CI [...]: reading``."""
    return (f"alpha = {format_value(c['alpha'])}; observed FPR {format_value(c['observed_fpr'])} "
            f"({format_value(c['false_positives'])}/{format_value(c['held_out'])} held-out public non-members), "
            f"{100 * c['confidence']:.4g}% CI [{format_value(c['ci_low'])}, {format_value(c['ci_high'])}]: {calibration_reading(c)}")
