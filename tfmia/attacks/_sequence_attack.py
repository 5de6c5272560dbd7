"""What SeqMIA and TrajectoryMIA share: a neural attack model over distilled-trajectory sequences.

``fit(x_shadow, y_shadow, x_distill)`` builds the shadow sequences
(:class:`~tfmia.features.trajectories.DistilledSequences`), selects the
attack's metrics, optionally shuffles the steps (control) and standardises
with shadow statistics, and trains the attack model on shadow members (1)
and non-members (0).  ``score((target, x, y))`` builds the target records'
sequences from the target's own distillation and returns P(member).

The trained attack model is kept in ``<run_dir>/attack_<name>_<config hash>/``;
a rerun loads it instead of training again.
"""

from __future__ import annotations

import hashlib
import json
import re

import numpy as np

from ..attack_models import AttackTraining, build_attack_model, member_probability, train_attack_model
from ..data import AttackInputs
from ..defenses.adaptive import is_defended
from ..evaluation import AttackResult
from ..features.sequences import SequenceScaler, check_metrics, select_metrics, shuffle_steps
from ..features.trajectories import DistilledSequences
from ..runs import RunDirectory
from ..training import FitConfig, save_weights_atomically
from .base import Attack

_WEIGHTS = "attack.weights.h5"


def _target_records(records, name: str):
    if not (isinstance(records, tuple) and len(records) == 3):
        raise ValueError(f"{name} must be a (target_model, x, y) tuple: the attack queries the target and distils it")
    return records


class SequenceAttack(Attack):
    """Base of the sequence attacks; subclasses set the architecture and defaults (see module docstring)."""

    def __init__(self, model_fn, *, fit: FitConfig, distill_epochs: int, metrics, architecture: str,
                 hidden: int | None, mlp_layers: tuple[int, ...] | None, output: str, training: AttackTraining,
                 standardize: bool, shuffled: bool,
                 distill_batch_size: int | None, shadow_train_size: int | None, run_dir, executor, seed: int,
                 progress: bool):
        if not isinstance(training, AttackTraining):
            raise ValueError(f"training must be an AttackTraining, got {type(training).__name__}")
        self.metrics = check_metrics(metrics)
        self.architecture = architecture
        self.hidden = hidden  # RNN / Transformer width (None for the MLP)
        self.mlp_layers = None if mlp_layers is None else tuple(mlp_layers)  # MLP widths (None otherwise)
        self.output = output
        self.training = training
        self.standardize = bool(standardize)
        self.shuffled = bool(shuffled)
        self.seed = int(seed)
        self.progress = bool(progress)
        self.adaptive = True if is_defended(model_fn) else None
        self.features = DistilledSequences(model_fn, fit=fit, distill_epochs=distill_epochs,
                                           distill_batch_size=distill_batch_size, shadow_train_size=shadow_train_size,
                                           seed=seed, run_dir=run_dir, executor=executor, progress=progress)
        # Built now so that a bad architecture/output/size fails before any training.
        self._model = self._build()
        self.scaler: SequenceScaler | None = None
        self.history: dict | None = None

    def _build(self):
        sizes = {"mlp_layers": self.mlp_layers} if self.architecture == "mlp" else {"hidden": self.hidden}
        return build_attack_model(self.architecture, self.features.steps, len(self.metrics), output=self.output,
                                  weight_decay=self.training.weight_decay, seed=self.seed, **sizes)

    def config(self) -> dict:
        return {
            "architecture": self.architecture,
            "metrics": list(self.metrics),
            "hidden": self.hidden,
            "mlp_layers": None if self.mlp_layers is None else list(self.mlp_layers),
            "output": self.output,
            "training": self.training.to_dict(),
            "standardize": self.standardize,
            "shuffled": self.shuffled,
            **self.features.config(),
        }

    def _attack_run(self) -> RunDirectory:
        config = {**self.config(), **self.features.run_config()}
        digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:10]
        slug = re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")
        return RunDirectory(self.features.root / f"attack_{slug}_{digest}", "attack_model", config)

    def _features(self, sequences, seed: int) -> np.ndarray:
        chosen = select_metrics(sequences, self.metrics)
        return shuffle_steps(chosen, seed=seed) if self.shuffled else chosen

    # -- Attack API ---------------------------------------------------------------
    def fit(self, x_shadow, y_shadow, x_distill) -> "SequenceAttack":
        """Train the shadow model, distil it, and train the attack model on its records' sequences.

        Args:
            x_shadow, y_shadow: the attacker's data; half trains the shadow model (members), half is held out.
            x_distill: the distillation set (disjoint from everything else), used for target and shadow.
        """
        shadow = self.features.shadow(x_shadow, y_shadow, x_distill)
        features = self._features(shadow.sequences, self.seed)
        self.scaler = SequenceScaler.fit(features) if self.standardize else SequenceScaler.identity(features.shape[2])
        features = self.scaler.transform(features)
        run = self._attack_run()
        self._model = self._build()
        if run.has(_WEIGHTS):
            self._model.load_weights(run.path(_WEIGHTS))
            self.history = run.load_json("history.json")
        else:
            history = train_attack_model(self._model, features, shadow.is_member, self.training, seed=self.seed,
                                         verbose=0)
            self.history = {k: [float(v) for v in vals] for k, vals in history.history.items()}
            run.save_json("history.json", self.history)
            save_weights_atomically(self._model, run.path(_WEIGHTS))  # last: marks the attack as trained
        return self

    def _check_fitted(self) -> None:
        if self.scaler is None:
            raise ValueError(f"{self.name} must be fitted before scoring (call fit with shadow and distillation data)")

    def sequences(self, records) -> np.ndarray:
        """The attack model's input for ``(target, x, y)``: selected, (shuffled,) standardised sequences."""
        self._check_fitted()
        target, x, y = _target_records(records, "records")
        return self.scaler.transform(self._features(self.features.target(target, x, y), self.seed + 1))

    def score(self, records) -> np.ndarray:
        """P(member) for records ``(target, x, y)``."""
        return member_probability(self._model, self.sequences(records))

    def threshold(self) -> float:
        return 0.5

    def evaluate(self, members, non_members, *, name: str | None = None) -> AttackResult:
        """Score ``(target, x_in, y_in)`` and ``(target, x_out, y_out)`` and measure the attack."""
        views = []
        for records, label in ((members, "members"), (non_members, "non_members")):
            target, x, y = _target_records(records, label)
            views.append(AttackInputs.from_model(target, x, y))
        return self._result(views[0], views[1], self.score(members), self.score(non_members), name)
