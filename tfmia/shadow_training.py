"""Training many shadow (reference) models: any executor, checkpointed, resumable.

Shokri et al.'s shadow models, LiRA's reference models and SeqMIA's shadow
model are all "train the target's recipe on part of the attacker's data and
record the model's outputs on attacker records".  This module does that once
for every attack.

* Each model is an independent job submitted to a
  :class:`concurrent.futures.Executor`: the default runs them in-process one
  after another; a ``ProcessPoolExecutor`` (spawn context) or a Dask
  ``Client.get_executor()`` runs them in parallel, on one machine or a cluster.
* A job receives only its own training records and the records to query, and
  returns the model's outputs on the query records and its weights; the
  parent writes them atomically to the run directory as each job finishes.
* Rerunning with the same run directory and configuration loads the models
  already finished and trains only the rest; a different configuration
  (model, defence, recipe, sizes, seed, data) is refused.

In/out schemes (``scheme``):

``"shokri"``   each model draws ``2 * train_size`` distinct records: the first
               half trains it ("in"), the second half is held out ("out").
               Different models draw independently, so they may overlap
               (Shokri et al. 2017, section V).
``"disjoint"`` as "shokri", but no record is used by two models.
``"lira"``     every record is "in" for exactly half of the models (Carlini et
               al. 2022's ``keep`` matrix); models are queried on every record.
               Models come in pairs trained on complementary random halves, so
               the first 2k models are a balanced set of their own.

``holdout`` names pool records that no model trains on but every model is
queried on (RMIA's population records, or audited records that offline
reference models must not see); the scheme splits the other records.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import hashlib
from pathlib import Path

import numpy as np

from ._serialization import atomic_write_bytes
from ._validate import check_positive_int
from .data import AttackInputs
from .farm import choose_pack_size
from .runs import RunDirectory, describe_fit, describe_model, fingerprint_arrays
from .training import FitConfig, build_model, fit_model, weights_bytes

__all__ = ["ShadowModel", "ShadowModels", "train_shadow_models", "SequentialExecutor", "shadow_splits", "SCHEMES"]

SCHEMES = ("shokri", "disjoint", "lira")


class SequentialExecutor(cf.Executor):
    """Runs each submitted call immediately in this process (the default executor)."""

    def submit(self, fn, /, *args, **kwargs):
        future: cf.Future = cf.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # delivered through the future, like any executor
            future.set_exception(exc)
        return future


@dataclasses.dataclass(frozen=True)
class ShadowModel:
    """One trained shadow model: its in/out records and its outputs on the queried records.

    Indices refer to the attacker's pool ``(x, y)``; ``outputs[i]`` is the
    model's output on record ``query_indices[i]``.
    """

    index: int
    in_indices: np.ndarray
    out_indices: np.ndarray
    query_indices: np.ndarray
    outputs: np.ndarray
    is_logits: bool
    weights_path: Path | None

    def outputs_for(self, indices) -> np.ndarray:
        """Outputs on the given pool indices (each must have been queried)."""
        indices = np.asarray(indices, dtype=np.int64)
        order = np.argsort(self.query_indices, kind="stable")
        pos = np.searchsorted(self.query_indices, indices, sorter=order)
        pos = np.minimum(pos, order.size - 1)
        found = order[pos]
        if not np.array_equal(self.query_indices[found], indices):
            raise ValueError(f"shadow model {self.index} was not queried on some of the requested records")
        return self.outputs[found]


@dataclasses.dataclass
class ShadowModels:
    """The trained shadow models plus what happened in this call.

    ``trained`` lists the models trained now, ``resumed`` those loaded from
    the run directory.
    """

    models: list[ShadowModel]
    y: np.ndarray
    trained: list[int]
    resumed: list[int]

    def __len__(self) -> int:
        return len(self.models)

    def attack_inputs(self, i: int, output_transform=None, sum_tol: float | None = 1e-3) -> tuple[AttackInputs, AttackInputs]:
        """(members, non-members) AttackInputs of shadow model ``i``.

        ``output_transform`` (e.g. an output defence) is applied to the raw
        outputs first, so that an attack calibrates on what it will observe.
        """
        model = self.models[i]
        pairs = []
        for idx in (model.in_indices, model.out_indices):
            out = model.outputs_for(idx)
            is_logits = model.is_logits
            if output_transform is not None:
                out, is_logits = output_transform(out, is_logits)
            kwargs = {"labels": self.y[idx], "sum_tol": sum_tol}
            kwargs["logits" if is_logits else "probs"] = out
            pairs.append(AttackInputs(**kwargs))
        return pairs[0], pairs[1]

    def pooled_attack_inputs(self, output_transform=None, sum_tol: float | None = 1e-3) -> tuple[AttackInputs, AttackInputs]:
        """Members and non-members of every shadow model, concatenated (calibration data)."""
        pairs = [self.attack_inputs(i, output_transform, sum_tol) for i in range(len(self.models))]
        return AttackInputs.concatenate([p[0] for p in pairs]), AttackInputs.concatenate([p[1] for p in pairs])

    def membership(self) -> np.ndarray:
        """(k, N_pool) bool matrix: record j was in model i's training set."""
        out = np.zeros((len(self.models), self.y.size), dtype=bool)
        for i, m in enumerate(self.models):
            out[i, m.in_indices] = True
        return out


def shadow_splits(n_pool: int, *, n_shadows: int, train_size: int | None, scheme: str, seed: int, holdout=None):
    """Per-model (in_indices, out_indices, query_indices) for ``scheme`` (see module docstring).

    The scheme splits the pool records outside ``holdout``; each model's
    queries are its scheme's queries followed by the ``holdout`` records.
    Without a holdout the splits are those of the whole pool.
    """
    held = _holdout_indices(holdout, n_pool)
    if held.size == 0:
        return _scheme_splits(n_pool, n_shadows=n_shadows, train_size=train_size, scheme=scheme, seed=seed)
    rest = np.setdiff1d(np.arange(n_pool), held)
    splits = _scheme_splits(rest.size, n_shadows=n_shadows, train_size=train_size, scheme=scheme, seed=seed)
    return [(rest[i], rest[o], np.concatenate([rest[q], held])) for i, o, q in splits]


def _holdout_indices(holdout, n_pool: int) -> np.ndarray:
    """``holdout`` as distinct int64 pool indices (empty for None)."""
    if holdout is None:
        return np.zeros(0, dtype=np.int64)
    held = np.asarray(holdout)
    if held.ndim != 1 or not (np.issubdtype(held.dtype, np.integer) or held.size == 0):
        raise ValueError(f"holdout must be a 1-D array of integer pool indices, got {held.dtype} {held.shape}")
    held = held.astype(np.int64)
    if held.size and (held.min() < 0 or held.max() >= n_pool):
        raise ValueError(f"holdout must lie in [0, {n_pool}), found {int(held.min())}..{int(held.max())}")
    if np.unique(held).size != held.size:
        raise ValueError("holdout must not repeat a record")
    return held


def _scheme_splits(n_pool: int, *, n_shadows: int, train_size: int | None, scheme: str, seed: int):
    """``shadow_splits`` of a pool of ``n_pool`` records, all of them available to the scheme."""
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
    rng = np.random.default_rng(seed)
    splits = []
    if scheme == "lira":
        if n_shadows < 2 or n_shadows % 2:
            raise ValueError(f"the 'lira' scheme needs an even n_shadows >= 2 (each record is in exactly half of "
                             f"the models), got {n_shadows}")
        # Models 2j and 2j + 1 train on complementary random halves, so every record is in exactly
        # half of the models, and of any first 2k of them (fewer references are a prefix of more).
        keep = np.empty((n_shadows, n_pool), dtype=bool)
        for j in range(n_shadows // 2):
            keep[2 * j] = rng.permutation(n_pool) < n_pool // 2
            keep[2 * j + 1] = ~keep[2 * j]
        everything = np.arange(n_pool)
        for i in range(n_shadows):
            splits.append((np.flatnonzero(keep[i]), np.flatnonzero(~keep[i]), everything))
        return splits
    check_positive_int(train_size, "train_size")
    need = 2 * train_size * (n_shadows if scheme == "disjoint" else 1)
    if need > n_pool:
        raise ValueError(
            f"attacker data has {n_pool} records (outside any holdout) but {n_shadows} shadow model(s) of "
            f"train_size {train_size} with scheme {scheme!r} need {need}"
        )
    disjoint_order = rng.permutation(n_pool) if scheme == "disjoint" else None
    for i in range(n_shadows):
        if scheme == "disjoint":
            chosen = disjoint_order[2 * train_size * i : 2 * train_size * (i + 1)]
        else:
            chosen = rng.choice(n_pool, size=2 * train_size, replace=False)
        in_idx, out_idx = chosen[:train_size], chosen[train_size:]
        splits.append((in_idx, out_idx, np.concatenate([in_idx, out_idx])))
    return splits


def _train_job(model_fn, x_train, y_train, x_query, fit: FitConfig, seed: int, predict_batch_size: int,
               logits: bool = False):
    """One model (runs in a worker): train, query; ``[{"outputs", "is_logits", "weights"}]`` (weights as bytes)."""
    from .features.predictions import outputs_are_logits, predict

    model = build_model(model_fn, seed=seed)
    fit_model(model, x_train, y_train, fit, seed=seed)
    outputs = predict(model, x_query, batch_size=predict_batch_size, logits=logits)
    return [{"outputs": outputs, "is_logits": logits or outputs_are_logits(model), "weights": weights_bytes(model)}]


def _pack_job(model_fn, x, y, members, queries, fit: FitConfig, seeds, predict_batch_size: int, logits: bool,
              progress: bool = False):
    """One pack of models (runs in a worker), trained together (:func:`tfmia.farm.train_packed`); a result per model."""
    from .farm import train_packed

    return train_packed(model_fn, x, y, members, fit, seeds=seeds, queries=queries,
                        predict_batch_size=predict_batch_size, logits=logits, progress=progress)


def _submit_pack(executor, model_fn, x, y, pack_splits, fit, seeds, predict_batch_size, logits, progress):
    """Submit one pack with the records it uses (members and queried records), re-indexed."""
    used = np.unique(np.concatenate([np.concatenate([in_idx, query]) for in_idx, _, query in pack_splits]))
    members = [np.searchsorted(used, in_idx) for in_idx, _, _ in pack_splits]
    queries = [np.searchsorted(used, query) for _, _, query in pack_splits]
    return executor.submit(_pack_job, model_fn, x[used], y[used], members, queries, fit, seeds,
                           predict_batch_size, logits, progress)


def _progress(total: int, enabled: bool):
    if not enabled:
        return None
    import keras

    return keras.utils.Progbar(total, unit_name="shadow model")


def _stored_packing(run_dir, packed):
    """``(packed, pack_size)`` for resuming in ``run_dir`` when the caller chose no pack size.

    A pack size chosen to fit the available memory would change with the
    machine's load, and a run directory records it: a rerun takes the stored
    one (and trains one after another where the stored run did, unless
    ``packed=True`` asks otherwise), so that it resumes instead of being
    refused for a configuration it did not choose.
    """
    stored = RunDirectory.stored_config(run_dir, "shadow_models")
    if stored is None:
        return packed, None
    if "packing" in stored:
        return packed, stored["packing"].get("pack_size")
    return (False if packed == "auto" else packed), None


def train_shadow_models(
    model_fn,
    x,
    y,
    *,
    n_shadows: int,
    fit: FitConfig,
    train_size: int | None = None,
    scheme: str = "shokri",
    seed: int = 0,
    run_dir=None,
    executor: cf.Executor | None = None,
    progress: bool = True,
    predict_batch_size: int = 512,
    logits: bool = False,
    tag: str = "",
    holdout=None,
    packed="auto",
    pack_size: int | None = None,
    memory_budget: int | None = None,
) -> ShadowModels:
    """Train ``n_shadows`` models of ``model_fn`` on the attacker's pool ``(x, y)``.

    Args:
        model_fn: zero-argument callable returning a compiled Keras model (the target's recipe).
        x, y: the attacker's data pool (arrays; ``y`` integer labels).
        n_shadows: number of models (>= 1).
        fit: epochs, batch size and other ``fit`` settings (the target's recipe).
        train_size: records per model's training set (schemes "shokri"/"disjoint").
        scheme: "shokri", "disjoint" or "lira" (see module docstring).
        seed: seeds the in/out splits and each model's initialisation (model i uses seed + 1 + i).
        run_dir: folder to checkpoint into and resume from (None: keep nothing on disk).
        executor: where jobs run (default: in this process, one after another).
        progress: show a progress bar over models (and, in this process, over each pack's training steps).
        predict_batch_size: inference batch size for the stored outputs.
        logits: store the pre-softmax scores of softmax models (see ``AttackInputs.from_model``).
        tag: distinguishes several runs sharing one run directory's config (e.g. "lira").
        holdout: pool indices no model trains on, queried by every model (see module docstring).
        packed: train the models in packs, as one Keras model each (:mod:`tfmia.farm`): ``"auto"`` where
            the model allows (else one after another, with a log line), ``True`` (or a ``ValueError``
            saying why not), ``False`` (one after another).  A packed model is the sequential one up
            to float rounding: the same initial weights, batches, dropout masks and updates.
        pack_size: models per pack (default: all, or as many as fit ``memory_budget``).  Each pack is
            one job on ``executor`` and is checkpointed whole: a resumed run retrains a pack unless
            all its models are stored.
        memory_budget: bytes a pack may use (default: half the available memory).
    """
    check_positive_int(n_shadows, "n_shadows")
    x = np.asarray(x)
    y = np.asarray(y)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x has {x.shape[0]} records but y has {y.shape[0]}")
    if not isinstance(fit, FitConfig):
        raise ValueError(f"fit must be a FitConfig, got {type(fit).__name__}")
    splits = shadow_splits(x.shape[0], n_shadows=n_shadows, train_size=train_size, scheme=scheme, seed=seed,
                           holdout=holdout)
    held = _holdout_indices(holdout, x.shape[0])
    if run_dir is not None and pack_size is None:
        packed, pack_size = _stored_packing(run_dir, packed)
    first = build_model(model_fn, seed=seed + 1) if packed is not False or run_dir is not None else None  # model 0
    size = choose_pack_size(first, fit, n_models=n_shadows, packed=packed, pack_size=pack_size,
                            memory_budget=memory_budget, data_bytes=2 * x.size * 4 + y.nbytes)
    jobs = [[i] for i in range(n_shadows)] if size is None else \
        [list(range(start, min(start + size, n_shadows))) for start in range(0, n_shadows, size)]
    run = None
    if run_dir is not None:
        packing = {} if size is None else {"packing": {"pack_size": size}}  # one after another: no entry
        run = RunDirectory(
            run_dir,
            "shadow_models",
            {**packing,
                "model": describe_model(first),  # model 0 as it starts training
                "n_shadows": n_shadows,
                "train_size": train_size,
                "scheme": scheme,
                "seed": seed,
                "fit": describe_fit(fit),
                "data": fingerprint_arrays(x, y),
                "logits": bool(logits),
                "tag": tag,
                **({"holdout": fingerprint_arrays(held)} if held.size else {}),
            },
        )
    executor = executor or SequentialExecutor()
    bar = _progress(n_shadows, progress)
    models: dict[int, ShadowModel] = {}
    resumed, trained, pending = [], [], {}

    def finish(future) -> None:
        """Store a finished job's models, each with its weights first, then the .npz that marks it finished.

        The weights file is named after its contents, so that two processes
        training the same run leave each model's outputs beside the weights
        that produced them.
        """
        for i, result in zip(pending.pop(future), future.result()):
            store(i, *splits[i], result)

    def store(i, in_idx, out_idx, query_idx, result) -> None:
        weights_path = None
        if run is not None:
            name = f"shadow_{i:04d}"
            digest = hashlib.sha256(result["weights"]).hexdigest()[:16]
            weights_path = atomic_write_bytes(run.path(f"{name}_{digest}.weights.h5"), result["weights"])
            run.save_arrays(f"{name}.npz", in_indices=in_idx, out_indices=out_idx, query_indices=query_idx,
                            outputs=result["outputs"], is_logits=np.bool_(result["is_logits"]),
                            weights_file=np.str_(weights_path.name))
        models[i] = ShadowModel(i, in_idx, out_idx, query_idx, result["outputs"], result["is_logits"], weights_path)
        trained.append(i)
        if bar is not None:
            bar.add(1)

    def resume(job) -> None:
        for i in job:
            saved = run.load_arrays(f"shadow_{i:04d}.npz")
            models[i] = ShadowModel(i, saved["in_indices"], saved["out_indices"], saved["query_indices"],
                                    saved["outputs"], bool(saved["is_logits"]), run.path(str(saved["weights_file"])))
        resumed.extend(job)
        if bar is not None:
            bar.add(len(job))

    for job in jobs:
        # A pack counts as finished only when all its models are stored: its models are trained together.
        if run is not None and all(run.has(f"shadow_{i:04d}.npz") for i in job):
            resume(job)
            continue
        if size is None:
            in_idx, _, query_idx = splits[job[0]]
            future = executor.submit(_train_job, model_fn, x[in_idx], y[in_idx], x[query_idx], fit,
                                     seed + 1 + job[0], predict_batch_size, bool(logits))
        else:
            # In this process, a pack's steps get a progress bar of their own (a pack may train for long).
            future = _submit_pack(executor, model_fn, x, y, [splits[i] for i in job], fit,
                                  [seed + 1 + i for i in job], predict_batch_size, bool(logits),
                                  bar is not None and isinstance(executor, SequentialExecutor))
        pending[future] = job
        # Store whatever has finished already (with the in-process executor: this job), so that an
        # interruption loses at most the jobs still running.
        for finished in [f for f in pending if f.done()]:
            finish(finished)
    for future in cf.as_completed(list(pending)):
        finish(future)
    return ShadowModels([models[i] for i in range(n_shadows)], y=y, trained=sorted(trained), resumed=sorted(resumed))
