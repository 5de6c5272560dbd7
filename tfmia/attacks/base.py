"""What every attack shares: input coercion and ``evaluate``.

An attack learns from knowledge the attacker has (``fit``), gives one float
per target record, higher = more likely a member (``score``), may decide
(``predict``), and measures itself on known members and non-members
(``evaluate`` -> :class:`~tfmia.evaluation.AttackResult`).

Records can be given as

* an :class:`~tfmia.data.AttackInputs`,
* a ``(model, x, y)`` tuple: the model is run in inference mode over ``x``;
  the model declares whether its outputs are logits or probabilities
  (:func:`~tfmia.features.predictions.outputs_are_logits`).

Whether outputs are probabilities or logits is never guessed from their
values: bare ``(outputs, labels)`` arrays are refused; wrap them as
``AttackInputs(probs=..., labels=...)`` or ``AttackInputs(logits=..., labels=...)``.
"""

from __future__ import annotations

import abc

import numpy as np

from ..data import AttackInputs
from ..evaluation import AttackResult

__all__ = ["Attack", "as_attack_inputs", "calibration_inputs", "pool_indices"]


def as_attack_inputs(records, name: str = "records") -> AttackInputs:
    """Coerce the accepted record forms (see module docstring) to AttackInputs."""
    if isinstance(records, AttackInputs):
        return records
    if isinstance(records, tuple) and len(records) == 3:
        model, x, y = records
        return AttackInputs.from_model(model, x, y)
    if isinstance(records, tuple) and len(records) == 2:
        raise ValueError(
            f"{name}: an (outputs, labels) pair does not say whether the outputs are probabilities or logits; "
            "pass AttackInputs(probs=outputs, labels=labels) or AttackInputs(logits=outputs, labels=labels)"
        )
    raise ValueError(
        f"{name} must be AttackInputs or a (model, x, y) tuple, got {type(records).__name__}"
    )


def pool_indices(indices, n: int, pool: int) -> np.ndarray:
    """Positions of ``n`` scored records among the ``pool`` records an attack was fitted on.

    ``None`` means the records are the whole pool, in order.  Attacks whose
    reference models were queried on a fixed pool (LiRA, RMIA) score records
    by these positions.
    """
    if indices is None:
        if n != pool:
            raise ValueError(f"indices: give the records' positions in the pool ({n} records given, pool of {pool})")
        return np.arange(pool)
    indices = np.asarray(indices)
    if indices.ndim != 1 or indices.shape[0] != n or not np.issubdtype(indices.dtype, np.integer):
        raise ValueError(f"indices must be {n} integer positions in the pool, got {indices.dtype} {indices.shape}")
    if indices.size and (indices.min() < 0 or indices.max() >= pool):
        raise ValueError(f"indices must lie in [0, {pool}), found {int(indices.min())}..{int(indices.max())}")
    return indices


def calibration_inputs(members, non_members) -> tuple[AttackInputs, AttackInputs]:
    """The attacker's known members and non-members as AttackInputs over the same classes."""
    members = as_attack_inputs(members, "members")
    non_members = as_attack_inputs(non_members, "non_members")
    if members.num_classes != non_members.num_classes:
        raise ValueError(f"members have {members.num_classes} classes but non_members have {non_members.num_classes}")
    return members, non_members


class Attack(abc.ABC):
    """Base class: subclasses implement ``score`` and usually ``fit``."""

    #: Whether the attack calibrated on models trained with the defence it faces (None: not applicable).
    adaptive: bool | None = None

    @property
    def name(self) -> str:
        return type(self).__name__

    @abc.abstractmethod
    def score(self, records) -> np.ndarray:
        """One float per record, higher = more likely a member."""

    def threshold(self) -> float | None:
        """Decision threshold on :meth:`score` (member iff score >= threshold), if the attack has one."""
        return None

    def predict(self, records) -> np.ndarray:
        """Member decisions (needs a fitted decision threshold)."""
        t = self.threshold()
        if t is None:
            raise ValueError(f"{self.name} has no decision threshold; fit it first")
        return self.score(records) >= t

    def config(self) -> dict:
        """JSON-able description of the attack's settings, stored with its results."""
        return {}

    def evaluate(self, members, non_members, *, name: str | None = None) -> AttackResult:
        """Score known members and non-members and measure the attack (AttackResult)."""
        members = as_attack_inputs(members, "members")
        non_members = as_attack_inputs(non_members, "non_members")
        return self._result(members, non_members, self.score(members), self.score(non_members), name)

    def _result(self, members: AttackInputs, non_members: AttackInputs, member_scores, non_member_scores,
                name: str | None, *, decisions=None) -> AttackResult:
        """AttackResult of scores on members and non-members, with the target's view of both (labels, losses);
        ``decisions`` where the attack's own rule is not ``score >= threshold``."""
        scores = np.concatenate([member_scores, non_member_scores])
        is_member = np.concatenate([np.ones(len(members), bool), np.zeros(len(non_members), bool)])
        labels = np.concatenate([members.labels, non_members.labels])
        predicted = np.concatenate([members.predicted_labels, non_members.predicted_labels])
        losses = np.concatenate([members.signals["loss"], non_members.signals["loss"]])
        return AttackResult.from_scores(
            scores,
            is_member,
            name=name or self.name,
            threshold=self.threshold(),
            decisions=decisions,
            labels=labels,
            predicted_labels=predicted,
            losses=losses,
            adaptive=self.adaptive,
            metadata=self.config(),
        )
