"""Building and training models from a user's ``model_fn``, reproducibly on any executor.

Attacks that train models (shadow models, LiRA reference models, SeqMIA's
distilled models) take a ``model_fn``: a zero-argument callable returning a
*compiled* Keras model with the target's architecture and training recipe.
For process pools and Dask it must be picklable (a module-level function or a
``functools.partial`` of one).

Reproducibility
---------------
``build_model(model_fn, seed=s)`` followed by ``fit_model(..., seed=s)``
gives bit-identical weights for the same ``s`` in this process, in a process
pool or on a Dask worker running several jobs in threads, whatever other
threads of the process draw from (or reseed) Python's ``random``, numpy's
global generator, ``tf.random`` or ``keras.random`` meanwhile.  What Keras
would take from process-wide state is taken from private, seeded streams:

* **Initialisers, Dropout and noise layers, SeedGenerators.**  Keras gives
  every one created without a seed a default seed drawn from Python's
  process-wide ``random`` module (``make_default_seed`` in
  ``keras.src.random.seed_generator``), so draws by another thread between
  seeding and building changed the model.  On first use tfmia replaces that
  module's reference to ``random`` with a per-thread dispatcher:
  inside :func:`keras_seed_scope` the calling thread draws from its own
  ``random.Random``; every other thread, and this one outside the scope, from
  ``random`` as before.  The scope also gives the thread a fresh fallback
  generator for unseeded ``keras.random`` calls (Keras keeps that one per
  thread already).  ``build_model`` draws from ``random.Random(seed)``, the
  stream ``random.seed(seed)`` would give a single-threaded program.
* **Shuffling.**  Keras shuffles arrays with ``tf.random.shuffle`` seeded from
  TensorFlow's process-wide seed; with a seed, ``fit_model`` feeds batches in
  the order ``numpy.random.default_rng([seed, epoch]).permutation(n)``
  (:mod:`tfmia._shuffled_batches`), the same for a fit resumed at
  ``initial_epoch``.
* **The rest of a fit draws nothing global**: optimisers and losses are
  deterministic, Dropout draws from the generator seeded at the build, and
  tfmia's training-time defences use stateless per-step seeds.  Keras
  default seeds drawn during a fit (layers built on first call) come from a
  private stream keyed by ``(seed, initial_epoch)``.

Without a seed, ``fit_model`` shuffles as Keras does (from TensorFlow's
global seed, which ``build_model(seed=...)`` sets).

Not covered:

* Randomness a ``model_fn`` or a custom layer draws itself from global
  generators: ``np.random``, ``random``, unseeded stateful ``tf.random`` ops
  (TensorFlow's process-wide seed).  ``build_model`` seeds them
  (``keras.utils.set_random_seed``), so such code is reproducible only while
  no other thread uses them: give its draws a seed, or use ``keras.random``
  with a ``SeedGenerator`` (or unseeded: that draws from the private stream).
* Floating-point results across machines or TensorFlow builds (instruction
  sets, oneDNN kernels) may differ in the last bits.  On one machine, the CPU
  kernels of training are deterministic (the same weights with 1, 2 or 4
  intra-op threads, and with two fits running in parallel threads), so tfmia
  does not call ``tf.config.experimental.enable_op_determinism()``.  On a GPU,
  kernels that accumulate with atomics are not deterministic; bit-identical
  GPU runs need that process-wide setting, which tfmia leaves to the user.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ._serialization import atomic_path
from ._validate import check_positive_int

__all__ = ["FitConfig", "build_model", "fit_model", "seed_everything", "seeded", "keras_seed_scope",
           "save_weights_atomically", "load_weights", "weights_bytes"]

_MAX_SEED = 2**32 - 1  # numpy's global generator takes seeds in [0, 2**32)
_FIT_STREAM = 1  # keys the private stream of Keras' default seeds during a fit (the build uses the seed itself)


@dataclasses.dataclass(frozen=True)
class FitConfig:
    """How ``model.fit`` is called: epochs, batch size and any other fit keyword.

    With ``shuffle`` and a seed, :func:`fit_model` orders epoch ``e`` by
    ``numpy.random.default_rng([seed, e]).permutation(n)``.
    """

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


def _check_seed(seed) -> int:
    """``seed`` as an int in [0, 2**32), the range every generator it seeds accepts."""
    seed = check_positive_int(seed, "seed", minimum=0)
    if seed > _MAX_SEED:
        raise ValueError(f"seed must be < 2**32, got {seed}")
    return seed


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and TensorFlow through Keras (``keras.utils.set_random_seed``)."""
    import keras

    keras.utils.set_random_seed(_check_seed(seed))


class _PerThreadRandom:
    """Stands in for the ``random`` module where Keras draws default seeds.

    A thread with a private generator (set by :func:`keras_seed_scope`) draws
    from it; every other thread from the ``random`` module.
    """

    def __init__(self):
        self._local = threading.local()

    @property
    def private(self) -> random.Random | None:
        return getattr(self._local, "generator", None)

    @private.setter
    def private(self, generator: random.Random | None) -> None:
        self._local.generator = generator

    def __getattr__(self, name):
        source = self.private
        return getattr(random if source is None else source, name)


_INSTALL_LOCK = threading.Lock()


def _keras_default_seed_source() -> _PerThreadRandom | None:
    """The per-thread dispatcher behind Keras' default seeds, installed on first call (None if impossible)."""
    from keras.src.random import seed_generator

    with _INSTALL_LOCK:
        current = getattr(seed_generator, "python_random", None)
        if isinstance(current, _PerThreadRandom):
            return current
        if current is not random:
            warnings.warn(
                "this Keras version does not draw its default seeds from keras.src.random.seed_generator."
                "python_random; models built by tfmia are reproducible only while no other thread draws "
                "from Python's random module",
                RuntimeWarning,
                stacklevel=3,
            )
            return None
        seed_generator.python_random = _PerThreadRandom()
        return seed_generator.python_random


@contextlib.contextmanager
def keras_seed_scope(seed: int):
    """Within the block, Keras draws this thread's default seeds from ``random.Random(seed)``.

    Covers every initialiser, Dropout/noise layer and ``SeedGenerator``
    created without a seed, and unseeded ``keras.random`` calls (through a
    fresh per-thread fallback generator).  Other threads are not affected and
    cannot affect the draws.  Scopes nest; leaving one restores the previous
    state of this thread.
    """
    from keras.src.backend.common import global_state
    from keras.src.random.seed_generator import GLOBAL_SEED_GENERATOR

    seed = _check_seed(seed)
    source = _keras_default_seed_source()
    if source is None:
        yield
        return
    saved_private, saved_fallback = source.private, global_state.get_global_attribute(GLOBAL_SEED_GENERATOR)
    source.private = random.Random(seed)
    global_state.set_global_attribute(GLOBAL_SEED_GENERATOR, None)  # recreated from the private stream on use
    try:
        yield
    finally:
        source.private = saved_private
        global_state.set_global_attribute(GLOBAL_SEED_GENERATOR, saved_fallback)


@contextlib.contextmanager
def seeded(seed: int | None):
    """Seed the global generators (for code in the block that reads them) and enter :func:`keras_seed_scope`
    (None: do nothing).

    Python's and numpy's global generators get their previous state back when
    the block ends, so that building a model inside a user's program (a
    reference model during their ``fit``, say) does not replay the same random
    numbers to whatever draws from them afterwards (a data generator,
    augmentation).  TensorFlow's global seed is set too and cannot be restored.
    """
    if seed is None:
        yield
        return
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        seed_everything(seed)
        with keras_seed_scope(seed):
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def build_model(model_fn, *, seed: int | None = None):
    """Call ``model_fn`` inside :func:`seeded` and check it returned a compiled Keras model."""
    import keras

    if not callable(model_fn):
        raise ValueError(f"model_fn must be callable, got {type(model_fn).__name__}")
    with seeded(seed):
        model = model_fn()
    if not isinstance(model, keras.Model):
        raise ValueError(f"model_fn must return a keras.Model, got {type(model).__name__}")
    if not model.compiled:
        raise ValueError(
            "model_fn must return a compiled model (call model.compile(optimizer, loss, ...) inside model_fn), "
            f"got an uncompiled {model.name!r}"
        )
    return model


def fit_model(model, x, y, config: FitConfig, *, seed: int | None = None, callbacks=None, verbose: int = 0):
    """``model.fit`` with the configuration's settings; returns the History.

    With a ``seed`` the fit reads no global random state (module docstring):
    shuffled batches come in the order of ``(seed, epoch)`` and Keras' default
    seeds from a private stream keyed by ``(seed, initial_epoch)``.  Without
    one, Keras shuffles from TensorFlow's global seed.
    """
    fit_kwargs = {"epochs": config.epochs, "verbose": verbose, "callbacks": list(callbacks or []),
                  **config.fit_kwargs}
    if seed is None:
        return model.fit(x, y, batch_size=config.batch_size, shuffle=config.shuffle, **fit_kwargs)
    seed = _check_seed(seed)
    first_epoch = fit_kwargs.get("initial_epoch", 0)
    stream = int(np.random.SeedSequence([seed, _FIT_STREAM, first_epoch]).generate_state(1)[0])
    with keras_seed_scope(stream):
        if not config.shuffle or first_epoch >= config.epochs:
            return model.fit(x, y, batch_size=config.batch_size, shuffle=False, **fit_kwargs)
        batches, fit_kwargs = _shuffled_batches(x, y, config.batch_size, seed, fit_kwargs)
        return model.fit(batches, shuffle=False, **fit_kwargs)


def _shuffled_batches(x, y, batch_size: int, seed: int, fit_kwargs: dict):
    """``(ShuffledBatches, fit keywords)`` replacing Keras' own shuffle of ``(x, y[, sample_weight])``.

    ``validation_split`` holds out the last records before shuffling, as
    Keras does (unless ``validation_data`` is given, which Keras prefers).
    """
    from ._shuffled_batches import ShuffledBatches, count_records

    fit_kwargs = dict(fit_kwargs)
    if "steps_per_epoch" in fit_kwargs:
        raise ValueError("fit_kwargs must not set steps_per_epoch when fit_model shuffles with a seed")
    sample_weight = fit_kwargs.pop("sample_weight", None)
    arrays = (x, y) if sample_weight is None else (x, y, sample_weight)
    validation_split = fit_kwargs.pop("validation_split", 0.0)
    if validation_split and fit_kwargs.get("validation_data") is None:
        import keras

        n = count_records(arrays)
        split_at = int(np.floor(n * (1.0 - validation_split)))
        if not 0 < split_at < n:
            raise ValueError(f"validation_split={validation_split} leaves no training or no validation records "
                             f"of the {n}")
        fit_kwargs["validation_data"] = keras.tree.map_structure(lambda a: np.asarray(a)[split_at:], arrays)
        arrays = keras.tree.map_structure(lambda a: np.asarray(a)[:split_at], arrays)
    batches = ShuffledBatches(arrays, batch_size=batch_size, seed=seed,
                              first_epoch=fit_kwargs.get("initial_epoch", 0), epochs=fit_kwargs["epochs"])
    fit_kwargs["steps_per_epoch"] = batches.steps_per_epoch
    return batches, fit_kwargs


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


def weights_bytes(model) -> bytes:
    """The bytes of the ``.weights.h5`` file ``model.save_weights`` writes (weights and optimiser state)."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.weights.h5")
        model.save_weights(path)
        with open(path, "rb") as fh:
            return fh.read()


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
