"""White-box attack features of a set of records: :class:`FeatureRecords`.

A white-box attacker reads, for each record, a feature vector from the model
(its output probabilities, an intermediate layer, gradient statistics, the
distance to the decision boundary) next to the record's true and predicted
class and its loss, which the evaluation slices by.
:meth:`FeatureRecords.from_model` computes all of it in one pass over the
records, ``batch_size`` at a time.

Named features (``FEATURES``), their columns and options:

* ``confidence``: the C output probabilities; no options.
* ``intermediate``: the flattened activations of one layer; option ``layer``
  (:class:`~tfmia.features.intermediate.IntermediateExtractor`).
* ``gradient_weights`` / ``gradient_input``: the seven statistics of the loss
  gradient w.r.t. all trainable weights / the input; options of
  :class:`~tfmia.features.gradients.GradientStatsExtractor`.
* ``boundary``: the L2 distance to the decision boundary, NaN where the search
  failed; options of :class:`~tfmia.features.boundary.BoundaryExtractor`.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import special

from .. import signals as _signals
from .._validate import as_float_array, as_labels, check_positive_int
from ._batching import iter_batches
from .boundary import BoundaryExtractor
from .gradients import GradientStatsExtractor
from .intermediate import IntermediateExtractor
from .predictions import outputs_are_logits

__all__ = ["FEATURES", "DEFAULT_BATCH_SIZE", "FeatureRecords", "make_extractor"]

FEATURES = ("confidence", "intermediate", "gradient_weights", "gradient_input", "boundary")

DEFAULT_BATCH_SIZE = {
    "confidence": 256, "intermediate": 256, "gradient_weights": 32, "gradient_input": 32, "boundary": 64,
}
"""Records per batch by feature: per-sample gradients cost ``batch x parameters`` of memory."""


def make_extractor(model, features: str, *, batch_size: int, from_logits: bool, options: dict):
    """``(columns, fn)``: ``fn(x_batch, y_batch, probs_batch)`` gives the batch's (b, d) feature rows."""
    if features not in FEATURES:
        raise ValueError(f"features must be one of {FEATURES}, got {features!r}")
    options = dict(options)
    if features == "confidence":
        if options:
            raise ValueError(f"features='confidence' takes no options, got {sorted(options)}")
        width = int(model.outputs[0].shape[-1])
        return tuple(f"probability_{c}" for c in range(width)), lambda x, y, probs: probs
    if features == "intermediate":
        unknown = set(options) - {"layer"}
        if unknown:
            raise ValueError(f"features='intermediate' takes only the option 'layer', got {sorted(unknown)}")
        extractor = IntermediateExtractor(model, options.get("layer"))
        return extractor.columns, lambda x, y, probs: extractor(x)
    if features == "boundary":
        extractor = BoundaryExtractor(model, from_logits=from_logits, **options)
        return extractor.columns, lambda x, y, probs: extractor.features(x)
    wrt = features.split("_", 1)[1]
    extractor = GradientStatsExtractor(model, wrt=wrt, batch_size=batch_size, from_logits=from_logits, **options)
    return extractor.columns, lambda x, y, probs: extractor(x, y)


@dataclasses.dataclass(frozen=True, eq=False)
class FeatureRecords:
    """Attack features of N records with their true and predicted classes.

    Attributes:
        features: (N, d) float64; NaN marks a missing value (a failed boundary search).
        labels: (N,) true classes.
        predicted_labels: (N,) the target's predicted classes.
        losses: (N,) the target's cross-entropy per record, or None.
        columns: d column names.
    """

    features: np.ndarray
    labels: np.ndarray
    predicted_labels: np.ndarray
    losses: np.ndarray | None = None
    columns: tuple[str, ...] | None = None

    def __post_init__(self):
        features = np.asarray(self.features)
        if features.ndim == 1:
            features = features[:, None]
        features = as_float_array(features, "features", ndim=2).astype(np.float64, copy=False)
        if np.isinf(features).any():
            raise ValueError("features must not contain Inf (NaN marks a missing value)")
        n = features.shape[0]
        object.__setattr__(self, "features", features)
        object.__setattr__(self, "labels", as_labels(self.labels, "labels", n=n))
        object.__setattr__(self, "predicted_labels", as_labels(self.predicted_labels, "predicted_labels", n=n))
        if self.losses is not None:
            losses = as_float_array(self.losses, "losses", ndim=1).astype(np.float64, copy=False)
            if losses.shape[0] != n:
                raise ValueError(f"losses has {losses.shape[0]} entries, expected {n}")
            object.__setattr__(self, "losses", losses)
        if self.columns is None:
            columns = tuple(f"feature_{i}" for i in range(features.shape[1]))
        else:
            columns = tuple(self.columns)
        if len(columns) != features.shape[1]:
            raise ValueError(f"columns names {len(columns)} columns but features has {features.shape[1]}")
        object.__setattr__(self, "columns", columns)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def correct(self) -> np.ndarray:
        """Whether the target classifies each record correctly."""
        return self.labels == self.predicted_labels

    def subset(self, index) -> "FeatureRecords":
        """The records selected by an index array or boolean mask."""
        index = np.asarray(index)
        return FeatureRecords(
            self.features[index],
            self.labels[index],
            self.predicted_labels[index],
            None if self.losses is None else self.losses[index],
            self.columns,
        )

    def select(self, columns) -> "FeatureRecords":
        """The same records with only the given columns (names or indices)."""
        index = []
        for column in columns:
            if isinstance(column, str):
                if column not in self.columns:
                    raise ValueError(f"column {column!r} is not one of {list(self.columns)}")
                index.append(self.columns.index(column))
            else:
                if not -len(self.columns) <= int(column) < len(self.columns):
                    raise ValueError(f"column index {column} is out of range for {len(self.columns)} columns")
                index.append(int(column) % len(self.columns))
        if not index:
            raise ValueError("columns must name at least one column")
        columns = tuple(self.columns[i] for i in index)
        return FeatureRecords(self.features[:, index], self.labels, self.predicted_labels, self.losses, columns)

    @classmethod
    def concatenate(cls, parts) -> "FeatureRecords":
        """Records of several FeatureRecords with the same columns, one after another."""
        parts = list(parts)
        if not parts:
            raise ValueError("parts must not be empty")
        if len({p.columns for p in parts}) != 1:
            raise ValueError("cannot concatenate FeatureRecords with different columns")
        losses = [p.losses for p in parts]
        return cls(
            np.concatenate([p.features for p in parts]),
            np.concatenate([p.labels for p in parts]),
            np.concatenate([p.predicted_labels for p in parts]),
            None if any(loss is None for loss in losses) else np.concatenate(losses),
            parts[0].columns,
        )

    @classmethod
    def from_model(
        cls,
        model,
        x,
        y=None,
        *,
        features: str = "gradient_weights",
        batch_size: int | None = None,
        from_logits: bool | None = None,
        run_dir=None,
        checkpoint_every: int = 50,
        verbose: int = 0,
        **options,
    ) -> "FeatureRecords":
        """Compute ``features`` (see ``FEATURES``) of every record in one pass over ``x``.

        ``x`` is an array with labels ``y`` or a ``tf.data.Dataset`` of
        ``(x, y)`` batches (read once, in a fixed order).  ``options`` go to
        the feature's extractor (e.g. ``layer=`` for intermediate features,
        ``clip=`` for the boundary distance).  ``batch_size`` defaults to
        ``DEFAULT_BATCH_SIZE[features]``.

        With ``run_dir``, every ``checkpoint_every`` batches are saved there as
        they finish; a rerun with the same model weights, data and settings
        loads them instead of recomputing (batches are still read, to check
        their labels against the saved ones).
        """
        if batch_size is None:
            batch_size = DEFAULT_BATCH_SIZE.get(features, 32)
        batch_size = check_positive_int(batch_size, "batch_size")
        check_positive_int(checkpoint_every, "checkpoint_every")
        is_logits = outputs_are_logits(model) if from_logits is None else bool(from_logits)
        columns, extract = make_extractor(
            model, features, batch_size=batch_size, from_logits=is_logits, options=options
        )
        run = None
        if run_dir is not None:
            settings = {"features": features, "batch_size": batch_size, "from_logits": is_logits,
                        "checkpoint_every": checkpoint_every, "columns": list(columns)}
            run = _checkpoints(run_dir, model, x, y, settings, options)

        def compute(xb, yb) -> dict[str, np.ndarray]:
            outputs = np.asarray(model.predict_on_batch(xb))  # the model's own cached inference function
            probs = special.softmax(outputs, axis=1) if is_logits else outputs
            return {
                "features": extract(xb, yb, probs),
                "labels": yb,
                "predicted": outputs.argmax(axis=1),
                "losses": _signals.compute(outputs, yb, is_logits)["loss"],
            }

        chunks = _Chunks(run, checkpoint_every)
        for xb, yb in iter_batches(model, x, y, batch_size=batch_size, verbose=verbose):
            chunks.add(xb, yb, compute)
        merged = chunks.finish()
        return cls(merged["features"], merged["labels"], merged["predicted"], merged["losses"], columns)


def _checkpoints(run_dir, model, x, y, settings: dict, options: dict):
    """The RunDirectory of a feature pass, keyed by the model (architecture and weights), the data and the settings."""
    import tensorflow as tf

    from ..runs import RunDirectory, describe_model, fingerprint_arrays

    if isinstance(x, tf.data.Dataset):
        data = "tf.data.Dataset (labels checked per batch)"
    elif y is None:
        raise ValueError("y (the true labels) is required when x is an array")
    else:
        data = fingerprint_arrays(np.asarray(x), np.asarray(y))
    config = {
        **settings,
        "options": {k: repr(v) for k, v in sorted(options.items())},
        "model": describe_model(model, compile=False),  # the features use the model's function, not its loss
        "data": data,
    }
    return RunDirectory(run_dir, "feature_records", config)


class _Chunks:
    """Per-batch results grouped into chunks of ``every`` batches, saved to / loaded from a run directory."""

    def __init__(self, run, every: int):
        self.run, self.every = run, every
        self.done: list[dict[str, np.ndarray]] = []
        self.pending: list[dict[str, np.ndarray]] = []
        self.stored: dict[str, np.ndarray] | None = None
        self.batches = 0
        self.offset = 0

    def _name(self) -> str:
        return f"chunk_{len(self.done):06d}.npz"

    def add(self, xb, yb, compute) -> None:
        if self.batches == 0 and self.run is not None and self.run.has(self._name()):
            self.stored = self.run.load_arrays(self._name())
        if self.stored is not None:
            expected = self.stored["labels"][self.offset : self.offset + yb.shape[0]]
            if not np.array_equal(expected, yb):
                raise ValueError(f"{self.run.root}: the records differ from the saved run (labels of "
                                 f"{self._name()} do not match); use a new run_dir")
            self.offset += yb.shape[0]
        else:
            self.pending.append(compute(xb, yb))
        self.batches += 1
        if self.batches == self.every:
            self._close()

    def _close(self) -> None:
        if self.stored is not None:
            if self.offset != self.stored["labels"].shape[0]:
                raise ValueError(f"{self.run.root}: {self._name()} holds more records than the data; use a new run_dir")
            chunk = self.stored
        else:
            chunk = {key: np.concatenate([p[key] for p in self.pending]) for key in self.pending[0]}
            if self.run is not None:
                self.run.save_arrays(self._name(), **chunk)
        self.done.append(chunk)
        self.pending, self.stored, self.batches, self.offset = [], None, 0, 0

    def finish(self) -> dict[str, np.ndarray]:
        if self.batches:
            self._close()
        return {key: np.concatenate([c[key] for c in self.done]) for key in self.done[0]}
