"""Knowledge distillation with a snapshot per epoch: :func:`distill`.

SeqMIA (Li et al. 2024, section 4.1) and TrajectoryMIA (Liu et al. 2022,
section 3.2) imitate a model's training trajectory by distilling it: a fresh
model of the same architecture (``model_fn``, with its own optimiser) is
trained on the distillation set ``D`` against the teacher's softmax
``q(x) = softmax(f_T(x))`` (temperature 1, no hard labels) with the
soft-target cross-entropy

    L(theta) = -1/|B| sum_{x in B} sum_k q_k(x) log p_k(x; theta)
             = 1/|B| sum_{x in B} [ KL(q(x) || p(x; theta)) + H(q(x)) ],

so minimising ``L`` minimises the KL to the teacher (``H(q)`` does not depend
on the student).  After every epoch the student's weights are a snapshot;
snapshots are evaluated in inference mode (the reference code forgot to
switch its models to eval mode).

With a ``run_dir`` each epoch leaves the snapshot (``snapshot_0007.weights.h5``,
with the optimiser state) and, last, ``checkpoint.json``, both written
atomically; a rerun resumes after the last finished epoch.  Each epoch's batches
are ordered by ``(seed, epoch)`` alone (:func:`~tfmia.training.fit_model`), so
the resumed run draws the same batches as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from scipy import special

from ._validate import check_positive_int
from .features.predictions import outputs_are_logits, predict
from .features.sequences import SEQUENCE_METRICS, check_metrics, check_records, model_signal_rows
from .runs import RunDirectory, describe_model, fingerprint_arrays
from .training import FitConfig, build_model, fit_model, load_weights, save_weights_atomically

__all__ = ["distill", "Distillation", "teacher_probabilities"]

_CHECKPOINT = "checkpoint.json"


def _snapshot_name(epoch: int) -> str:
    return f"snapshot_{epoch:04d}.weights.h5"


def teacher_probabilities(teacher, x, *, batch_size: int = 256) -> np.ndarray:
    """The teacher's softmax ``q(x)`` in inference mode, float32 (logits are softmaxed, probabilities kept)."""
    outputs = predict(teacher, x, batch_size=batch_size)
    if outputs.ndim != 2 or outputs.shape[1] < 2:
        raise ValueError(f"teacher must output N x C class scores with C >= 2, got shape {outputs.shape}")
    probs = special.softmax(outputs.astype(np.float64), axis=1) if outputs_are_logits(teacher) else outputs
    return np.asarray(probs, dtype=np.float32)


@dataclasses.dataclass
class Distillation:
    """A finished distillation.

    Attributes:
        student: the student after the last epoch.
        losses: mean soft-target cross-entropy of each epoch (training mode, as ``fit`` reports it).
        snapshots: one per epoch: a ``.weights.h5`` path (with a run directory) or the weight arrays.
        trajectory: ``(epochs, N, M)`` rows of ``records`` recorded after each epoch, or None.
        metrics: the columns of ``trajectory`` (and the default of :meth:`replay`).
        resumed_epochs: epochs loaded from the run directory instead of trained (0 for a fresh run).
    """

    student: object
    losses: np.ndarray
    snapshots: list
    trajectory: np.ndarray | None
    metrics: tuple[str, ...]
    resumed_epochs: int
    model_fn: object = dataclasses.field(repr=False)

    @property
    def epochs(self) -> int:
        return len(self.snapshots)

    def snapshot_model(self, epoch: int, model=None):
        """A model holding snapshot ``epoch`` (1-based); loads into ``model`` when given, else builds one."""
        if not 1 <= epoch <= self.epochs:
            raise ValueError(f"epoch must be in [1, {self.epochs}], got {epoch}")
        model = model if model is not None else build_model(self.model_fn)
        snapshot = self.snapshots[epoch - 1]
        if isinstance(snapshot, (str, Path)):
            load_weights(model, snapshot)
        else:
            model.set_weights(snapshot)
        return model

    def replay(self, x, y, *, metrics=None, batch_size: int = 256) -> np.ndarray:
        """``(epochs, N, M)`` signal rows of records ``(x, y)`` under every snapshot, in inference mode."""
        metrics = self.metrics if metrics is None else check_metrics(metrics)
        scratch = build_model(self.model_fn)
        x, y = check_records(scratch, x, y, "x")
        rows = []
        for epoch in range(1, self.epochs + 1):
            self.snapshot_model(epoch, scratch)
            rows.append(model_signal_rows(scratch, x, y, metrics=metrics, batch_size=batch_size))
        return np.stack(rows)


def _output_size(model, x_one) -> int:
    out = model(x_one, training=False)
    shape = tuple(out.shape)
    if len(shape) != 2:
        raise ValueError(f"model_fn's model must output N x C class scores, got shape {shape}")
    return int(shape[1])


def _progress(total: int, enabled: bool):
    if not enabled:
        return None
    import keras

    return keras.utils.Progbar(total, unit_name="epoch")


def distill(
    teacher,
    model_fn,
    x_distill,
    *,
    epochs: int = 50,
    batch_size: int = 128,
    records=None,
    metrics=SEQUENCE_METRICS,
    run_dir=None,
    seed: int = 0,
    progress: bool = True,
    predict_batch_size: int = 256,
) -> Distillation:
    """Distil ``teacher`` into a fresh ``model_fn()`` on ``x_distill``, one snapshot per epoch.

    Args:
        teacher: the Keras model to imitate (queried in inference mode on ``x_distill``).
        model_fn: zero-argument callable returning a compiled model of the teacher's
            architecture; its optimiser trains the student (its loss is replaced by
            the soft-target cross-entropy).  Its output size must equal the teacher's.
        x_distill: the distillation records (no labels needed).
        epochs: number of epochs, hence snapshots (default 50, as SeqMIA).
        batch_size: student training batch size.
        records: optional ``(x, y)`` whose signal rows are recorded after every
            epoch with :class:`~tfmia.callbacks.TrajectoryRecorder` (``Distillation.trajectory``).
        metrics: the recorded metrics.
        run_dir: folder to checkpoint into and resume from (None: everything in memory).
        seed: seeds the student's initialisation and each epoch's shuffling.
        progress: show a progress bar over epochs.
    """
    from .callbacks import TrajectoryRecorder

    check_positive_int(epochs, "epochs")
    check_positive_int(batch_size, "batch_size")
    metrics = check_metrics(metrics)
    student = build_model(model_fn, seed=seed)
    student_description = describe_model(student) if run_dir is not None else None  # before the loss is replaced
    x_distill = np.asarray(x_distill)
    if x_distill.ndim < 1 or x_distill.shape[0] == 0:
        raise ValueError(f"x_distill must hold at least one record, got shape {x_distill.shape}")
    check_records(student, x_distill, np.zeros(x_distill.shape[0], dtype=np.int64), "x_distill")
    check_records(teacher, x_distill, np.zeros(x_distill.shape[0], dtype=np.int64), "x_distill")
    soft = teacher_probabilities(teacher, x_distill, batch_size=predict_batch_size)
    student_classes = _output_size(student, x_distill[:1])
    if student_classes != soft.shape[1]:
        raise ValueError(
            f"model_fn builds a model with {student_classes} outputs but the teacher has {soft.shape[1]}; "
            "model_fn must build the teacher's architecture"
        )
    import keras

    student.compile(optimizer=student.optimizer,
                    loss=keras.losses.CategoricalCrossentropy(from_logits=outputs_are_logits(student)))

    if records is not None:
        if not (isinstance(records, tuple) and len(records) == 2):
            raise ValueError("records must be an (x, y) tuple")
        check_records(student, records[0], records[1], "records")

    run = None
    if run_dir is not None:
        run = RunDirectory(run_dir, "distillation", {
            "model": student_description,
            "epochs": epochs,
            "batch_size": batch_size,
            "seed": seed,
            "metrics": list(metrics),
            "teacher": fingerprint_arrays(soft),
            "x_distill": fingerprint_arrays(x_distill),
            "records": None if records is None else fingerprint_arrays(*records),
        })

    losses: list[float] = []
    snapshots: list = []
    done = 0
    if run is not None and run.has(_CHECKPOINT):
        state = run.load_json(_CHECKPOINT)
        done, losses = int(state["epochs_done"]), [float(v) for v in state["losses"]]
        snapshots = [run.path(_snapshot_name(e)) for e in range(1, done + 1)]
        if done:
            load_weights(student, snapshots[-1])  # weights and optimiser state

    recorder = None
    if records is not None:
        directory = None if run is None else run.path("trajectory")
        recorder = TrajectoryRecorder(records[0], records[1], directory, metrics=metrics, batch_size=predict_batch_size)

    bar = _progress(epochs, progress)
    if bar is not None and done:
        bar.update(done)
    for epoch in range(done, epochs):
        one_epoch = FitConfig(epochs=epoch + 1, batch_size=batch_size, fit_kwargs={"initial_epoch": epoch})
        history = fit_model(student, x_distill, soft, one_epoch, seed=seed,
                            callbacks=[recorder] if recorder is not None else [])
        losses.append(float(history.history["loss"][-1]))
        if run is None:
            snapshots.append([np.array(w) for w in student.get_weights()])
        else:
            snapshots.append(save_weights_atomically(student, run.path(_snapshot_name(epoch + 1))))
            # Written last: the epoch counts as finished only once everything above is on disk.
            run.save_json(_CHECKPOINT, {"epochs_done": epoch + 1, "losses": losses})
        if bar is not None:
            bar.add(1)

    trajectory = None
    if recorder is not None:
        trajectory = recorder.trajectory().rows
        if trajectory.shape[0] != epochs:
            raise ValueError(
                f"run_dir {run_dir}: the recorded trajectory has {trajectory.shape[0]} epochs, expected {epochs}"
            )
    return Distillation(student=student, losses=np.asarray(losses), snapshots=snapshots, trajectory=trajectory,
                        metrics=metrics, resumed_epochs=done, model_fn=model_fn)
