"""``TrajectoryRecorder``: per-record signal rows at the end of training epochs, for any ``model.fit``.

At the end of every ``every``-th epoch the recorder runs the chosen records
through the model in inference mode (``model.predict``: dropout off, batch
normalisation on its moving statistics) and keeps one row per record of the
chosen metrics (default: loss, max, SD, entropy, modified entropy; see
:mod:`tfmia.features.sequences`).  Stacked over epochs the rows are the
``(T, N, M)`` trajectory that SeqMIA and TrajectoryMIA read.

With a ``directory`` every recorded epoch becomes its own atomically written
file (``epoch_00007.npz``, plus ``epoch_00007.weights.h5`` when
``save_weights``), so the on-disk array grows by one file per record step and
never holds a torn row.  The directory is claimed when training begins, for
the model's architecture (:func:`~tfmia.runs.describe_model`; not its compile
arguments, which a continued training may change), the records and the
settings.  A rerun with all of them the same resumes:
``model.fit(..., initial_epoch=k)`` keeps the rows of epochs ``<= k`` and
replaces those after it.  Read a finished directory with :func:`read_trajectory`.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from pathlib import Path

import keras
import numpy as np

from .._serialization import load_npz
from .._validate import check_positive_int
from ..features.sequences import SEQUENCE_METRICS, check_metrics, check_records, model_signal_rows
from ..runs import RunDirectory, describe_model, fingerprint_arrays
from ..training import save_weights_atomically

__all__ = ["TrajectoryRecorder", "Trajectory", "read_trajectory"]

_KIND = "trajectory"
_ROWS = re.compile(r"^epoch_(\d{5})\.npz$")


def _rows_name(epoch: int) -> str:
    return f"epoch_{epoch:05d}.npz"


def _weights_name(epoch: int) -> str:
    return f"epoch_{epoch:05d}.weights.h5"


@dataclasses.dataclass(frozen=True)
class Trajectory:
    """Recorded rows: ``rows[t, i, m]`` is metric ``metrics[m]`` of record ``i`` after epoch ``epochs[t]``."""

    epochs: np.ndarray
    rows: np.ndarray
    metrics: tuple[str, ...]


def _recorded_epochs(root: Path) -> list[int]:
    return sorted(int(m.group(1)) for p in root.iterdir() if (m := _ROWS.match(p.name)))


def read_trajectory(directory) -> Trajectory:
    """Load what a :class:`TrajectoryRecorder` wrote to ``directory``."""
    root = Path(directory)
    manifest = root / RunDirectory.MANIFEST
    if not manifest.exists():
        raise ValueError(f"directory {root} holds no recorded trajectory (no {RunDirectory.MANIFEST})")
    info = json.loads(manifest.read_text())
    if info.get("kind") != _KIND:
        raise ValueError(f"directory {root} holds a {info.get('kind')!r} run, not a trajectory")
    metrics = tuple(info["config"]["metrics"])
    epochs = _recorded_epochs(root)
    rows = [load_npz(root / _rows_name(e))["rows"] for e in epochs]
    n = info["config"]["n_records"]
    stacked = np.stack(rows) if rows else np.zeros((0, n, len(metrics)))
    return Trajectory(np.asarray(epochs, dtype=np.int64), stacked, metrics)


class TrajectoryRecorder(keras.callbacks.Callback):
    """Record per-record signal rows every ``every`` epochs of ``model.fit``.

    Args:
        x, y: the records to follow (array inputs, integer labels).
        directory: folder for the rows (and weights); ``None`` keeps them in memory.
        every: record after epochs ``every, 2 * every, ...`` (1-based epoch numbers).
        metrics: subset of :data:`~tfmia.features.sequences.SEQUENCE_METRICS`, in column order.
        save_weights: also keep a weight snapshot at each recorded epoch.
        batch_size: prediction batch size.
        from_logits: whether the model outputs logits (default: read from its last layer).

    After training, :meth:`trajectory` gives the ``(T, N, M)`` rows and
    ``seconds`` the wall time spent recording (the callback's overhead).
    """

    def __init__(self, x, y, directory=None, *, every: int = 1, metrics=SEQUENCE_METRICS,
                 save_weights: bool = False, batch_size: int = 256, from_logits: bool | None = None):
        super().__init__()
        x = np.asarray(x)
        if x.ndim < 1 or x.shape[0] == 0:
            raise ValueError(f"x must hold at least one record, got shape {x.shape}")
        self.x, self.y = x, np.asarray(y)
        if self.y.ndim != 1 or self.y.shape[0] != x.shape[0]:
            raise ValueError(f"y must hold one label per record of x ({x.shape[0]}), got shape {self.y.shape}")
        self.every = check_positive_int(every, "every")
        self.metrics = check_metrics(metrics)
        self.save_weights = bool(save_weights)
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.from_logits = from_logits
        self.seconds = 0.0
        self._directory = None if directory is None else Path(directory)
        self._settings = {
            "metrics": list(self.metrics),
            "every": self.every,
            "save_weights": self.save_weights,
            "from_logits": from_logits,
            "n_records": int(x.shape[0]),
            "records": fingerprint_arrays(x, self.y),
        }
        self._run: RunDirectory | None = None  # claimed in on_train_begin, when the model is known
        self._rows: dict[int, np.ndarray] = {}
        self._weights: dict[int, list[np.ndarray]] = {}
        self._started = False

    @property
    def directory(self) -> Path | None:
        return self._directory

    # -- Keras hooks ----------------------------------------------------------
    def on_train_begin(self, logs=None):
        self.x, self.y = check_records(self.model, self.x, self.y, "x")
        if self._directory is not None:
            model = describe_model(self.model, weights=False, compile=False)
            self._run = RunDirectory(self._directory, _KIND, {**self._settings, "model": model})
        self._started = False

    def on_epoch_begin(self, epoch, logs=None):
        if not self._started:  # first epoch of this fit call: drop what a previous run recorded after it
            self._started = True
            self._discard_after(epoch)

    def on_epoch_end(self, epoch, logs=None):
        number = epoch + 1
        if number % self.every:
            return
        start = time.perf_counter()
        rows = model_signal_rows(self.model, self.x, self.y, metrics=self.metrics,
                                 batch_size=self.batch_size, from_logits=self.from_logits)
        if self._directory is None:
            self._rows[number] = rows
            if self.save_weights:
                self._weights[number] = [np.array(w) for w in self.model.get_weights()]
        else:
            if self.save_weights:
                save_weights_atomically(self.model, self._run.path(_weights_name(number)))
            # The rows file is written last: its presence marks the epoch as recorded.
            self._run.save_arrays(_rows_name(number), rows=rows)
        self.seconds += time.perf_counter() - start

    # -- results --------------------------------------------------------------
    @property
    def epochs(self) -> np.ndarray:
        """The recorded epoch numbers (1-based), ascending."""
        if self._directory is None:
            found = self._rows
        else:
            found = _recorded_epochs(self._directory) if self._directory.is_dir() else []
        return np.asarray(sorted(found), dtype=np.int64)

    def trajectory(self) -> Trajectory:
        """The recorded rows, ``(T, N, M)`` in epoch order."""
        if self._directory is not None:
            return read_trajectory(self._directory)
        epochs = self.epochs
        if not epochs.size:
            return Trajectory(epochs, np.zeros((0, self.x.shape[0], len(self.metrics))), self.metrics)
        rows = np.stack([self._rows[e] for e in epochs])
        return Trajectory(epochs, rows, self.metrics)

    def weights(self, epoch: int):
        """The weight snapshot of a recorded epoch: a ``.weights.h5`` path, or the arrays when in memory."""
        if not self.save_weights:
            raise ValueError("weights are only kept with save_weights=True")
        if epoch not in set(self.epochs.tolist()):
            raise ValueError(f"epoch {epoch} was not recorded; recorded: {self.epochs.tolist()}")
        return self._weights[epoch] if self._directory is None else self._directory / _weights_name(epoch)

    def _discard_after(self, epoch: int) -> None:
        stale = [e for e in self.epochs.tolist() if e > epoch]
        for e in stale:
            if self._directory is None:
                self._rows.pop(e, None)
                self._weights.pop(e, None)
            else:
                for name in (_rows_name(e), _weights_name(e)):
                    self._run.path(name).unlink(missing_ok=True)
