"""What a black-box attacker observes for a set of records: :class:`AttackInputs`.

An ``AttackInputs`` holds, for N records, the target model's outputs (logits
or probabilities, N x C), the true labels and optionally per-record losses.
The per-sample signals of ALGORITHMS.md (loss, confidence, entropy, modified
entropy, ...) are computed once by the C++ core and cached.

Members and non-members are two separate ``AttackInputs``; every attack's
``evaluate(members, non_members)`` takes that pair.
"""

from __future__ import annotations

import dataclasses
from functools import cached_property

import numpy as np
from scipy import special

from . import signals as _signals
from ._validate import as_float_array, as_labels

__all__ = ["AttackInputs"]


@dataclasses.dataclass(frozen=True, eq=False)
class AttackInputs:
    """Model outputs and labels for a set of records.

    Exactly one of ``logits`` and ``probs`` is given (N x C).  ``loss`` may be
    given to override the cross-entropy computed from the outputs (for
    example a loss with label smoothing that the attacker observes).
    ``sum_tol`` is how far probability rows may sum from 1; ``None`` accepts
    any non-negative rows, as produced by output defences such as top-k
    truncation or rounding.
    """

    labels: np.ndarray
    logits: np.ndarray | None = None
    probs: np.ndarray | None = None
    loss: np.ndarray | None = None
    sum_tol: float | None = 1e-3

    def __post_init__(self):
        if (self.logits is None) == (self.probs is None):
            raise ValueError("give exactly one of logits and probs")
        name = "logits" if self.logits is not None else "probs"
        preds = as_float_array(self.logits if self.logits is not None else self.probs, name, ndim=2)
        if preds.shape[1] < 2:
            raise ValueError(f"{name} must have at least 2 classes, got shape {preds.shape}")
        object.__setattr__(self, name, preds)
        object.__setattr__(
            self, "labels", as_labels(self.labels, "labels", n=preds.shape[0], num_classes=preds.shape[1])
        )
        if self.loss is not None:
            loss = as_float_array(self.loss, "loss", ndim=1)
            if loss.shape[0] != preds.shape[0]:
                raise ValueError(f"loss has {loss.shape[0]} entries, expected {preds.shape[0]}")
            object.__setattr__(self, "loss", loss)

    # -- construction -------------------------------------------------------
    @classmethod
    def from_model(cls, model, x, y=None, *, batch_size: int = 256, from_logits: bool | None = None,
                   logits: bool = False) -> "AttackInputs":
        """Run ``model`` over ``x`` in inference mode and wrap its outputs.

        ``x`` is an array (or a tuple of arrays for multi-input models) with
        labels ``y``, or a ``tf.data.Dataset`` yielding ``(x, y)`` batches.
        Whether the outputs are logits is what the model declares (its output
        layer's activation; see
        :func:`~tfmia.features.predictions.outputs_are_logits`, which refuses
        to guess) unless ``from_logits`` says so explicitly.  A model that
        knows what an attacker observes of it (``model.attack_inputs(x, y,
        batch_size=...)``, e.g. a :class:`~tfmia.defenses.DefendedModel`)
        is asked for it.

        ``logits=True`` keeps the pre-softmax scores of a Keras model that
        ends in a softmax (a final ``Dense(..., activation="softmax")`` or
        ``Softmax`` layer; array ``x`` only).  A float32 softmax rounds
        confident outputs to exactly 1.0, so their losses tie at 0 and
        low-FPR attacks lose resolution; from logits every signal goes
        through a stable log-softmax and keeps it.  The default matches the
        reference code, which works on probabilities.
        """
        from .features.predictions import predict_outputs

        observed = getattr(model, "attack_inputs", None)
        if callable(observed):
            if logits or from_logits:
                raise ValueError(f"a {type(model).__name__} declares its own outputs; do not pass logits or from_logits")
            return observed(x, y, batch_size=batch_size)
        outputs, labels, is_logits = predict_outputs(model, x, y, batch_size=batch_size, from_logits=from_logits,
                                                     logits=logits)
        return cls(labels=labels, logits=outputs) if is_logits else cls(labels=labels, probs=outputs)

    @classmethod
    def from_tf_privacy(cls, attack_input_data) -> tuple["AttackInputs", "AttackInputs"]:
        """Convert TensorFlow Privacy's ``AttackInputData`` to (members, non_members)."""
        from .tf_privacy import attack_inputs_from_tf_privacy

        return attack_inputs_from_tf_privacy(cls, attack_input_data)

    @classmethod
    def concatenate(cls, parts) -> "AttackInputs":
        """Records of several AttackInputs (all logits or all probabilities) one after another."""
        parts = list(parts)
        if not parts:
            raise ValueError("parts must not be empty")
        if len({p.from_logits for p in parts}) != 1:
            raise ValueError("cannot concatenate logits with probabilities")
        if len({p.num_classes for p in parts}) != 1:
            raise ValueError("cannot concatenate outputs with different numbers of classes")
        has_loss = {p.loss is not None for p in parts}
        if len(has_loss) != 1:
            raise ValueError("either every part or none must carry a loss")
        kwargs = {
            "labels": np.concatenate([p.labels for p in parts]),
            "loss": np.concatenate([p.loss for p in parts]) if has_loss == {True} else None,
            "sum_tol": None if any(p.sum_tol is None for p in parts) else max(p.sum_tol for p in parts),
        }
        kwargs["logits" if parts[0].from_logits else "probs"] = np.concatenate([p.outputs for p in parts])
        return cls(**kwargs)

    # -- views ---------------------------------------------------------------
    @property
    def from_logits(self) -> bool:
        return self.logits is not None

    @property
    def outputs(self) -> np.ndarray:
        """The logits or probabilities, whichever were given."""
        return self.logits if self.logits is not None else self.probs

    @property
    def num_classes(self) -> int:
        return int(self.outputs.shape[1])

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @cached_property
    def signals(self) -> dict[str, np.ndarray]:
        """Per-record signals (``tfmia.signals.compute``); a given ``loss`` replaces the computed one."""
        computed = _signals.compute(self.outputs, self.labels, self.from_logits, sum_tol=self.sum_tol)
        if self.loss is not None:
            computed = {**computed, "loss": self.loss}
        return computed

    @property
    def predicted_labels(self) -> np.ndarray:
        """The target's predicted class (first argmax, as numpy)."""
        return np.argmax(self.outputs, axis=1)

    @property
    def correct(self) -> np.ndarray:
        """Whether the target classifies each record correctly."""
        return self.signals["correct"]

    def subset(self, index) -> "AttackInputs":
        """The records selected by an index array or boolean mask."""
        index = np.asarray(index)
        kwargs = {
            "labels": self.labels[index],
            "loss": None if self.loss is None else self.loss[index],
            "sum_tol": self.sum_tol,
        }
        kwargs["logits" if self.from_logits else "probs"] = self.outputs[index]
        return AttackInputs(**kwargs)

    def probabilities(self) -> np.ndarray:
        """Softmax probabilities (computed stably from logits when needed)."""
        if self.probs is not None:
            return self.probs
        return special.softmax(self.logits, axis=1)
