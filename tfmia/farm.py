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

import dataclasses
import functools
import logging
import math
import os

import numpy as np

from ._validate import check_positive_int
from .training import FitConfig, build_model

__all__ = ["NotPackable", "PackedModel", "packing_obstacle", "check_packable", "estimate_pack_bytes",
           "available_memory", "choose_pack_size", "train_packed"]

logger = logging.getLogger(__name__)

_FLOAT = "float32"


class NotPackable(ValueError):
    """A model cannot be packed faithfully; the message says why."""


# ----------------------------------------------------------------------------------------------
# What can be packed
# ----------------------------------------------------------------------------------------------

_WEIGHTLESS = {
    "Flatten", "Reshape", "Activation", "ReLU", "LeakyReLU", "ELU", "Softmax",
    "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D", "AveragePooling3D",
    "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
    "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
}
"""Keras layers without weights that act on each sample alone: they run on the replicas' batches merged."""

_CONVOLUTIONS = {"Conv1D", "Conv2D", "Conv3D"}

_SAMPLE_WISE_LOSSES = {
    "sparse_categorical_crossentropy", "categorical_crossentropy", "binary_crossentropy",
    "categorical_focal_crossentropy", "binary_focal_crossentropy", "mean_squared_error", "mean_absolute_error",
    "mean_absolute_percentage_error", "mean_squared_logarithmic_error", "huber", "log_cosh", "kl_divergence",
    "poisson", "hinge", "squared_hinge", "categorical_hinge",
}
"""Keras loss functions whose value for a record depends on that record alone."""

_MEAN_REDUCTIONS = ("sum_over_batch_size", "mean", "mean_with_sample_weight")


def _keras_class(obj) -> str | None:
    """The class name of a Keras built-in object (None for user classes, which may do anything)."""
    module = type(obj).__module__
    return type(obj).__name__ if module.startswith(("keras.src.", "keras.")) else None


def _model_layers(model) -> list:
    """The layers of a Sequential model, or of a functional model that is a chain, in call order."""
    import keras
    from keras.src.models.functional import Functional

    if type(model) is keras.Sequential:
        return list(model.layers)
    if type(model) is not Functional:
        raise NotPackable(f"model {model.name!r} is a {type(model).__name__} (its own train_step or call); "
                          "only Sequential and functional models are packed")
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise NotPackable(f"model {model.name!r} has {len(model.inputs)} inputs and {len(model.outputs)} outputs; "
                          "only single-input, single-output models are packed")
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    previous = model.inputs[0]
    for layer in layers:
        if len(layer._inbound_nodes) != 1 or layer.input is not previous:
            raise NotPackable(f"model {model.name!r} is not a chain of layers (layer {layer.name!r} "
                              "is not fed by the layer before it alone)")
        previous = layer.output
    if previous is not model.outputs[0]:
        raise NotPackable(f"model {model.name!r} is not a chain of layers")
    return layers


def _layer_obstacle(layer) -> str | None:
    """Why ``layer`` cannot be packed, or None."""
    kind = _keras_class(layer)
    if kind not in _WEIGHTLESS | _CONVOLUTIONS | {"Dense", "Dropout", "BatchNormalization"}:
        return f"layer {layer.name!r} of type {type(layer).__name__} is not supported"
    if layer.dtype_policy.name != _FLOAT:
        return f"layer {layer.name!r} computes in {layer.dtype_policy.name} (only float32 is packed)"
    if layer.weights and not layer.trainable:
        return f"layer {layer.name!r} is frozen (trainable=False)"
    if getattr(layer, "activity_regularizer", None) is not None:
        return f"layer {layer.name!r} has an activity regularizer"
    for variable in layer.trainable_variables:
        if variable.constraint is not None:
            return f"layer {layer.name!r} constrains its weight {variable.name!r}"
        if variable.regularizer is not None and _keras_class(variable.regularizer) not in ("L1", "L2", "L1L2"):
            return (f"layer {layer.name!r} regularises {variable.name!r} with {variable.regularizer!r} "
                    "(only Keras' L1, L2 and L1L2, sums over the weights, are packed)")
    if kind == "Dense" and (getattr(layer, "lora_enabled", False) or getattr(layer, "quantization_mode", None)):
        return f"layer {layer.name!r} is a LoRA or quantized Dense"
    if kind in _CONVOLUTIONS and layer.groups != 1:
        return f"layer {layer.name!r} is a grouped convolution"
    if kind == "Dropout" and layer.noise_shape is not None:
        return f"layer {layer.name!r} has a noise_shape"
    if kind == "BatchNormalization":
        if layer.axis not in (-1, len(layer.input.shape) - 1):
            return f"layer {layer.name!r} normalises axis {layer.axis}, not the last axis"
        if layer.renorm:
            return f"layer {layer.name!r} uses batch renormalisation"
    return None


def _resolve_loss(model):
    """The compiled loss as the Keras ``Loss`` object ``compile`` uses, or NotPackable saying why not.

    Keras' built-in losses wrap a loss function (``LossFunctionWrapper``);
    only those whose function is one of Keras' sample-wise ones are packed.
    """
    import keras
    from keras.src.losses.losses import LossFunctionWrapper  # what compile() wraps loss functions in

    loss = model.loss
    if model._compile_config.config.get("loss_weights") is not None:
        raise NotPackable("the model is compiled with loss_weights")
    if isinstance(loss, str):
        if loss.lower() in ("crossentropy", "ce"):
            raise NotPackable(f"loss {loss!r} is resolved from the labels' shape; name the crossentropy")
        loss = keras.losses.get(loss)
    if callable(loss) and not isinstance(loss, keras.losses.Loss):
        loss = LossFunctionWrapper(loss, name=getattr(loss, "__name__", "loss"))
    function = getattr(loss, "fn", None)
    keras_function = getattr(function, "__module__", "").startswith("keras.")
    if not (isinstance(loss, LossFunctionWrapper) and _keras_class(loss) and keras_function
            and function.__name__ in _SAMPLE_WISE_LOSSES):
        raise NotPackable(f"loss {model.loss!r} is not one of Keras' sample-wise losses "
                          f"({', '.join(sorted(_SAMPLE_WISE_LOSSES))})")
    if loss.reduction not in _MEAN_REDUCTIONS + ("sum",):
        raise NotPackable(f"loss reduction {loss.reduction!r} is not packed (use the default or 'sum')")
    return loss


# Optimisers whose update of a weight reads only that weight, its gradient and its own slots:
# Keras class name -> the optimiser's attributes holding its slot variables (in Keras' order).
_OPTIMIZER_SLOTS = {
    "SGD": lambda opt: ("momentums",) if opt.momentum != 0 else (),
    "Adam": lambda opt: ("_momentums", "_velocities") + (("_velocity_hats",) if opt.amsgrad else ()),
    "AdamW": lambda opt: ("_momentums", "_velocities") + (("_velocity_hats",) if opt.amsgrad else ()),
    "RMSprop": lambda opt: ("_velocities",) + (("_momentums",) if opt.momentum > 0 else ())
    + (("_average_gradients",) if opt.centered else ()),
    "Adagrad": lambda opt: ("_accumulators",),
}


def _optimizer_obstacle(optimizer) -> str | None:
    kind = _keras_class(optimizer)
    if kind not in _OPTIMIZER_SLOTS:
        return (f"optimizer {type(optimizer).__name__} is not packed (supported: {', '.join(_OPTIMIZER_SLOTS)}; "
                "their updates treat every weight alone)")
    config = optimizer.get_config()
    if not isinstance(config.get("learning_rate"), float):
        return "the optimizer's learning rate is a schedule or a callable"
    problems = {"use_ema": "an exponential moving average (use_ema)", "loss_scale_factor": "a loss_scale_factor",
                "gradient_accumulation_steps": "gradient accumulation",
                "global_clipnorm": "global_clipnorm (a norm over all weights at once)"}
    for key, what in problems.items():
        if config.get(key):
            return f"the optimizer uses {what}"
    if getattr(optimizer, "_exclude_from_weight_decay", None) or \
            getattr(optimizer, "_exclude_from_weight_decay_pattern", None) is not None:
        return "the optimizer excludes variables from weight decay"
    for key in ("beta_1", "beta_2", "epsilon", "momentum", "rho"):
        if key in config and not isinstance(config[key], (int, float)):
            return f"the optimizer's {key} is not a number"
    return None


def packing_obstacle(model, fit: FitConfig | None = None) -> str | None:
    """Why the compiled, built Keras ``model`` (trained with ``fit``) cannot be packed faithfully; None if it can."""
    import keras

    if not isinstance(model, keras.Model) or not model.compiled:
        return "model_fn must return a compiled keras.Model"
    if fit is not None and fit.fit_kwargs:
        return f"fit_kwargs {sorted(fit.fit_kwargs)} are not packed (only epochs, batch_size and shuffle)"
    try:
        layers = _model_layers(model)
        if not model.built or not model.inputs:
            return f"model {model.name!r} is not built (start it with keras.Input)"
        _resolve_loss(model)
    except NotPackable as exc:
        return str(exc)
    for layer in layers:
        if (reason := _layer_obstacle(layer)) is not None:
            return reason
    return _optimizer_obstacle(model.optimizer)


def check_packable(model, fit: FitConfig | None = None) -> None:
    """Raise :class:`NotPackable` saying why ``model`` cannot be packed, if it cannot."""
    reason = packing_obstacle(model, fit)
    if reason is not None:
        raise NotPackable(f"cannot pack this model: {reason}")


def _architecture(model) -> list:
    """What the packed computation relies on: per layer its type, settings (not names, initialisers or seeds)
    and weight shapes, plus the compiled loss and optimiser settings."""
    skipped = ("name", "seed", "dtype")

    def settings(obj) -> dict:
        return {k: repr(v) for k, v in sorted(obj.get_config().items())
                if k not in skipped and not k.endswith("_initializer")}

    layers = [(type(layer).__name__, settings(layer), [tuple(v.shape) for v in layer.weights])
              for layer in _model_layers(model)]
    return layers + [("loss", repr(model.loss)), ("optimizer", type(model.optimizer).__name__,
                                                  settings(model.optimizer))]


def _check_same_architecture(models) -> None:
    first = _architecture(models[0])
    for k, model in enumerate(models[1:], start=1):
        other = _architecture(model)
        if other != first:
            where = next((i for i, (a, b) in enumerate(zip(first, other)) if a != b), min(len(first), len(other)))
            raise ValueError(
                f"model_fn builds replicas that differ in architecture: replica {k} differs from replica 0 "
                f"at part {where} ({first[where] if where < len(first) else 'nothing'} vs "
                f"{other[where] if where < len(other) else 'nothing'}); every reference model must follow one recipe"
            )


# ----------------------------------------------------------------------------------------------
# Memory
# ----------------------------------------------------------------------------------------------

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
    """
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


# ----------------------------------------------------------------------------------------------
# The packed computation
# ----------------------------------------------------------------------------------------------

class _Batches:
    """The K replicas' values at one point of the network: stacked ``(K, B, ...)`` or a list of K ``(B, ...)``.

    Each layer takes the form it computes fastest in (batched matmuls want the
    stack, convolutions one tensor per replica); conversions happen on demand.
    """

    def __init__(self, *, stacked=None, parts=None):
        self._stacked, self._parts = stacked, parts

    def stacked(self):
        import tensorflow as tf

        if self._stacked is None:
            self._stacked = tf.stack(self._parts)
        return self._stacked

    def parts(self) -> list:
        import tensorflow as tf

        if self._parts is None:
            self._parts = tf.unstack(self._stacked)
        return self._parts

    def per_sample(self, function) -> "_Batches":
        """``function`` (which treats every record alone) applied to every replica's batch."""
        import tensorflow as tf

        if self._parts is not None:
            return _Batches(parts=[function(part) for part in self._parts])
        x = self._stacked
        outer = tf.shape(x)[:2]
        merged = function(tf.reshape(x, tf.concat([[-1], tf.shape(x)[2:]], axis=0)))
        out = tf.reshape(merged, tf.concat([outer, tf.shape(merged)[1:]], axis=0))
        return _Batches(stacked=tf.ensure_shape(out, x.shape[:2] + merged.shape[1:]))


class _Untracked:
    """Holds an object out of Keras' attribute tracking (a replica's layer is not part of the pack's weights)."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


@dataclasses.dataclass
class _StepContext:
    """What a training step tells the layers: row weights (0 for padding), each replica's step counter,
    and where the layers leave their statistics updates (variable, new value)."""

    rows: object
    steps: object
    updates: list


def _stack_weights(layer, replicas: list, name: str, *, trainable: bool):
    """A stacked ``(K, ...)`` weight of ``layer`` holding each replica layer's weight ``name``."""
    values = np.stack([np.asarray(getattr(replica, name)) for replica in replicas])
    return layer.add_weight(name=name, shape=values.shape, dtype=_FLOAT, trainable=trainable,
                            initializer=lambda shape, dtype=None: values)


def _replica_shape(rank: int, n_replicas: int) -> tuple:
    """Shape ``(K, 1, ..., 1)`` that broadcasts one value per replica against a rank-``rank`` stack."""
    return (n_replicas,) + (1,) * (rank - 1)


def _packed_layer_classes():
    """The Keras layer classes of a pack (defined on first use: importing Keras is slow)."""
    import keras
    import tensorflow as tf

    class PackedLayer(keras.layers.Layer):
        """K replicas of one Keras layer; ``weight_names[i]`` is the replica layer's weight i."""

        weight_names: tuple = ()

        def __init__(self, template, replicas: list):
            super().__init__(name=f"packed_{template.name}", dtype=_FLOAT)
            self._replica_layer = _Untracked(template)
            self.n_replicas = len(replicas)
            self.stacked = {}
            for variable in template.weights:
                attribute = self._attribute(template, variable)
                self.stacked[attribute] = _stack_weights(self, replicas, attribute, trainable=variable.trainable)
            self.built = True

        @staticmethod
        def _attribute(template, variable) -> str:
            for name in ("kernel", "bias", "gamma", "beta", "moving_mean", "moving_variance"):
                if getattr(template, name, None) is variable:
                    return name
            raise NotPackable(f"layer {template.name!r} holds weight {variable.name!r} in no known attribute")

        def pairs(self, template):
            """(this layer's stacked weight, the matching weight of ``template``), in ``template.weights`` order."""
            return [(self.stacked[self._attribute(template, v)], v) for v in template.weights]

        def forward(self, h: _Batches, context: _StepContext | None, *, last: bool = False,
                    logits: bool = False) -> _Batches:
            raise NotImplementedError

        @property
        def template(self):
            """Replica 0's layer: its settings and weightless operations serve every replica."""
            return self._replica_layer.value

        def export(self, k: int, layer, steps: int) -> None:
            """Set the replica layer ``layer`` to replica k's weights (after ``steps`` training steps)."""
            for stacked, variable in self.pairs(layer):
                variable.assign(stacked.value[k])

        def activation(self, x, *, skip: bool):
            return x if skip or self.template.activation is None else self.template.activation(x)

    class PackedDense(PackedLayer):
        """``(K, B, ..., in) @ (K, in, out) + bias``: one batched matmul for all replicas."""

        def forward(self, h, context, *, last=False, logits=False):
            x = h.stacked()
            kernel = self.stacked["kernel"].value
            flat = tf.reshape(x, [self.n_replicas, -1, x.shape[-1]])
            y = tf.reshape(tf.matmul(flat, kernel), tf.concat([tf.shape(x)[:-1], [kernel.shape[-1]]], axis=0))
            if "bias" in self.stacked:
                y = y + tf.reshape(self.stacked["bias"].value, _replica_shape(len(x.shape), self.n_replicas)
                                   [:-1] + (kernel.shape[-1],))
            return _Batches(stacked=self.activation(y, skip=last and logits))

    class PackedConvolution(PackedLayer):
        """One convolution per replica (the layer's own ``convolution_op``), side by side in one graph."""

        def forward(self, h, context, *, last=False, logits=False):
            layer = self.template
            kernels = tf.unstack(self.stacked["kernel"].value)
            biases = tf.unstack(self.stacked["bias"].value) if "bias" in self.stacked else [None] * self.n_replicas
            parts = []
            for x, kernel, bias in zip(h.parts(), kernels, biases):
                y = layer.convolution_op(x, kernel)
                if bias is not None:
                    shape = ((1,) * (layer.rank + 1) + (layer.filters,) if layer.data_format == "channels_last"
                             else (1, layer.filters) + (1,) * layer.rank)
                    y = y + tf.reshape(bias, shape)
                parts.append(self.activation(y, skip=last and logits))
            return _Batches(parts=parts)

    class PackedBatchNormalization(PackedLayer):
        """Moments over each replica's own rows (weights 0 exclude padding), each replica's moving statistics."""

        def forward(self, h, context, *, last=False, logits=False):
            layer = self.template
            x = h.stacked()
            rank = len(x.shape)
            per_replica = _replica_shape(rank, self.n_replicas)[:-1] + (x.shape[-1],)
            if context is not None and layer.trainable:
                axes = list(range(1, rank - 1))
                rows = tf.reshape(context.rows, tf.concat([tf.shape(x)[:2], [1] * (rank - 2)], axis=0))
                count = tf.reduce_sum(rows * tf.ones_like(x[..., :1]), axis=axes, keepdims=True)
                mean = tf.reduce_sum(x * rows, axis=axes, keepdims=True) / count
                variance = tf.reduce_sum(tf.math.squared_difference(x, tf.stop_gradient(mean)) * rows,
                                         axis=axes, keepdims=True) / count
                momentum = layer.momentum
                for name, batch_value in (("moving_mean", mean), ("moving_variance", variance)):
                    moving = self.stacked[name]
                    value = tf.reshape(batch_value, moving.shape)
                    context.updates.append((moving, moving.value * momentum + value * (1.0 - momentum)))
            else:
                mean = tf.reshape(self.stacked["moving_mean"].value, per_replica)
                variance = tf.reshape(self.stacked["moving_variance"].value, per_replica)
            gamma = tf.reshape(self.stacked["gamma"].value, per_replica) if "gamma" in self.stacked else None
            beta = tf.reshape(self.stacked["beta"].value, per_replica) if "beta" in self.stacked else None
            y = tf.nn.batch_normalization(x, mean, variance, offset=beta, scale=gamma,
                                          variance_epsilon=layer.epsilon)
            return _Batches(stacked=y)

    class PackedDropout(PackedLayer):
        """Keras' stateless Dropout draw per replica, seeded ``[layer seed, seed count + replica step]``."""

        def __init__(self, template, replicas):
            super().__init__(template, replicas)
            states = np.stack([np.asarray(r.seed_generator.state.value) for r in replicas]).astype(np.int64)
            self.seeds, self.first_draws = states[:, 0], states[:, 1]

        def forward(self, h, context, *, last=False, logits=False):
            rate = self.template.rate
            if context is None or rate == 0:
                return h
            if rate == 1:
                return h.per_sample(tf.zeros_like)
            draws = tf.stack([tf.constant(self.seeds), self.first_draws + context.steps], axis=1)
            seeds = tf.cast(tf.math.floormod(draws, tf.int32.max - 1), tf.int32)  # Keras' cast of a seed state
            return _Batches(parts=[tf.nn.experimental.stateless_dropout(x, rate=rate, seed=seeds[k])
                                   for k, x in enumerate(h.parts())])

        def export(self, k, layer, steps):
            layer.seed_generator.state.assign(np.array([self.seeds[k], self.first_draws[k] + steps]))

    class PackedWeightless(PackedLayer):
        """A layer without weights that treats every record alone, applied to each replica's batch."""

        def forward(self, h, context, *, last=False, logits=False):
            if last and logits:
                return h  # a final Softmax (or softmax Activation): its input is the logits
            return h.per_sample(self.template.call)

    return {"Dense": PackedDense, "Dropout": PackedDropout, "BatchNormalization": PackedBatchNormalization,
            **{kind: PackedConvolution for kind in _CONVOLUTIONS}, **{kind: PackedWeightless for kind in _WEIGHTLESS}}


# ----------------------------------------------------------------------------------------------
# Optimisers: Keras' update formulas on the stacked weights, one step counter per replica
# ----------------------------------------------------------------------------------------------

def _sgd_update(optimizer, gradient, variable, slots, learning_rate, local_step):
    """Keras' SGD: ``m = momentum m - lr g; w += m`` (Nesterov: ``w += momentum m - lr g``), else ``w -= lr g``."""
    if not slots:
        return variable - gradient * learning_rate, {}
    momentum = np.float32(optimizer.momentum)
    m = slots["momentums"] * momentum - gradient * learning_rate
    step = m * momentum - gradient * learning_rate if optimizer.nesterov else m
    return variable + step, {"momentums": m}


def _adam_update(optimizer, gradient, variable, slots, learning_rate, local_step):
    """Keras' Adam: ``alpha = lr sqrt(1 - beta_2^t) / (1 - beta_1^t)``, ``w -= alpha m / (sqrt(v) + eps)``."""
    import tensorflow as tf

    beta_1, beta_2 = optimizer.beta_1, optimizer.beta_2
    alpha = (learning_rate * tf.sqrt(1 - tf.pow(np.float32(beta_2), local_step))
             / (1 - tf.pow(np.float32(beta_1), local_step)))
    m = slots["_momentums"] + (gradient - slots["_momentums"]) * (1 - beta_1)
    v = slots["_velocities"] + (tf.square(gradient) - slots["_velocities"]) * (1 - beta_2)
    new_slots = {"_momentums": m, "_velocities": v}
    if optimizer.amsgrad:
        v = new_slots["_velocity_hats"] = tf.maximum(slots["_velocity_hats"], v)
    return variable - (m * alpha) / (tf.sqrt(v) + optimizer.epsilon), new_slots


def _rmsprop_update(optimizer, gradient, variable, slots, learning_rate, local_step):
    """Keras' RMSprop: ``v = rho v + (1 - rho) g^2``; ``w -= lr g / sqrt(v [- avg^2] + eps)`` (with momentum)."""
    import tensorflow as tf

    rho = optimizer.rho
    v = rho * slots["_velocities"] + (1 - rho) * tf.square(gradient)
    new_slots = {"_velocities": v}
    if optimizer.centered:
        average = new_slots["_average_gradients"] = rho * slots["_average_gradients"] + (1 - rho) * gradient
        denominator = v - tf.square(average) + optimizer.epsilon
    else:
        denominator = v + optimizer.epsilon
    increment = (learning_rate * gradient) / tf.sqrt(denominator)
    if optimizer.momentum > 0:
        increment = new_slots["_momentums"] = optimizer.momentum * slots["_momentums"] + increment
    return variable - increment, new_slots


def _adagrad_update(optimizer, gradient, variable, slots, learning_rate, local_step):
    """Keras' Adagrad: ``a += g^2``; ``w -= lr g / sqrt(a + eps)``."""
    import tensorflow as tf

    accumulator = slots["_accumulators"] + tf.square(gradient)
    return variable - (learning_rate * gradient) / tf.sqrt(accumulator + optimizer.epsilon), \
        {"_accumulators": accumulator}


_UPDATES = {"SGD": _sgd_update, "Adam": _adam_update, "AdamW": _adam_update, "RMSprop": _rmsprop_update,
            "Adagrad": _adagrad_update}


class _PackedOptimizer:
    """The replicas' compiled optimiser applied to the stacked weights.

    ``optimizer`` (replica 0's, built here on its model's trainable weights
    ``template_variables``, whose order its slot lists follow) gives the
    formula, the settings and each slot's initial value; every replica gets
    its own copy of every slot and its own step counter ``steps[k]``.
    Keras' order within an update is kept: clip the gradient (per replica),
    decay the weight, then the optimiser's step.
    """

    def __init__(self, optimizer, template_variables: list, stacked_variables: list, n_replicas: int):
        import tensorflow as tf

        if not optimizer.built:
            optimizer.build(template_variables)
        self.optimizer = optimizer
        self.update = _UPDATES[_keras_class(optimizer)]
        self.variables = stacked_variables
        self.slot_names = _OPTIMIZER_SLOTS[_keras_class(optimizer)](optimizer)
        self.slots = {name: [tf.Variable(np.repeat(np.asarray(slot.value)[None], n_replicas, axis=0), trainable=False)
                             for slot in getattr(optimizer, name)]
                      for name in self.slot_names}
        self.steps = tf.Variable(np.zeros(n_replicas, np.int64), trainable=False)
        self.learning_rate = float(optimizer.learning_rate.numpy())
        self.n_replicas = n_replicas

    def _clip(self, gradient):
        import tensorflow as tf

        optimizer = self.optimizer
        if optimizer.clipnorm and optimizer.clipnorm > 0:
            return tf.clip_by_norm(gradient, optimizer.clipnorm, axes=list(range(1, len(gradient.shape))))
        if optimizer.clipvalue and optimizer.clipvalue > 0:
            return tf.clip_by_value(gradient, -optimizer.clipvalue, optimizer.clipvalue)
        return gradient

    def apply(self, gradients, active=None) -> None:
        """One step of every replica (``active``: (K,) bool, the replicas that step; the rest keep their state)."""
        import tensorflow as tf

        optimizer, learning_rate = self.optimizer, tf.constant(self.learning_rate, _FLOAT)
        for i, (gradient, variable) in enumerate(zip(gradients, self.variables)):
            rank = len(variable.shape)
            local_step = tf.reshape(tf.cast(self.steps + 1, _FLOAT), _replica_shape(rank, self.n_replicas))
            value = tf.convert_to_tensor(variable)
            if optimizer.weight_decay is not None:
                value = value - value * np.float32(optimizer.weight_decay) * learning_rate
            slots = {name: self.slots[name][i] for name in self.slot_names}
            new_value, new_slots = self.update(optimizer, self._clip(tf.convert_to_tensor(gradient)), value,
                                               {name: tf.convert_to_tensor(slot) for name, slot in slots.items()},
                                               learning_rate, local_step)
            keep = None if active is None else tf.reshape(active, _replica_shape(rank, self.n_replicas))
            _assign(variable, new_value, keep)
            for name, slot_value in new_slots.items():
                _assign(slots[name], slot_value, keep)
        self.steps.assign_add(tf.ones_like(self.steps) if active is None else tf.cast(active, tf.int64))

    def export(self, k: int, optimizer, trainable_variables: list) -> None:
        """Set ``optimizer``, of a model of the recipe with ``trainable_variables``, to replica k's state."""
        if not optimizer.built:
            optimizer.build(trainable_variables)
        optimizer.iterations.assign(self.steps[k])
        for name in self.slot_names:
            for target, slot in zip(getattr(optimizer, name), self.slots[name], strict=True):
                target.assign(slot[k])


def _assign(variable, value, keep) -> None:
    """``variable = value`` where ``keep`` (one flag per replica, broadcast) is True or None; elsewhere unchanged."""
    import tensorflow as tf

    variable.assign(value if keep is None else tf.where(keep, value, variable))


# ----------------------------------------------------------------------------------------------
# Batches: replica k's steps are those fit_model(..., seed=seeds[k]) would take
# ----------------------------------------------------------------------------------------------

class _ReplicaSteps:
    """Replica k's training steps, as ``fit_model(..., seed=seed)`` takes them, padded to a common width.

    Step s is batch ``s % per_epoch`` of epoch ``s // per_epoch``: the next
    ``batch_size`` members in :func:`~tfmia._shuffled_batches.epoch_order`
    (the last batch of an epoch may be short).  A batch is padded to
    ``width`` with its first row at weight 0.  After its last step the
    replica idles on rows of its own at weight 1 (so that nothing it computes
    divides by zero) and is marked inactive: its update is masked.
    """

    def __init__(self, members: np.ndarray, seed: int, fit: FitConfig, width: int):
        self.members, self.seed, self.fit, self.width = members, seed, fit, width
        self.per_epoch = math.ceil(members.size / fit.batch_size)
        self.total = fit.epochs * self.per_epoch
        self._epoch = (None, None)

    def _block(self, epoch: int):
        """(rows, weights), each (per_epoch, width): the padded batches of ``epoch``."""
        from ._shuffled_batches import epoch_order

        if self._epoch[0] != epoch:
            n, batch = self.members.size, self.fit.batch_size
            order = epoch_order(self.seed, epoch, n) if self.fit.shuffle else np.arange(n)
            rows = np.zeros((self.per_epoch, self.width), np.int64)
            weights = np.zeros((self.per_epoch, self.width), np.float32)
            position = np.arange(n)
            rows[position // batch, position % batch] = self.members[order]
            weights[position // batch, position % batch] = 1.0
            rows = np.where(weights > 0, rows, rows[:, :1])
            self._epoch = (epoch, (rows, weights))
        return self._epoch[1]

    def steps(self, start: int, stop: int):
        """(rows (S, width), weights (S, width)) of steps ``start`` to ``stop``."""
        rows = np.empty((stop - start, self.width), np.int64)
        weights = np.ones((stop - start, self.width), np.float32)
        rows[max(0, self.total - start):] = np.resize(self.members, self.width)  # idle steps
        epochs, batches = np.divmod(np.arange(start, min(stop, self.total)), self.per_epoch)
        for epoch in np.unique(epochs):
            chosen = np.flatnonzero(epochs == epoch)
            block_rows, block_weights = self._block(int(epoch))
            rows[chosen], weights[chosen] = block_rows[batches[chosen]], block_weights[batches[chosen]]
        return rows, weights


def _pack_steps(members: list, seeds: list, fit: FitConfig, chunk: int = 64):
    """Yield ``(rows (S, K, B) int64, weights (S, K, B) float32, active (K,) bool)`` for S pack steps at a time.

    Pack step s is step s of every replica (:class:`_ReplicaSteps`); the
    pack runs until its longest replica is done.  Chunks end where a
    replica takes its last step, so the replicas active in a chunk are
    active throughout it.
    """
    width = min(fit.batch_size, max(m.size for m in members))
    replicas = [_ReplicaSteps(m, s, fit, width) for m, s in zip(members, seeds)]
    ends = sorted({r.total for r in replicas})
    start = 0
    while start < ends[-1]:
        stop = min(start + chunk, next(end for end in ends if end > start))
        parts = [r.steps(start, stop) for r in replicas]
        active = np.array([start < r.total for r in replicas])
        yield (np.stack([rows for rows, _ in parts], axis=1), np.stack([weights for _, weights in parts], axis=1),
               active)
        start = stop


def _check_members(members, n_replicas: int, n_records: int) -> list[np.ndarray]:
    if len(members) != n_replicas:
        raise ValueError(f"members must give the records of each of the {n_replicas} replicas, got {len(members)}")
    checked = []
    for k, rows in enumerate(members):
        rows = np.asarray(rows)
        if rows.ndim != 1 or rows.size == 0 or not np.issubdtype(rows.dtype, np.integer):
            raise ValueError(f"members[{k}] must be a non-empty 1-D array of record indices, got {rows.dtype} "
                             f"{rows.shape}")
        if rows.min() < 0 or rows.max() >= n_records:
            raise ValueError(f"members[{k}] must index the {n_records} records, found {rows.min()}..{rows.max()}")
        checked.append(rows.astype(np.int64))
    return checked


# ----------------------------------------------------------------------------------------------
# The packed model
# ----------------------------------------------------------------------------------------------

def _packed_model_class():
    import keras
    import tensorflow as tf

    layer_classes = _packed_layer_classes()

    class PackedModel(keras.Model):
        """K replicas of one compiled Keras model as one Keras model (see the module docstring).

        Build it with :meth:`from_model_fn` (or from replicas already built
        alike); train with :meth:`fit_members`; read outputs with
        :meth:`predict_members` (or call it on a ``(K, B, ...)`` stack of
        inputs, in inference mode); copy replica k into a model of the recipe
        with :meth:`export_replica`.
        """

        def __init__(self, replicas: list, *, seeds=None):
            super().__init__(name="packed")
            if len(replicas) < 1:
                raise ValueError("a pack needs at least one replica")
            check_packable(replicas[0])
            _check_same_architecture(replicas)
            self._recipe = _Untracked(replicas[0])
            self.n_replicas = len(replicas)
            self.seeds = None if seeds is None else [int(s) for s in seeds]
            per_replica_layers = [_model_layers(model) for model in replicas]
            self.packed_layers = [layer_classes[_keras_class(layers[0])](layers[0], list(layers))
                                  for layers in zip(*per_replica_layers)]
            stacked = {id(v): packed for layer, template in zip(self.packed_layers, per_replica_layers[0])
                       for packed, v in layer.pairs(template)}
            template_variables = list(replicas[0].trainable_variables)
            self._trainable_pairs = _Untracked([(stacked[id(v)], v) for v in template_variables])
            self._loss = _Untracked(_resolve_loss(replicas[0]))
            self._optimizer = _Untracked(_PackedOptimizer(replicas[0].optimizer, template_variables,
                                                          [packed.value for packed, _ in self._trainable_pairs.value],
                                                          self.n_replicas))
            self._input_dtype = replicas[0].inputs[0].dtype
            self._packed_steps = {masked: tf.function(functools.partial(self._train_steps, masked=masked),
                                                      reduce_retracing=True, autograph=False)
                                  for masked in (False, True)}
            self._packed_infer = tf.function(self._infer, reduce_retracing=True, autograph=False)

        @classmethod
        def from_model_fn(cls, model_fn, seeds) -> "PackedModel":
            """Replica k built as ``build_model(model_fn, seed=seeds[k])``, packed."""
            seeds = [int(s) for s in seeds]
            if not seeds:
                raise ValueError("seeds must name at least one replica")
            first = build_model(model_fn, seed=seeds[0])
            check_packable(first)
            return cls([first] + [build_model(model_fn, seed=s) for s in seeds[1:]], seeds=seeds)

        @property
        def recipe(self):
            """Replica 0's Keras model: the recipe's architecture (``export_replica`` may overwrite its state)."""
            return self._recipe.value

        @property
        def steps(self) -> np.ndarray:
            """Training steps each replica has taken."""
            return self._optimizer.value.steps.numpy()

        # -- forward -------------------------------------------------------------------------
        def _forward(self, x, context, *, logits: bool = False):
            h = _Batches(stacked=x)
            last = len(self.packed_layers) - 1
            for i, layer in enumerate(self.packed_layers):
                h = layer.forward(h, context, last=i == last, logits=logits)
            return h.stacked()

        def call(self, inputs, training=False):
            """Inference-mode outputs ``(K, B, ...)`` of a ``(K, B, ...)`` stack of inputs (train with fit_members)."""
            if training:
                raise ValueError("PackedModel trains through fit_members, not by calling it with training=True")
            return self._forward(tf.cast(inputs, self._input_dtype), None)

        def _infer(self, pool, rows, logits: bool):
            return self._forward(tf.gather(pool, rows), None, logits=logits)

        # -- training ------------------------------------------------------------------------
        def _train_steps(self, pool_x, pool_y, rows, weights, active, *, masked: bool):
            """The steps of a chunk, in a loop in the graph (one call per chunk, not per step)."""
            def body(step):
                self._train_step(pool_x, pool_y, rows[step], weights[step], active if masked else None)
                return step + 1

            # One iteration at a time: each step reads the weights the step before wrote.
            tf.while_loop(lambda step: step < tf.shape(rows)[0], body, [tf.constant(0)], parallel_iterations=1)

        def _train_step(self, pool_x, pool_y, rows, weights, active=None):
            optimizer = self._optimizer.value
            context = _StepContext(rows=weights, steps=tf.convert_to_tensor(optimizer.steps), updates=[])
            loss = self._loss.value
            with tf.GradientTape() as tape:
                outputs = self._forward(tf.gather(pool_x, rows), context)
                y_true = keras.ops.convert_to_tensor(tf.gather(pool_y, rows), dtype=loss.dtype)
                per_record = loss.call(y_true, keras.ops.convert_to_tensor(outputs, dtype=loss.dtype))
                per_replica = tf.reduce_sum(per_record * weights, axis=1)
                if loss.reduction in _MEAN_REDUCTIONS:
                    per_replica = per_replica / tf.reduce_sum(weights, axis=1)
                total = tf.reduce_sum(per_replica)
                for packed, variable in self._trainable_pairs.value:
                    if variable.regularizer is not None:
                        total = total + variable.regularizer(packed.value)
            gradients = tape.gradient(total, [packed.value for packed, _ in self._trainable_pairs.value])
            optimizer.apply(gradients, active)
            for variable, value in context.updates:
                keep = None if active is None else tf.reshape(active, _replica_shape(len(variable.shape),
                                                                                      self.n_replicas))
                _assign(variable.value, value, keep)

        def fit_members(self, x, y, members, fit: FitConfig, *, seeds=None, progress: bool = False) -> None:
            """Train replica k on records ``members[k]`` of ``(x, y)`` as ``fit_model(..., fit, seed=seeds[k])`` would.

            ``seeds`` default to those the pack was built with.  Fitting again
            continues training, with each epoch's order starting over at epoch 0.
            ``progress``: a progress bar over the pack's steps.
            """
            seeds = self.seeds if seeds is None else [int(s) for s in seeds]
            if seeds is None or len(seeds) != self.n_replicas:
                raise ValueError(f"seeds must give the shuffling seed of each of the {self.n_replicas} replicas")
            if not isinstance(fit, FitConfig):
                raise ValueError(f"fit must be a FitConfig, got {type(fit).__name__}")
            if fit.fit_kwargs:
                raise NotPackable(f"fit_kwargs {sorted(fit.fit_kwargs)} are not packed "
                                  "(only epochs, batch_size and shuffle)")
            x, y = np.asarray(x), np.asarray(y)
            if x.shape[0] != y.shape[0]:
                raise ValueError(f"x has {x.shape[0]} records but y has {y.shape[0]}")
            members = _check_members(members, self.n_replicas, x.shape[0])
            pool_x = tf.constant(x, dtype=self._input_dtype)
            pool_y = tf.constant(y)
            total = fit.epochs * max(math.ceil(m.size / fit.batch_size) for m in members)
            bar = keras.utils.Progbar(total, unit_name="pack step") if progress else None
            for rows, weights, active in _pack_steps(members, seeds, fit):
                self._packed_steps[not active.all()](pool_x, pool_y, rows, weights, active)
                if bar is not None:
                    bar.add(rows.shape[0])

        # -- outputs -------------------------------------------------------------------------
        def predict_members(self, x, indices, *, batch_size: int = 512, logits: bool = False) -> list[np.ndarray]:
            """Replica k's inference-mode outputs on records ``indices[k]`` of ``x``, for every k.

            ``logits=True``: the scores before a final softmax, as
            :func:`tfmia.features.predictions.predict` reads them.
            """
            from .features.predictions import _final_activation, _output_layer

            check_positive_int(batch_size, "batch_size")
            if logits and _final_activation(_output_layer(self.recipe)) not in ("softmax", "linear", "log_softmax"):
                raise ValueError("logits=True reads the scores before a final softmax, but the model ends in "
                                 f"activation {_final_activation(_output_layer(self.recipe))!r}")
            skip_softmax = logits and _final_activation(_output_layer(self.recipe)) == "softmax"
            x = np.asarray(x)
            indices = _check_members(indices, self.n_replicas, x.shape[0])
            pool = tf.constant(x, dtype=self._input_dtype)
            longest = max(rows.size for rows in indices)
            chunks = [[] for _ in indices]
            for start in range(0, longest, batch_size):
                width = min(batch_size, longest - start)
                rows = np.stack([np.resize(r[start:start + width], width) if r.size > start else
                                 np.resize(r, width) for r in indices])
                out = self._packed_infer(pool, rows, skip_softmax).numpy()
                for k, r in enumerate(indices):
                    chunks[k].append(out[k, :max(0, min(width, r.size - start))])
            return [np.concatenate(parts) for parts in chunks]

        # -- single replicas -----------------------------------------------------------------
        def export_replica(self, k: int, model) -> None:
            """Set ``model`` (a compiled model of the recipe, e.g. :attr:`recipe`) to replica k.

            Its weights, its optimiser's state (step count and slots, built
            if need be) and its Dropout seed generators become what replica
            k's own ``fit_model`` would have left; ``save_weights`` then
            writes the file a sequential fit would.
            """
            if not 0 <= k < self.n_replicas:
                raise ValueError(f"k must be in [0, {self.n_replicas}), got {k}")
            _check_same_architecture([self.recipe, model])
            steps = int(self.steps[k])
            for layer, replica_layer in zip(self.packed_layers, _model_layers(model)):
                layer.export(k, replica_layer, steps)
            self._optimizer.value.export(k, model.optimizer, list(model.trainable_variables))

    return PackedModel


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
    ``members[k]`` of ``(x, y)`` (module docstring).  Returns per replica
    ``{"outputs", "is_logits", "weights"}`` (``weights``: the bytes of its
    ``.weights.h5`` file), what :func:`tfmia.shadow_training.train_shadow_models`
    stores for each model.  ``progress``: a progress bar over the training steps.
    """
    from .features.predictions import outputs_are_logits
    from .training import weights_bytes

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
