"""TrajectoryMIA: membership from the loss trajectory over distilled snapshots (Liu et al. 2022).

The same distilled snapshots as SeqMIA, the loss only: the losses of a record
under the T snapshots and the original model, as one vector, into an MLP
512-128-32-2 (section 3.3) trained on a shadow model's members and
non-members.  Training follows the authors' code: SGD with momentum 0.9,
lr 0.01, weight decay 1e-4, 100 epochs, batch 128 (their MLP applies a
softmax before the cross-entropy, which applies another; we apply one).

``shuffled=True`` is the control of the paper: each record's losses in
random order, which keeps the values and destroys the trajectory.
"""

from __future__ import annotations

from ..attack_models import AttackTraining
from ..training import FitConfig
from ._sequence_attack import SequenceAttack

__all__ = ["TrajectoryMIA", "TRAJECTORY_MIA_TRAINING"]

TRAJECTORY_MIA_TRAINING = AttackTraining(epochs=100, batch_size=128, optimizer="sgd", learning_rate=0.01,
                                         momentum=0.9, weight_decay=1e-4, lr_decay=1.0)
"""The authors' attack-model training (Liu et al. 2022, released code)."""


class TrajectoryMIA(SequenceAttack):
    """TrajectoryMIA attack (see module docstring).

    Args:
        model_fn, fit, distill_epochs, distill_batch_size, shadow_train_size, run_dir, executor, seed, progress:
            as :class:`~tfmia.attacks.SeqMIA`; TrajectoryMIA and SeqMIA configured alike on one
            ``run_dir`` share the shadow model and the distillations.
        hidden_layers: the MLP's widths.
        training: the attack model's optimiser and schedule.
        standardize: standardise the losses with shadow statistics (off: the reference feeds raw losses).
        shuffled: the shuffled-trajectory control.
    """

    def __init__(self, model_fn, *, fit: FitConfig, distill_epochs: int = 50, hidden_layers=(512, 128, 32),
                 training: AttackTraining = TRAJECTORY_MIA_TRAINING, standardize: bool = False,
                 shuffled: bool = False, distill_batch_size: int | None = None,
                 shadow_train_size: int | None = None, run_dir=None, executor=None, seed: int = 0,
                 progress: bool = True):
        super().__init__(model_fn, fit=fit, distill_epochs=distill_epochs, metrics=("loss",), architecture="mlp",
                         hidden=None, mlp_layers=hidden_layers, output="softmax", training=training,
                         standardize=standardize, shuffled=shuffled, distill_batch_size=distill_batch_size,
                         shadow_train_size=shadow_train_size, run_dir=run_dir, executor=executor, seed=seed,
                         progress=progress)

    @property
    def name(self) -> str:
        return "TrajectoryMIA (shuffled)" if self.shuffled else "TrajectoryMIA"
