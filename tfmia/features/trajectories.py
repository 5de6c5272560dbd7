"""The attacker's trajectory knowledge shared by SeqMIA and TrajectoryMIA.

Both attacks (Li et al. 2024, sections 4.1-4.2; Liu et al. 2022, section 3)
need, for shadow and target records alike, the record's metrics under every
snapshot of a DISTILLED copy of the model, then under the model itself:

1. one shadow model of the target's recipe, trained through
   :func:`tfmia.shadow_training.train_shadow_models` on half of the
   attacker's shadow data (members); the other half are its non-members;
2. the shadow model and the target each distilled on the distillation set
   for ``distill_epochs`` epochs (:func:`tfmia.distill`);
3. per record the ``(T+1) x 5`` matrix of all
   :data:`~tfmia.features.sequences.SEQUENCE_METRICS`, snapshots first,
   the original model last; attacks select the columns they use.

Everything is written atomically under the run directory, so a rerun resumes
and attacks configured alike that share a run directory share the work::

    shadow/                         the shadow model (tfmia.shadow_training)
    distill_shadow/                 its distillation: snapshots, checkpoint
    distill_target_<weights>/       the distillation of each target model
    sequences/shadow_<data>.npz     shadow sequences, membership, labels
    sequences/target_<weights>_<records>.npz
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import weakref
from pathlib import Path

import numpy as np

from .._validate import check_positive_int
from ..distillation import Distillation, distill
from ..runs import RunDirectory, describe_fit, describe_model_fn, fingerprint_arrays
from ..shadow_training import ShadowModels, train_shadow_models
from ..training import FitConfig, build_model, load_weights
from .sequences import SEQUENCE_METRICS, assemble_sequences, check_records, model_signal_rows, signal_rows

__all__ = ["DistilledSequences", "ShadowSequences"]


@dataclasses.dataclass(frozen=True)
class ShadowSequences:
    """Sequences ``(N, T+1, 5)`` of the shadow model's records with their membership and class labels."""

    sequences: np.ndarray
    is_member: np.ndarray
    labels: np.ndarray


def _short(fingerprint: str) -> str:
    return fingerprint[:12]


class DistilledSequences:
    """Builds shadow and target sequences over distillation snapshots (see module docstring).

    Args:
        model_fn: the target's recipe: a zero-argument callable returning a compiled model.
        fit: the target's training settings (epochs, batch size), used for the shadow model.
        distill_epochs: epochs of each distillation, i.e. T snapshots.
        distill_batch_size: distillation batch size (default: ``fit.batch_size``).
        shadow_train_size: shadow members (default: half the shadow data).
        seed: seeds the shadow split, the shadow model and the distillations.
        run_dir: where everything is kept (None: a temporary folder removed with this object).
        executor: runs the shadow-model job (see :func:`~tfmia.shadow_training.train_shadow_models`).
        progress: show progress bars.
    """

    def __init__(self, model_fn, *, fit: FitConfig, distill_epochs: int = 50, distill_batch_size: int | None = None,
                 shadow_train_size: int | None = None, seed: int = 0, run_dir=None, executor=None,
                 progress: bool = True, predict_batch_size: int = 256):
        if not callable(model_fn):
            raise ValueError(f"model_fn must be callable, got {type(model_fn).__name__}")
        if not isinstance(fit, FitConfig):
            raise ValueError(f"fit must be a FitConfig, got {type(fit).__name__}")
        self.model_fn = model_fn
        self.fit_config = fit
        self.distill_epochs = check_positive_int(distill_epochs, "distill_epochs")
        self.distill_batch_size = check_positive_int(distill_batch_size or fit.batch_size, "distill_batch_size")
        self.shadow_train_size = (None if shadow_train_size is None
                                  else check_positive_int(shadow_train_size, "shadow_train_size"))
        self.seed = int(seed)
        self.executor = executor
        self.progress = bool(progress)
        self.predict_batch_size = check_positive_int(predict_batch_size, "predict_batch_size")
        if run_dir is None:
            run_dir = tempfile.mkdtemp(prefix="tfmia-sequences-")
            weakref.finalize(self, shutil.rmtree, run_dir, True)
        self.root = Path(run_dir)
        self._x_distill: np.ndarray | None = None
        self._targets: dict[str, Distillation] = {}
        self._run_config: dict | None = None

    def config(self) -> dict:
        """The settings, for reports."""
        return {
            "model_fn": getattr(self.model_fn, "__qualname__", repr(self.model_fn)),
            "fit": self.fit_config.to_dict(),
            "distill_epochs": self.distill_epochs,
            "distill_batch_size": self.distill_batch_size,
            "shadow_train_size": self.shadow_train_size,
            "seed": self.seed,
        }

    def run_config(self) -> dict:
        """The settings as a run directory records them: the model built with ``seed`` and the recipe by value."""
        if self._run_config is None:
            self._run_config = {**self.config(), "model_fn": describe_model_fn(self.model_fn, seed=self.seed),
                                "fit": describe_fit(self.fit_config)}
        return self._run_config

    @property
    def steps(self) -> int:
        """Sequence length T + 1."""
        return self.distill_epochs + 1

    def _distill(self, teacher, name: str, seed: int) -> Distillation:
        return distill(teacher, self.model_fn, self._x_distill, epochs=self.distill_epochs,
                       batch_size=self.distill_batch_size, run_dir=self.root / name, seed=seed,
                       progress=self.progress, predict_batch_size=self.predict_batch_size)

    def _sequences_run(self) -> RunDirectory:
        return RunDirectory(self.root / "sequences", "sequences", {
            **self.run_config(), "x_distill": fingerprint_arrays(self._x_distill)})

    # -- the attacker's side ----------------------------------------------------
    def shadow_models(self, x_shadow, y_shadow) -> ShadowModels:
        """The single shadow model (trained once, then loaded from the run directory).

        Other shadow-based attacks (metric thresholds, Salem et al.'s
        single-shadow attack) can calibrate on the same model, e.g. through
        ``shadow_models(...).pooled_attack_inputs()``.
        """
        train_size = self.shadow_train_size or np.asarray(x_shadow).shape[0] // 2
        return train_shadow_models(self.model_fn, x_shadow, y_shadow, n_shadows=1, fit=self.fit_config,
                                   train_size=train_size, scheme="disjoint", seed=self.seed,
                                   run_dir=self.root / "shadow", executor=self.executor, progress=self.progress,
                                   predict_batch_size=self.predict_batch_size)

    def shadow(self, x_shadow, y_shadow, x_distill) -> ShadowSequences:
        """Train the shadow model, distil it and return its records' sequences (in = 1, out = 0)."""
        x_shadow = np.asarray(x_shadow)
        y_shadow = np.asarray(y_shadow)
        x_distill = np.asarray(x_distill)
        if x_distill.ndim < 1 or x_distill.shape[0] == 0:
            raise ValueError(f"x_distill must hold at least one record, got shape {x_distill.shape}")
        if x_shadow.ndim < 1 or x_shadow.shape[0] < 2:
            raise ValueError(f"x_shadow must hold at least two records, got shape {x_shadow.shape}")
        self._x_distill = x_distill
        run = self._sequences_run()
        name = f"shadow_{_short(fingerprint_arrays(x_shadow, y_shadow))}.npz"
        if run.has(name):
            saved = run.load_arrays(name)
            return ShadowSequences(saved["sequences"], saved["is_member"], saved["labels"])
        shadows = self.shadow_models(x_shadow, y_shadow)
        shadow = shadows.models[0]
        teacher = load_weights(build_model(self.model_fn), shadow.weights_path)
        distillation = self._distill(teacher, "distill_shadow", self.seed + 1)
        index = np.concatenate([shadow.in_indices, shadow.out_indices])
        x, y = x_shadow[index], shadows.y[index]
        final = signal_rows(shadow.outputs_for(index), y, from_logits=shadow.is_logits, metrics=SEQUENCE_METRICS)
        snapshots = distillation.replay(x, y, metrics=SEQUENCE_METRICS, batch_size=self.predict_batch_size)
        result = ShadowSequences(
            sequences=assemble_sequences(snapshots, final),
            is_member=np.concatenate([np.ones(shadow.in_indices.size, bool), np.zeros(shadow.out_indices.size, bool)]),
            labels=np.asarray(y, dtype=np.int64),
        )
        run.save_arrays(name, sequences=result.sequences, is_member=result.is_member, labels=result.labels)
        return result

    # -- the target's side --------------------------------------------------------
    def target(self, target, x, y) -> np.ndarray:
        """Sequences ``(N, T+1, 5)`` of records ``(x, y)``: the target's distillation snapshots, then the target."""
        if self._x_distill is None:
            raise ValueError("call shadow(...) first: it fixes the distillation set")
        x, y = check_records(target, x, y, "x")
        weights = _short(fingerprint_arrays(*target.get_weights()))
        run = self._sequences_run()
        name = f"target_{weights}_{_short(fingerprint_arrays(x, y))}.npz"
        if run.has(name):
            return run.load_arrays(name)["sequences"]
        if weights not in self._targets:
            self._targets[weights] = self._distill(target, f"distill_target_{weights}", self.seed + 2)
        distillation = self._targets[weights]
        final = model_signal_rows(target, x, y, metrics=SEQUENCE_METRICS, batch_size=self.predict_batch_size)
        snapshots = distillation.replay(x, y, metrics=SEQUENCE_METRICS, batch_size=self.predict_batch_size)
        sequences = assemble_sequences(snapshots, final)
        run.save_arrays(name, sequences=sequences)
        return sequences
