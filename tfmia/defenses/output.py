"""Output defences: what the model's API returns instead of its raw prediction vector.

Each defence is a callable ``defence(outputs, is_logits) -> (outputs, is_logits)``
acting on a batch of N x C logits or probabilities, so it can wrap a model
(:meth:`OutputDefense.wrap`), a set of recorded outputs (:meth:`OutputDefense.apply`
on AttackInputs) or a shadow model's outputs (``ShadowModels.attack_inputs(...,
output_transform=defence)``).  Calibrating an attack on shadow outputs passed
through the same defence makes it adaptive (Song & Mittal 2021, section 6).

* :class:`TopK`         Shokri et al.: only the k largest probabilities are returned (the rest 0).
* :class:`Rounding`     Shokri et al.: probabilities rounded to d decimal digits.
* :class:`Temperature`  softmax(logits / T): T > 1 flattens the vector.
* :class:`MemGuardStyle` confidence masking in the spirit of MemGuard (Jia et al. 2019):
  the predicted class is kept while the top confidence is capped.
"""

from __future__ import annotations

import abc

import numpy as np
from scipy import special

from .._validate import as_float_array, check_positive_int
from ..data import AttackInputs

__all__ = ["OutputDefense", "TopK", "Rounding", "Temperature", "MemGuardStyle", "DefendedModel"]


def _probabilities(outputs: np.ndarray, is_logits: bool) -> np.ndarray:
    return special.softmax(outputs.astype(np.float64), axis=1) if is_logits else outputs.astype(np.float64)


class OutputDefense(abc.ABC):
    """Base class: subclasses implement :meth:`transform` on probabilities or logits."""

    @abc.abstractmethod
    def __call__(self, outputs: np.ndarray, is_logits: bool) -> tuple[np.ndarray, bool]:
        """Defended outputs for a batch, and whether they are logits."""

    def apply(self, inputs: AttackInputs) -> AttackInputs:
        """The records as an attacker observes them behind this defence."""
        out, is_logits = self(inputs.outputs, inputs.from_logits)
        kwargs = {"labels": inputs.labels, "loss": inputs.loss, "sum_tol": None}
        kwargs["logits" if is_logits else "probs"] = out
        return AttackInputs(**kwargs)

    def wrap(self, model) -> "DefendedModel":
        """A predict-only view of ``model`` that returns defended outputs."""
        return DefendedModel(model, self)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class TopK(OutputDefense):
    """Keep the k largest probabilities of each row, zero the others (not renormalised)."""

    def __init__(self, k: int):
        self.k = check_positive_int(k, "k")

    def __call__(self, outputs, is_logits):
        p = _probabilities(as_float_array(outputs, "outputs", ndim=2), is_logits)
        if self.k >= p.shape[1]:
            return p, False
        cut = np.argpartition(-p, self.k - 1, axis=1)[:, : self.k]
        out = np.zeros_like(p)
        rows = np.arange(p.shape[0])[:, None]
        out[rows, cut] = p[rows, cut]
        return out, False


class Rounding(OutputDefense):
    """Round probabilities to ``digits`` decimal digits."""

    def __init__(self, digits: int):
        self.digits = check_positive_int(digits, "digits")

    def __call__(self, outputs, is_logits):
        p = _probabilities(as_float_array(outputs, "outputs", ndim=2), is_logits)
        return np.round(p, self.digits), False


class Temperature(OutputDefense):
    """softmax(z / T) from logits z (from probabilities, z = log p)."""

    def __init__(self, temperature: float):
        t = float(temperature)
        if not np.isfinite(t) or t <= 0:
            raise ValueError(f"temperature must be a positive number, got {temperature!r}")
        self.temperature = t

    def __call__(self, outputs, is_logits):
        x = as_float_array(outputs, "outputs", ndim=2).astype(np.float64)
        z = x if is_logits else np.log(np.maximum(x, 1e-30))
        return special.softmax(z / self.temperature, axis=1), False


class MemGuardStyle(OutputDefense):
    """Cap the top confidence at ``confidence`` and keep the predicted class.

    Rows whose largest probability exceeds ``confidence`` get it lowered to
    ``confidence``; the remaining mass ``1 - confidence`` is shared by the other
    classes in proportion to their original probabilities.  Because
    ``confidence`` > 0.5, no other class can reach or tie the predicted one,
    and rows still sum to 1.  Like MemGuard it leaves the label intact and
    defeats an attacker who calibrated on undefended outputs; unlike MemGuard it does not solve an
    optimisation against a defender-side attack model, and an adaptive
    attacker (calibrating on defended shadow outputs) still sees that capped
    rows are more likely members.
    """

    def __init__(self, confidence: float = 0.6):
        c = float(confidence)
        if not 0.5 < c < 1.0:
            raise ValueError(f"confidence must be in (0.5, 1), got {confidence!r}")
        self.confidence = c

    def __call__(self, outputs, is_logits):
        p = _probabilities(as_float_array(outputs, "outputs", ndim=2), is_logits)
        top = p.argmax(axis=1)
        rows = np.arange(p.shape[0])
        p_top = p[rows, top]
        capped = p_top > self.confidence
        rest = 1.0 - p_top
        scale = np.where(capped & (rest > 0), (1.0 - self.confidence) / np.where(rest > 0, rest, 1.0), 1.0)
        out = p * scale[:, None]
        out[rows[capped], top[capped]] = self.confidence
        # A row that was exactly one-hot has no other mass to scale: spread it evenly.
        flat = capped & (rest <= 0)
        if flat.any():
            out[flat] = (1.0 - self.confidence) / (p.shape[1] - 1)
            out[rows[flat], top[flat]] = self.confidence
        return out, False


class DefendedModel:
    """Predict-only wrapper: ``predict(x)`` returns the defended probabilities of ``model``."""

    #: Every output defence returns probabilities, whatever the wrapped model emits.
    outputs_are_logits = False

    def __init__(self, model, defense: OutputDefense):
        self.model = model
        self.defense = defense

    def predict(self, x, batch_size: int = 256, verbose: int = 0):
        from ..features.predictions import outputs_are_logits

        raw = self.model.predict(x, batch_size=batch_size, verbose=verbose)
        out, _ = self.defense(raw, outputs_are_logits(self.model))
        return out

    def attack_inputs(self, x, y, *, batch_size: int = 256) -> AttackInputs:
        """What an attacker observes for ``(x, y)`` behind the defence."""
        return self.defense.apply(AttackInputs.from_model(self.model, x, y, batch_size=batch_size))
