"""What can be packed: the supported layers, losses and optimisers, and why a model cannot be packed.

:func:`packing_obstacle` names the first obstacle (None if there is none),
:func:`check_packable` raises :class:`NotPackable` with it, and
:func:`_check_same_architecture` refuses replicas that do not follow one
recipe.
"""

from __future__ import annotations

from ..training import FitConfig

_FLOAT = "float32"


class NotPackable(ValueError):
    """A model cannot be packed faithfully; the message says why."""


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
