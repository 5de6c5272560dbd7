"""Shokri et al.'s shadow-model attack (S&P 2017, section IV).

The attacker trains k shadow models with the target's architecture and
recipe, each on its own in/out split of attacker data (real, or synthesized
with ``tfmia.synthesis``), records each shadow model's prediction vector on
its in and out records, and trains attack models to tell "in" from "out":

* ``per_class=True`` (Shokri): one binary attack model per true class c,
  trained on the prediction vectors of class-c shadow records;
* ``per_class=False``: one attack model on [prediction vector, one-hot label].
  With ``n_shadows=1`` this is the single-shadow attack of Salem et al. (2019).

A target record of class c is scored by P(in) from the class-c model.  The
attack calls a record a member iff P(in) >= 0.5.  Shadow training runs on any
``concurrent.futures`` executor and checkpoints to ``run_dir``
(``tfmia.shadow_training``); passing the target's output defence as
``output_transform``, or a ``model_fn`` that trains with the target's
training-time defence (``tfmia.defenses.defended``), makes the attack adaptive.
"""

from __future__ import annotations

import numpy as np

from ..classifiers import CLASSIFIERS, make_classifier
from ..data import AttackInputs
from ..defenses.adaptive import is_defended
from ..shadow_training import ShadowModels, train_shadow_models
from ..training import FitConfig
from .._validate import check_positive_int
from .base import Attack, as_attack_inputs

__all__ = ["ShadowModelAttack"]


class ShadowModelAttack(Attack):
    """Shokri et al.'s attack: k shadow models, then per-class (or one global) attack models.

    Args:
        model_fn: zero-argument callable returning a compiled Keras model with the target's recipe.
        n_shadows: number of shadow models k (>= 1).
        attack_model: "mlp" (Keras, default), "logreg", "rf" or "gbdt" (scikit-learn).
        per_class: one attack model per true class (default) or one global model.
        fit_config: the target's training recipe (epochs, batch size).
        train_size: training-set size of each shadow model (the target's).
        scheme: "shokri" (independent draws, default) or "disjoint" (see tfmia.shadow_training).
        output_transform: the target's output defence, applied to shadow outputs (adaptive attack).
        attack_options: extra keyword arguments for the attack classifier (e.g. epochs for "mlp").
        seed, run_dir, executor, progress, packed, pack_size: see ``train_shadow_models`` (by default the
            shadow models train packed, as one Keras model, where the architecture allows).
    """

    def __init__(
        self,
        model_fn,
        n_shadows: int = 1,
        attack_model: str = "mlp",
        per_class: bool = True,
        *,
        fit_config: FitConfig,
        train_size: int | None = None,
        scheme: str = "shokri",
        output_transform=None,
        attack_options: dict | None = None,
        seed: int = 0,
        run_dir=None,
        executor=None,
        progress: bool = True,
        packed="auto",
        pack_size: int | None = None,
    ):
        self.model_fn = model_fn
        self.n_shadows = check_positive_int(n_shadows, "n_shadows")
        if attack_model not in CLASSIFIERS:
            raise ValueError(f"attack_model must be one of {CLASSIFIERS}, got {attack_model!r}")
        if scheme not in ("shokri", "disjoint"):
            raise ValueError(f"scheme must be 'shokri' or 'disjoint', got {scheme!r}")
        self.attack_model = attack_model
        self.per_class = bool(per_class)
        self.fit_config = fit_config
        self.train_size = train_size
        self.scheme = scheme
        self.output_transform = output_transform
        self.adaptive = True if output_transform is not None or is_defended(model_fn) else None
        self.attack_options = dict(attack_options or {})
        self.seed = int(seed)
        self.run_dir = run_dir
        self.executor = executor
        self.progress = progress
        self.packed = packed
        self.pack_size = pack_size
        self.shadows: ShadowModels | None = None
        self.num_classes: int | None = None
        self._models: dict[int, object] = {}

    @property
    def name(self) -> str:
        kind = "per-class" if self.per_class else "global"
        return f"shadow models (k={self.n_shadows}, {kind} {self.attack_model})"

    # -- features -------------------------------------------------------------
    def _features(self, inputs: AttackInputs) -> np.ndarray:
        probs = inputs.probabilities().astype(np.float64)
        if self.per_class:
            return probs
        return np.concatenate([probs, np.eye(inputs.num_classes)[inputs.labels]], axis=1)

    # -- fitting --------------------------------------------------------------
    def fit(self, x, y) -> "ShadowModelAttack":
        """Train the shadow models on the attacker's data ``(x, y)``, then the attack models."""
        train_size = self.train_size if self.train_size is not None else len(x) // (2 * self.n_shadows)
        shadows = train_shadow_models(
            self.model_fn, x, y, n_shadows=self.n_shadows, fit=self.fit_config, train_size=train_size,
            scheme=self.scheme, seed=self.seed, run_dir=self.run_dir, executor=self.executor, progress=self.progress,
            packed=self.packed, pack_size=self.pack_size,
        )
        return self.fit_shadows(shadows)

    def fit_shadows(self, shadows: ShadowModels) -> "ShadowModelAttack":
        """Train the attack models on already trained shadow models."""
        members, non_members = shadows.pooled_attack_inputs(self.output_transform, sum_tol=None)
        self.shadows = shadows
        self.num_classes = members.num_classes
        features = np.concatenate([self._features(members), self._features(non_members)])
        target = np.concatenate([np.ones(len(members)), np.zeros(len(non_members))])
        labels = np.concatenate([members.labels, non_members.labels])
        groups = range(self.num_classes) if self.per_class else [None]
        self._models = {}
        for c in groups:
            rows = np.ones(labels.size, bool) if c is None else labels == c
            if c is not None and np.unique(target[rows]).size < 2:
                continue  # a class without both in and out shadow records uses the pooled model below
            model = make_classifier(self.attack_model, seed=self.seed + (0 if c is None else c + 1), **self.attack_options)
            self._models[-1 if c is None else c] = model.fit(features[rows], target[rows])
        if self.per_class and len(self._models) < self.num_classes:
            pooled = make_classifier(self.attack_model, seed=self.seed, **self.attack_options)
            self._models[-1] = pooled.fit(features, target)
        return self

    # -- scoring --------------------------------------------------------------
    def score(self, records) -> np.ndarray:
        """P(member) from the attack model of each record's class.

        ``records`` are what the attacker observes: when the target is
        defended, pass its defended outputs (``defence.apply(inputs)``).
        """
        if self.num_classes is None:
            raise ValueError(f"{self.name} must be fitted before scoring (call fit with attacker data)")
        inputs = as_attack_inputs(records)
        if inputs.num_classes != self.num_classes:
            raise ValueError(f"records have {inputs.num_classes} classes but the attack was fitted on {self.num_classes}")
        features = self._features(inputs)
        scores = np.empty(len(inputs))
        if not self.per_class:
            return self._models[-1].predict_proba(features)
        for c in np.unique(inputs.labels):
            rows = inputs.labels == c
            model = self._models.get(int(c), self._models.get(-1))
            scores[rows] = model.predict_proba(features[rows])
        return scores

    def threshold(self) -> float | None:
        return 0.5 if self.num_classes is not None else None

    def config(self) -> dict:
        return {
            "n_shadows": self.n_shadows,
            "attack_model": self.attack_model,
            "per_class": self.per_class,
            "scheme": self.scheme,
            "train_size": self.train_size,
            "fit": self.fit_config.to_dict(),
            "seed": self.seed,
            "output_transform": repr(self.output_transform) if self.output_transform is not None else None,
            "trained": True,
        }
