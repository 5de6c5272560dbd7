"""Memory: what a pack needs, what the machine has, and how many models to pack together."""

from __future__ import annotations

import logging
import os

import numpy as np

from .._validate import check_positive_int
from ..training import FitConfig
from .packability import _OPTIMIZER_SLOTS, NotPackable, _keras_class, _model_layers, check_packable, packing_obstacle

logger = logging.getLogger(__package__)  # "tfmia.farm": the package's one logger


def available_memory() -> int | None:
    """Bytes the kernel reports as available (``MemAvailable``), or None where it does not say."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def estimate_pack_bytes(model, n_replicas: int, batch_size: int) -> int:
    """Bytes a pack of ``n_replicas`` replicas of a packable ``model`` needs while training at ``batch_size``.

    ``4 * K * (2 P + T (s + 2) + 3 B A)`` for K replicas: each replica's P
    weights twice (the replica as built, then its slice of the pack), its
    optimiser's ``s`` slots, gradient and an update temporary for each of
    its T trainable weights, and per record of the batch every layer's A
    output values three times (kept for the backward pass, their gradient,
    one temporary).  The records the pack gathers from are the caller's to add.
    Raises :class:`NotPackable` for a model that cannot be packed.
    """
    check_positive_int(n_replicas, "n_replicas")
    check_positive_int(batch_size, "batch_size")
    check_packable(model)
    weights = sum(int(np.prod(v.shape)) for v in model.weights)
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    slots = len(_OPTIMIZER_SLOTS[_keras_class(model.optimizer)](model.optimizer))
    activations = sum(int(np.prod(layer.output.shape[1:])) for layer in _model_layers(model))
    per_replica = weights * 2 + trainable * (slots + 2) + batch_size * activations * 3
    return 4 * n_replicas * per_replica


def choose_pack_size(model, fit: FitConfig, *, n_models: int, packed="auto", pack_size: int | None = None,
                     memory_budget: int | None = None, data_bytes: int = 0) -> int | None:
    """How many models of ``model``'s recipe to train per pack, or None to train them one after another.

    ``model`` is one replica as built (not trained; None only with
    ``packed=False``).  ``packed``: ``False`` -> None; ``True`` -> a pack
    size, or :class:`NotPackable` / ``ValueError`` saying why not;
    ``"auto"`` -> a pack size where the model allows, else None with a log
    line.  ``pack_size``: the pack size to use, which must fit the memory
    budget; default: the largest that fits, up to ``n_models``.
    ``memory_budget``: bytes a pack may use (default: half the available
    memory), compared with :func:`estimate_pack_bytes` plus ``data_bytes``
    (the records a pack gathers from) before any pack is built.
    """
    if packed not in (True, False, "auto"):
        raise ValueError(f"packed must be True, False or 'auto', got {packed!r}")
    check_positive_int(n_models, "n_models")
    if pack_size is not None:
        check_positive_int(pack_size, "pack_size")
    if memory_budget is not None:
        check_positive_int(memory_budget, "memory_budget")
    if packed is False:
        return None
    reason = packing_obstacle(model, fit)
    if reason is not None:
        if packed is True:
            raise NotPackable(f"packed=True, but this model cannot be packed: {reason}")
        logger.warning("tfmia.farm: training the %d model(s) one after another: %s", n_models, reason)
        return None
    budget = memory_budget if memory_budget is not None else (available_memory() or 0) // 2 or None
    per_model = estimate_pack_bytes(model, 1, fit.batch_size)
    if pack_size is not None:
        size = min(pack_size, n_models)
        if budget is not None and size * per_model + data_bytes > budget:
            raise ValueError(f"pack_size={pack_size}: a pack of {size} models needs about "
                             f"{_gib(size * per_model + data_bytes)}, more than the memory budget of {_gib(budget)}; "
                             "choose a smaller pack_size")
        return size
    size = n_models if budget is None else min(n_models, max(0, (budget - data_bytes) // per_model))
    if size == 0:
        message = (f"a pack of one model needs about {_gib(per_model + data_bytes)}, more than the memory budget "
                   f"of {_gib(budget)}")
        if packed is True:
            raise ValueError(f"packed=True, but {message}")
        logger.warning("tfmia.farm: training the %d model(s) one after another: %s", n_models, message)
        return None
    if size < n_models:
        logger.warning("tfmia.farm: %d models in packs of %d to fit the memory budget of %s", n_models, size,
                       _gib(budget))
    return int(size)


def _gib(n_bytes) -> str:
    return f"{n_bytes / 2**30:.2f} GiB"
