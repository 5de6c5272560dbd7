"""Reference-model farm: K replicas of one Keras recipe trained together, as one packed model.

Attacks that matter at low false-positive rates (LiRA, RMIA, Shokri's shadow
models) are dominated by training many reference models of one architecture.
A small model leaves most of the machine idle in a Keras ``fit`` step (the
framework's overhead per step dominates); :class:`PackedModel` trains K
replicas in one computation instead.

What a replica computes
-----------------------
Replica k of a pack built from ``model_fn`` with seeds ``seeds`` and trained
by :meth:`PackedModel.fit_members` on ``members[k]`` is, up to float rounding,
the model::

    model = build_model(model_fn, seed=seeds[k])
    fit_model(model, x[members[k]], y[members[k]], fit, seed=seeds[k])

* **Initial weights**: the K replicas are built exactly so, and their weights
  stacked along a leading replica axis (a Dense kernel becomes ``(K, in, out)``).
* **Batches**: epoch e visits replica k's ``n_k`` members in the order
  ``epoch_order(seeds[k], e, n_k)`` (:mod:`tfmia._shuffled_batches`, the order
  ``fit_model`` uses), in ``ceil(n_k / batch_size)`` steps of ``batch_size``
  records and a short last one: a replica sees the batches, the batch size and
  the number of steps its own ``fit_model`` would give it.  Each replica
  gathers its own batch of its own members; no arithmetic is spent on records
  a replica does not learn from.
* **Loss**: the replica's compiled per-sample loss averaged over its own batch
  (Keras' ``sum_over_batch_size``), plus its own regularisation losses
  (``kernel_regularizer`` ...).  The packed objective is the sum of the
  replicas' losses, so the gradient with respect to replica k's weights is
  the gradient of replica k's loss.
* **Update**: the compiled optimiser's own formula (SGD with or without
  (Nesterov) momentum, Adam/AdamW with or without AMSGrad, RMSprop, Adagrad;
  weight decay, ``clipnorm``, ``clipvalue``), applied to each replica's slice
  with that replica's own step counter (Adam's bias correction).
* **Dropout**: the mask Keras draws, ``stateless_dropout(x, rate,
  seed=[s, t])`` with the layer's seed ``s`` (from the replica's build) and
  the replica's step ``t``: bit for bit the draws of the replica's own fit.
* **BatchNormalization**: moments over the replica's own rows, its own moving
  statistics.

Replicas with different member counts
-------------------------------------
A pack step s runs step s of every replica.  Replica k has
``S_k = epochs * ceil(n_k / batch_size)`` steps; when the replicas' counts
differ (LiRA's keep matrix puts every record in half of the models, not every
model on half of the records), a replica that has finished idles: its weights,
optimiser state, step counter and BatchNormalization statistics are left as
they were (the update is masked).  A replica's short last batch is padded to
the pack's batch with rows of weight 0, which count in neither its loss nor
its BatchNormalization moments; Dropout masks are drawn for the padded shape,
whose first rows are the mask of the short one (stateless draws fill the
tensor in order).

How the replicas are packed
---------------------------
Dense layers run as one batched matmul ``(K, B, in) @ (K, in, out)``.
Convolutions run as K convolutions in one graph, which TensorFlow runs side by
side (on CPU this measured faster than one grouped convolution over ``K * C``
channels, whose transposes cost more than they save).  Weightless per-sample
layers (pooling, flatten, activations) run on the K batches merged into one.

What cannot be packed
---------------------
:func:`packing_obstacle` says why a model cannot be packed faithfully, and
:func:`check_packable` raises :class:`NotPackable` with it: anything but a
chain of the supported layers (Dense, Conv1D/2D/3D, pooling, Flatten,
Reshape, activations, Dropout, BatchNormalization), a model with its own
``train_step`` (the training-time defences), several inputs or outputs, loss
functions that are not Keras' sample-wise ones, loss weights, optimisers whose
update couples elements (or schedules, EMA, loss scaling, gradient
accumulation, ``global_clipnorm``), constraints, activity regularisers, frozen
layers, mixed precision, and ``fit`` keywords beyond epochs, batch size and
shuffle.
"""

from __future__ import annotations

from ..training import FitConfig
from .memory import available_memory, choose_pack_size, estimate_pack_bytes
from .model import _packed_model_class
from .packability import NotPackable, check_packable, packing_obstacle

__all__ = ["NotPackable", "PackedModel", "packing_obstacle", "check_packable", "estimate_pack_bytes",
           "available_memory", "choose_pack_size", "train_packed"]

_CLASSES: dict = {}


def __getattr__(name):
    """``PackedModel`` is defined on first access (it subclasses ``keras.Model``; importing Keras is slow)."""
    if name == "PackedModel":
        if name not in _CLASSES:
            _CLASSES[name] = _packed_model_class()
        return _CLASSES[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def train_packed(model_fn, x, y, members, fit: FitConfig, *, seeds, queries, predict_batch_size: int = 512,
                 logits: bool = False, progress: bool = False) -> list[dict]:
    """Train ``len(seeds)`` replicas packed; each one's outputs on its ``queries`` and its weights file.

    Replica k is ``build_model(model_fn, seed=seeds[k])`` trained on records
    ``members[k]`` of ``(x, y)`` (package docstring).  Returns per replica
    ``{"outputs", "is_logits", "weights"}`` (``weights``: the bytes of its
    ``.weights.h5`` file), what :func:`tfmia.shadow_training.train_shadow_models`
    stores for each model.  ``progress``: a progress bar over the training steps.
    """
    from ..features.predictions import outputs_are_logits
    from ..training import weights_bytes

    pack = __getattr__("PackedModel").from_model_fn(model_fn, seeds)
    pack.fit_members(x, y, members, fit, progress=progress)
    outputs = pack.predict_members(x, queries, batch_size=predict_batch_size, logits=logits)
    model = pack.recipe
    is_logits = bool(logits or outputs_are_logits(model))
    results = []
    for k in range(pack.n_replicas):
        pack.export_replica(k, model)
        results.append({"outputs": outputs[k], "is_logits": is_logits, "weights": weights_bytes(model)})
    return results
