"""Building and training models from a user's ``model_fn``.

Attacks that train models (shadow models, LiRA reference models, SeqMIA's
distilled models) take a ``model_fn``: a zero-argument callable returning a
*compiled* Keras model with the target's architecture and training recipe.
For process pools and Dask it must be picklable (a module-level function or a
``functools.partial`` of one).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ._serialization import atomic_path
from ._validate import check_positive_int

__all__ = ["FitConfig", "build_model", "fit_model", "seed_everything", "save_weights_atomically", "load_weights"]


@dataclasses.dataclass(frozen=True)
class FitConfig:
    """How ``model.fit`` is called: epochs, batch size and any other fit keyword."""

    epochs: int
    batch_size: int = 32
    shuffle: bool = True
    fit_kwargs: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        check_positive_int(self.epochs, "epochs")
        check_positive_int(self.batch_size, "batch_size")
        reserved = {"x", "y", "epochs", "batch_size", "shuffle", "verbose", "callbacks"} & set(self.fit_kwargs)
        if reserved:
            raise ValueError(f"fit_kwargs must not set {sorted(reserved)}; use the FitConfig fields")

    def to_dict(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "batch_size": self.batch_size, "shuffle": self.shuffle,
                "fit_kwargs": {k: repr(v) for k, v in sorted(self.fit_kwargs.items())}}


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and TensorFlow through Keras (``keras.utils.set_random_seed``)."""
    import keras

    keras.utils.set_random_seed(int(seed))


def build_model(model_fn, *, seed: int | None = None):
    """Call ``model_fn`` (after seeding) and check it returned a compiled Keras model."""
    import keras

    if not callable(model_fn):
        raise ValueError(f"model_fn must be callable, got {type(model_fn).__name__}")
    if seed is not None:
        seed_everything(seed)
    model = model_fn()
    if not isinstance(model, keras.Model):
        raise ValueError(f"model_fn must return a keras.Model, got {type(model).__name__}")
    if not model.compiled:
        raise ValueError(
            "model_fn must return a compiled model (call model.compile(optimizer, loss, ...) inside model_fn), "
            f"got an uncompiled {model.name!r}"
        )
    return model


def fit_model(model, x, y, config: FitConfig, *, callbacks=None, verbose: int = 0):
    """``model.fit`` with the configuration's settings; returns the History."""
    return model.fit(
        x,
        y,
        epochs=config.epochs,
        batch_size=config.batch_size,
        shuffle=config.shuffle,
        verbose=verbose,
        callbacks=list(callbacks or []),
        **config.fit_kwargs,
    )


def save_weights_atomically(model, path) -> Path:
    """``model.save_weights(path)`` through a temporary file in the same folder, fsync'ed and renamed.

    A crash leaves either the previous file or the new one, never a torn one.
    ``path`` must end in ``.weights.h5`` (Keras 3's rule).
    """
    path = Path(path)
    if not path.name.endswith(".weights.h5"):
        raise ValueError(f"path must end in .weights.h5, got {path.name!r}")
    with atomic_path(path, suffix=".weights.h5") as tmp:
        model.save_weights(tmp)
    return path


def load_weights(model, path):
    """``model.load_weights(path)``, restoring the optimiser state too when the file holds it.

    Keras 3 saves a compiled model's optimiser variables with its weights but
    restores them only into a built optimiser; building it first makes a
    resumed training continue with the same moments and step count.
    """
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and not optimizer.built:
        optimizer.build(model.trainable_variables)
    model.load_weights(path)
    return model
