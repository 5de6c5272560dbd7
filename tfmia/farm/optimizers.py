"""Optimisers: Keras' update formulas on the stacked weights, one step counter per replica."""

from __future__ import annotations

import numpy as np

from .packability import _FLOAT, _OPTIMIZER_SLOTS, _keras_class
from .tensors import _assign, _replica_shape


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
