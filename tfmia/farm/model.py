"""The packed model: K replicas of one compiled Keras model as one ``keras.Model``."""

from __future__ import annotations

import functools
import math

import numpy as np

from .._validate import check_positive_int
from ..training import FitConfig, build_model
from .layers import _packed_layer_classes, _StepContext, _Untracked
from .optimizers import _PackedOptimizer
from .packability import (_MEAN_REDUCTIONS, NotPackable, _check_same_architecture, _keras_class, _model_layers,
                          _resolve_loss, check_packable)
from .schedule import _check_members, _pack_steps
from .tensors import _assign, _Batches, _replica_shape


def _packed_model_class():
    import keras
    import tensorflow as tf

    layer_classes = _packed_layer_classes()

    class PackedModel(keras.Model):
        """K replicas of one compiled Keras model as one Keras model (see :mod:`tfmia.farm`).

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
            from ..features.predictions import _final_activation, _output_layer

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
            if model is not self.recipe:  # the recipe is replica 0 as built: its architecture is the pack's
                _check_same_architecture([self.recipe, model])
            steps = int(self.steps[k])
            for layer, replica_layer in zip(self.packed_layers, _model_layers(model)):
                layer.export(k, replica_layer, steps)
            self._optimizer.value.export(k, model.optimizer, list(model.trainable_variables))

    return PackedModel
