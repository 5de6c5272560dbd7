"""SeqMIA: membership from the pattern of metric sequences over distilled snapshots (Li et al. 2024).

The attacker distils the target on a disjoint distillation set for T epochs
(one snapshot per epoch), so each record gets a ``(T+1) x 5`` sequence of
[loss, max, SD, entropy, modified entropy] over the snapshots and, last, the
target itself (section 4.2).  An attention RNN (section 4.3) trained on the
same sequences of a shadow model's members (1) and non-members (0) reads the
target records' sequences and returns P(member).

Defaults follow ALGORITHMS.md: T = 50, LSTM with 50 hidden units, dot
attention of the last hidden state over all outputs, context concatenated
with the last hidden state, 2-way softmax; Adam lr 0.01, weight decay 1e-4
(kernels only), lr x 0.9 every 10 epochs while lr > 5e-4, 150 epochs, batch 100.

Variants by argument:

* ``metrics=("loss",)``: the loss-only sequence;
* ``rnn="gru"``: a GRU in place of the LSTM;
* ``rnn="transformer"``: a Transformer encoder block in place of the RNN;
* ``rnn="mlp"``: the multi-metric set: the flattened matrix into an MLP
  (512-128-32), which has no notion of the steps' order;
* ``shuffled=True``: each record's steps in random order (control).

``standardize=True`` scales each metric by the shadow sequences' mean and
standard deviation.  The default is off, as in the reference code: on
Fashion-MNIST (docs/seqmia.md) the raw metrics did better at low FPR.
"""

from __future__ import annotations

from ..attack_models import ARCHITECTURES, AttackTraining
from ..features.sequences import SEQUENCE_METRICS
from ..training import FitConfig
from ._sequence_attack import SequenceAttack

__all__ = ["SeqMIA"]


class SeqMIA(SequenceAttack):
    """SeqMIA attack (see module docstring).

    Args:
        model_fn: the target's recipe: zero-argument callable returning a compiled model.
        fit: the target's training settings, used for the shadow model.
        distill_epochs: distillation epochs T (snapshots per sequence: T + 1 with the original).
        metrics: the sequence's metrics, a subset of ``SEQUENCE_METRICS`` in column order.
        rnn: "lstm" (default), "gru", "transformer" or "mlp" (see module docstring).
        hidden: RNN units (and Transformer width; unused by the MLP, which is 512-128-32).
        output: "softmax" (2-way) or "sigmoid".
        training: the attack model's optimiser and schedule.
        standardize: standardise each metric with shadow statistics.
        shuffled: shuffle each record's steps (the order control).
        distill_batch_size: distillation batch size (default ``fit.batch_size``).
        shadow_train_size: shadow members (default half of ``x_shadow``).
        run_dir: checkpoint folder; a rerun resumes (None: a temporary folder).
        executor: runs the shadow-model job.
        seed: seeds every random choice.
        progress: show progress bars.
    """

    def __init__(self, model_fn, *, fit: FitConfig, distill_epochs: int = 50, metrics=SEQUENCE_METRICS,
                 rnn: str = "lstm", hidden: int = 50, output: str = "softmax",
                 training: AttackTraining = AttackTraining(), standardize: bool = False, shuffled: bool = False,
                 distill_batch_size: int | None = None, shadow_train_size: int | None = None, run_dir=None,
                 executor=None, seed: int = 0, progress: bool = True):
        if rnn not in ARCHITECTURES:
            raise ValueError(f"rnn must be one of {ARCHITECTURES}, got {rnn!r}")
        mlp = rnn == "mlp"
        super().__init__(model_fn, fit=fit, distill_epochs=distill_epochs, metrics=metrics, architecture=rnn,
                         hidden=None if mlp else hidden, mlp_layers=(512, 128, 32) if mlp else None, output=output,
                         training=training,
                         standardize=standardize, shuffled=shuffled, distill_batch_size=distill_batch_size,
                         shadow_train_size=shadow_train_size, run_dir=run_dir, executor=executor, seed=seed,
                         progress=progress)

    @property
    def name(self) -> str:
        parts = [f"SeqMIA ({self.architecture}"]
        if self.metrics != SEQUENCE_METRICS:
            parts.append(", " + "+".join(self.metrics))
        if self.standardize:
            parts.append(", standardised")
        if self.shuffled:
            parts.append(", shuffled")
        return "".join(parts) + ")"
