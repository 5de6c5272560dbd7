"""The packed layers: each holds the K replicas' weights of one Keras layer stacked, and runs them together."""

from __future__ import annotations

import dataclasses

import numpy as np

from .packability import _CONVOLUTIONS, _FLOAT, _WEIGHTLESS, NotPackable
from .tensors import _Batches, _replica_shape


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
