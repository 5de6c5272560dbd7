"""One-call audit of a trained model: the engine behind ``tfmia audit``.

Calibration, as the attacker would do it:

* with ``shadow_data``: one shadow model with the target's architecture and
  compile settings (cloned from the target) is trained on half of the
  attacker's records and the attacks calibrate on its in/out outputs
  (Song & Mittal); the target's members and non-members are all evaluated;
* without: the attacker knows ``known_fraction`` of each class's members and
  non-members (Rezaei & Liu), calibrates on those and is evaluated on the rest.
"""

from __future__ import annotations

from typing import Sequence

from .attacks import METRICS, MetricAttack, PrivacyRiskScore
from .data import AttackInputs
from .report import AuditReport, ModelFacts
from .shadow_training import train_shadow_models
from .splits import known_subset
from .training import FitConfig

__all__ = ["run_audit", "model_fn_like", "AUDIT_ATTACKS"]

AUDIT_ATTACKS = METRICS + ("risk_score",)


def model_fn_like(model):
    """A model_fn building fresh copies of ``model``: same architecture, optimizer settings, loss and metrics."""
    import keras

    if not model.compiled:
        raise ValueError("the model must be saved compiled (with its optimizer and loss) to train a shadow model like it")
    optimizer_config = keras.optimizers.serialize(model.optimizer)

    def model_fn():
        clone = keras.models.clone_model(model)
        clone.compile(optimizer=keras.optimizers.deserialize(optimizer_config), loss=model.loss)
        return clone

    return model_fn


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


def run_audit(model, members_xy, non_members_xy, *, attacks: Sequence[str] = AUDIT_ATTACKS, shadow_data=None,
              shadow_epochs: int = 30, known_fraction: float = 0.8, seed: int = 0, model_name: str | None = None,
              logits: bool = False) -> AuditReport:
    """Audit ``model`` on ``(x, y)`` members and non-members; returns the AuditReport.

    ``logits=True`` audits the pre-softmax scores of a model ending in a
    softmax, the shadow model's too (``AttackInputs.from_model``).
    """
    unknown = [a for a in attacks if a not in AUDIT_ATTACKS]
    if unknown or not attacks:
        raise ValueError(f"--attacks: unknown {unknown or 'empty list'}; choose from {', '.join(AUDIT_ATTACKS)}")
    members = AttackInputs.from_model(model, *members_xy, logits=logits)
    non_members = AttackInputs.from_model(model, *non_members_xy, logits=logits)
    s_in, s_out, e_in, e_out, note = _calibration(model, members, non_members, shadow_data, shadow_epochs,
                                                  known_fraction, seed, logits)
    facts = ModelFacts.from_inputs(members, non_members, model_name=model_name or model.name)
    report = AuditReport(facts=facts, notes=[note])
    for name in attacks:
        if name == "risk_score":
            report.add(PrivacyRiskScore().fit(s_in, s_out).evaluate(e_in, e_out))
            continue
        for class_dependent in ((False,) if name == "correctness" else (True, False)):
            report.add(MetricAttack(name, class_dependent=class_dependent).fit(s_in, s_out).evaluate(e_in, e_out))
    return report

