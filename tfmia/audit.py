"""One-call audit of a trained model: the engine behind ``tfmia audit``.

Calibration of the metric attacks and the privacy risk score, as the attacker
would do it:

* with ``shadow_data``: one shadow model with the target's architecture and
  compile settings (cloned from the target) is trained on half of the
  attacker's records and the attacks calibrate on its in/out outputs
  (Song & Mittal); the target's members and non-members are all evaluated;
* without: the attacker knows ``known_fraction`` of each class's members and
  non-members (Rezaei & Liu), calibrates on those and is evaluated on the rest.

``"rmia"`` and ``"qmia"`` need ``shadow_data`` (the attacker's own records)
and are evaluated on every target member and non-member:

* RMIA (offline, :class:`~tfmia.attacks.RMIA`): a seeded random
  ``population_fraction`` of ``shadow_data`` is held out as population
  records; ``references`` reference models (the target's architecture and
  compile settings, ``shadow_epochs`` epochs) train on random halves of the
  rest; ``a`` is chosen from the references alone unless given.
* QMIA (:class:`~tfmia.attacks.QuantileMIA`): all of ``shadow_data`` are the
  public non-members its regressor (the target's architecture with a
  regression head) learns from, a fifth of them held out to report the
  observed false-positive rate next to ``alpha``.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ._validate import check_fraction, check_positive_int
from .attacks import METRICS, RMIA, MetricAttack, PrivacyRiskScore, QuantileMIA
from .data import AttackInputs
from .report import AuditReport, ModelFacts
from .shadow_training import train_shadow_models
from .splits import known_subset
from .training import FitConfig

__all__ = ["run_audit", "model_fn_like", "check_records", "check_attacks", "AUDIT_ATTACKS", "SHADOW_DATA_ATTACKS"]

AUDIT_ATTACKS = METRICS + ("risk_score",)
"""The attacks run by default: they calibrate on a shadow model or on known members and non-members."""
SHADOW_DATA_ATTACKS = ("rmia", "qmia")
"""Attacks that need the attacker's own records (``shadow_data``): reference models' or a regressor's training data."""


def model_fn_like(model):
    """A model_fn building fresh copies of ``model``: same architecture, optimizer settings, loss and metrics."""
    import keras

    if not model.compiled:
        raise ValueError("the model must be saved compiled (with its optimizer and loss) to train shadow or "
                         "reference models like it")
    optimizer_config = keras.optimizers.serialize(model.optimizer)

    def model_fn():
        clone = keras.models.clone_model(model)
        clone.compile(optimizer=keras.optimizers.deserialize(optimizer_config), loss=model.loss)
        return clone

    return model_fn


def check_attacks(attacks: Sequence[str]) -> list[str]:
    """The attack names without repeats, refused unless each is one of :data:`AUDIT_ATTACKS` or
    :data:`SHADOW_DATA_ATTACKS` (and there is one)."""
    attacks = list(dict.fromkeys(attacks))
    known = AUDIT_ATTACKS + SHADOW_DATA_ATTACKS
    unknown = [a for a in attacks if a not in known]
    if unknown or not attacks:
        raise ValueError(f"--attacks: unknown {unknown or 'empty list'}; choose from {', '.join(known)}")
    return attacks


def check_rmia_a(a) -> float | str:
    """RMIA's offline ``a``: ``"auto"`` or a number in [0, 1]."""
    if isinstance(a, str) and a == "auto":
        return a
    try:
        value = float(a)
    except (TypeError, ValueError):
        value = math.nan
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"rmia_a must be 'auto' or a number in [0, 1], got {a!r}")
    return value


def _model_shapes(model) -> tuple[tuple | None, int | None]:
    """(input shape without the batch axis, number of classes) of a single-input classifier, None where unknown."""
    try:
        input_shape, output_shape = model.input_shape, model.output_shape
    except (AttributeError, ValueError):  # not built, or several inputs/outputs
        return None, None
    if not isinstance(input_shape, tuple) or not all(d is None or isinstance(d, int) for d in input_shape):
        input_shape = None
    classes = output_shape[-1] if isinstance(output_shape, tuple) and isinstance(output_shape[-1], int) else None
    return (None if input_shape is None else input_shape[1:]), (None if classes is None else max(classes, 2))


def _check_inputs(x, name: str, input_shape: tuple | None) -> np.ndarray:
    """``x`` as an array of real numbers, finite, one record per row, shaped as the model takes them."""
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise ValueError(f"{name}: x must hold real numbers, got dtype {x.dtype}")
    if x.ndim == 0:
        raise ValueError(f"{name}: x must hold one record per row, got a 0-d array")
    if x.shape[0] == 0:
        raise ValueError(f"{name}: no records")
    if input_shape is not None and (
        len(input_shape) != x.ndim - 1 or any(d is not None and d != n for d, n in zip(input_shape, x.shape[1:]))
    ):
        shown = tuple("any" if d is None else d for d in input_shape)
        raise ValueError(f"{name}: x has records of shape {x.shape[1:]}, the model takes {shown}")
    if x.dtype.kind == "f":
        finite = np.isfinite(x).reshape(len(x), -1).all(axis=1)
        if not finite.all():
            raise ValueError(f"{name}: x contains NaN or Inf (first in record {int(np.argmin(finite))})")
    return x


def _check_labels(y, name: str, n: int, classes: int | None) -> np.ndarray:
    """``y`` as int64 class indices in ``[0, classes)``, one per record."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"{name}: y must be 1-D class indices, got shape {y.shape} "
                         "(for one-hot labels save y.argmax(axis=1))")
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise ValueError(f"{name}: y must hold whole-number class indices")
    elif y.dtype.kind not in "iu":
        raise ValueError(f"{name}: y must hold integer class indices, got dtype {y.dtype}")
    if y.shape[0] != n:
        raise ValueError(f"{name}: x has {n} records but y has {y.shape[0]}")
    low, high = y.min(), y.max()
    if low < 0 or (classes is not None and high >= classes):
        bound = f"[0, {classes})" if classes is not None else ">= 0"
        raise ValueError(f"{name}: y must be class indices {bound} (the model has {classes} classes), "
                         f"found {int(low) if low < 0 else int(high)}")
    return y.astype(np.int64)


def check_records(xy, name: str, model=None) -> tuple:
    """``(x, y)`` checked for auditing ``model``; every message starts with ``name``.

    x must hold real, finite numbers, one record per row, shaped as the
    model's input (a tuple of arrays for a multi-input model is checked
    array by array); y class indices below the model's number of classes,
    one per record.  The CLI names the file here, Python callers the argument.
    """
    if not isinstance(xy, (tuple, list)) or len(xy) != 2:
        raise ValueError(f"{name} must be a pair (x, y)")
    x, y = xy
    input_shape, classes = _model_shapes(model) if model is not None else (None, None)
    if isinstance(x, (tuple, list)):
        x = type(x)(_check_inputs(part, f"{name} (input {i})", None) for i, part in enumerate(x))
        lengths = {len(part) for part in x}
        if len(lengths) != 1:
            raise ValueError(f"{name}: the inputs of x have different numbers of records {sorted(lengths)}")
        n = lengths.pop()
    else:
        x = _check_inputs(x, name, input_shape)
        n = len(x)
    return x, _check_labels(y, name, n, classes)


def _calibration(model, members: AttackInputs, non_members: AttackInputs, shadow_data, shadow_epochs: int,
                 known_fraction: float, seed: int, logits: bool):
    """(shadow members, shadow non-members, evaluated members, evaluated non-members, note)."""
    if shadow_data is not None:
        x, y = shadow_data
        shadows = train_shadow_models(model_fn_like(model), x, y, n_shadows=1, fit=FitConfig(epochs=shadow_epochs),
                                      train_size=len(y) // 2, seed=seed, progress=False, logits=logits)
        s_in, s_out = shadows.pooled_attack_inputs()
        note = f"calibrated on one shadow model trained for {shadow_epochs} epochs on {len(y) // 2} attacker records"
        return s_in, s_out, members, non_members, note
    known_in, eval_in = known_subset(members.labels, known_fraction, seed=seed)
    known_out, eval_out = known_subset(non_members.labels, known_fraction, seed=seed + 1)
    note = (f"calibrated on a known {known_fraction:.0%} of each class's members and non-members; "
            f"evaluated on the remaining {eval_in.size} members and {eval_out.size} non-members")
    return (members.subset(known_in), non_members.subset(known_out), members.subset(eval_in),
            non_members.subset(eval_out), note)


def _population_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(population, reference pool) indices of ``n`` attacker records: a seeded random ``fraction`` held out."""
    n_population = round(fraction * n)
    if n_population < 1 or n - n_population < 2:
        raise ValueError(f"shadow_data: {n} records are too few to hold out a population_fraction of {fraction:g} "
                         "as RMIA's population and train reference models on at least 2 others")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[:n_population]), np.sort(order[n_population:])


def _rmia_result(model, members_xy, non_members_xy, members, non_members, shadow_data, *, references: int,
                 rmia_a, shadow_epochs: int, population_fraction: float, seed: int, logits: bool):
    """(offline RMIA's AttackResult on every target record, a note saying how it was set up)."""
    population, pool = _population_split(len(shadow_data[1]), population_fraction, seed)
    x_pop, y_pop = shadow_data[0][population], shadow_data[1][population]
    rmia = RMIA(model_fn_like(model), fit=FitConfig(epochs=shadow_epochs), n_models=references, online=False,
                a=rmia_a, seed=seed, progress=False, logits=logits)
    rmia.fit(np.concatenate([members_xy[0], non_members_xy[0]]), np.concatenate([members_xy[1], non_members_xy[1]]),
             population=(x_pop, y_pop), reference_data=(shadow_data[0][pool], shadow_data[1][pool]))
    n_in, n_out = len(members), len(non_members)
    result = rmia.evaluate(members, non_members, population=AttackInputs.from_model(model, x_pop, y_pop, logits=logits),
                           member_indices=np.arange(n_in), non_member_indices=np.arange(n_in, n_in + n_out))
    note = (f"RMIA: {references} reference models trained for {shadow_epochs} epochs on random halves of "
            f"{pool.size} attacker records; {population.size} other attacker records "
            f"({population_fraction:.0%}, seeded) are its population")
    return result, note


def _qmia_result(model, members_xy, non_members_xy, members, non_members, shadow_data, *, alpha: float, seed: int,
                 logits: bool):
    """(QMIA's AttackResult on every target record, a note saying how it was set up)."""
    qmia = QuantileMIA(alpha, logits=logits, seed=seed).fit(model, *shadow_data)
    result = qmia.evaluate_observed(members_xy[0], members, non_members_xy[0], non_members)
    held_out = qmia.sizes["calibration"]
    note = (f"QMIA: regressor trained on {len(shadow_data[1]) - held_out} attacker records as public non-members; "
            f"{held_out} others held out measure its false-positive rate at alpha = {alpha:g}")
    return result, note


def run_audit(model, members_xy, non_members_xy, *, attacks: Sequence[str] = AUDIT_ATTACKS, shadow_data=None,
              shadow_epochs: int = 30, known_fraction: float = 0.8, seed: int = 0, model_name: str | None = None,
              logits: bool = False, references: int = 2, rmia_a: float | str = "auto", alpha: float = 0.05,
              population_fraction: float = 0.2) -> AuditReport:
    """Audit ``model`` on ``(x, y)`` members and non-members; returns the AuditReport.

    ``attacks`` come from :data:`AUDIT_ATTACKS` and :data:`SHADOW_DATA_ATTACKS`
    (``"rmia"``, ``"qmia"``: they need ``shadow_data``; see the module
    docstring for how each uses it).  ``references``, ``rmia_a`` and
    ``population_fraction`` set up RMIA, ``alpha`` QMIA's targeted
    false-positive rate.  ``logits=True`` audits the pre-softmax scores of a
    model ending in a softmax, the shadow model's too
    (``AttackInputs.from_model``).  Every argument is checked (records by
    :func:`check_records`) before the model runs; a problem is a ValueError
    naming the argument.
    """
    attacks = check_attacks(attacks)
    check_positive_int(shadow_epochs, "shadow_epochs")
    check_positive_int(seed, "seed", minimum=0)
    check_fraction(known_fraction, "known_fraction")
    references = check_positive_int(references, "references")
    rmia_a = check_rmia_a(rmia_a)
    alpha = check_fraction(alpha, "alpha")
    population_fraction = check_fraction(population_fraction, "population_fraction")
    members_xy = check_records(members_xy, "members_xy", model)
    non_members_xy = check_records(non_members_xy, "non_members_xy", model)
    if shadow_data is not None:
        shadow_data = check_records(shadow_data, "shadow_data", model)
    needing_data = [a for a in attacks if a in SHADOW_DATA_ATTACKS]
    if needing_data:
        names = " and ".join(needing_data)
        if shadow_data is None:
            raise ValueError(f"shadow_data: {names} {'needs' if len(needing_data) == 1 else 'need'} the attacker's "
                             "own records (to train reference models or a regressor on)")
        if isinstance(shadow_data[0], (tuple, list)):
            raise ValueError(f"shadow_data: {names} support single-input models only")
    if "rmia" in attacks and rmia_a == "auto" and references < 2:
        raise ValueError("rmia_a: with 1 reference model a cannot be chosen automatically; give a number in [0, 1]")
    metric_attacks = [a for a in attacks if a not in SHADOW_DATA_ATTACKS]
    if shadow_data is not None and (metric_attacks or "rmia" in attacks):
        model_fn_like(model)  # a model saved without its compile settings cannot be retrained: refuse now
    members = AttackInputs.from_model(model, *members_xy, logits=logits)
    non_members = AttackInputs.from_model(model, *non_members_xy, logits=logits)
    facts = ModelFacts.from_inputs(members, non_members, model_name=model_name or model.name)
    report = AuditReport(facts=facts)
    if metric_attacks:
        s_in, s_out, e_in, e_out, note = _calibration(model, members, non_members, shadow_data, shadow_epochs,
                                                      known_fraction, seed, logits)
        report.notes.append(note)
    for name in metric_attacks:
        if name == "risk_score":
            report.add(PrivacyRiskScore().fit(s_in, s_out).evaluate(e_in, e_out))
            continue
        for class_dependent in ((False,) if name == "correctness" else (True, False)):
            report.add(MetricAttack(name, class_dependent=class_dependent).fit(s_in, s_out).evaluate(e_in, e_out))
    records = (model, members_xy, non_members_xy, members, non_members, shadow_data)
    if "rmia" in attacks:
        result, note = _rmia_result(*records, references=references, rmia_a=rmia_a, shadow_epochs=shadow_epochs,
                                    population_fraction=population_fraction, seed=seed, logits=logits)
        report.add(result)
        report.notes.append(note)
    if "qmia" in attacks:
        result, note = _qmia_result(*records, alpha=alpha, seed=seed, logits=logits)
        report.add(result)
        report.notes.append(note)
    return report

