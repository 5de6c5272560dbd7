"""Adversarial regularisation (Nasr, Shokri & Houmansadr, CCS 2018, "Machine Learning with Membership
Privacy using Adversarial Regularization", section 3 and Algorithm 1).

The defender trains its classifier ``f`` against its own membership-inference
model ``h``, which tells the training set ``D`` from a reference set ``D'``
drawn from the same distribution.  With ``m`` members from ``D`` and ``m``
reference records, ``h`` maximises its gain

    G(h) = 1/(2m) [ sum_D log h(f(x), y) + sum_D' log(1 - h(f(x'), y')) ]

and ``f`` minimises its loss plus ``lambda`` times ``h``'s log-confidence on
the members

    L(f) + lambda * 1/m sum_D log h(f(x), y),

alternately: every training step (one batch of ``model.fit``) first takes
``k`` gradient steps on ``h`` -- each with the step's member batch and a
fresh batch of ``m`` reference records drawn with replacement -- then one
step on ``f`` with the compiled optimizer.  ``h`` sees what a black-box
attacker sees: the prediction vector ``f(x)`` as probabilities (inference
mode) and the one-hot label; it is an MLP on their concatenation ending in
one logit, trained with Adam on binary cross-entropy (``-G``).  Its weights,
the reference draws and its initialisation are seeded.  ``h`` is training
machinery, not part of the classifier: the defended model's weights are the
classifier's alone.

Differences from the authors' code: ``h`` concatenates its two inputs instead
of giving each its own branch, and the classifier's penalty is the paper's
``log h`` (the code uses ``h - 0.5``).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from .._validate import check_positive_int, check_positive_number
from ..runs import fingerprint_arrays
from ._training import DefenceModel, class_indices, labelled_records, log_probabilities, rebuild, step_seed
from .adaptive import TrainingDefense

__all__ = ["AdversarialRegularization", "AdversarialRegularizationModel"]


class AdversarialRegularization(TrainingDefense):
    """Min-max training against a membership-inference model (module docstring).

    Args:
        reference: ``(x, y)`` records from the training distribution that are not training members (``D'``).
        penalty: lambda > 0, the weight of the inference model's gain in the classifier's loss.
        inference_steps: k >= 1 steps of the inference model per classifier step.
        inference_hidden: widths of the inference model's hidden ReLU layers.
        inference_learning_rate: Adam learning rate of the inference model.
        seed: seeds the inference model's initialisation and the reference draws.
    """

    def __init__(self, reference, *, penalty: float = 1.0, inference_steps: int = 1,
                 inference_hidden: tuple[int, ...] = (64, 32), inference_learning_rate: float = 1e-3, seed: int = 0):
        self.x_reference, self.y_reference = labelled_records(reference, "reference")
        self.penalty = check_positive_number(penalty, "penalty")
        self.inference_steps = check_positive_int(inference_steps, "inference_steps")
        self.inference_hidden = tuple(check_positive_int(u, "inference_hidden") for u in inference_hidden)
        self.inference_learning_rate = check_positive_number(inference_learning_rate, "inference_learning_rate")
        self.seed = check_positive_int(seed, "seed", minimum=0)

    def config(self) -> dict:
        return {
            "penalty": self.penalty,
            "inference_steps": self.inference_steps,
            "inference_hidden": list(self.inference_hidden),
            "inference_learning_rate": self.inference_learning_rate,
            "seed": self.seed,
            "reference": f"{len(self.y_reference)} records, "
                         f"sha256 {fingerprint_arrays(self.x_reference, self.y_reference)[:12]}",
        }

    def apply(self, model):
        return rebuild(model, AdversarialRegularizationModel, single_input=True, defense=self)


class _Adversary:
    """The inference model, its optimizer and the reference set.

    A plain object, so that Keras does not track the inference model as part
    of the classifier (its variables stay out of ``trainable_variables`` and
    of saved weights).
    """

    def __init__(self, defense: AdversarialRegularization, num_classes: int):
        def init(i):
            return keras.initializers.GlorotUniform(seed=defense.seed + i)

        layers = [keras.Input((2 * num_classes,))]
        layers += [keras.layers.Dense(units, activation="relu", kernel_initializer=init(i))
                   for i, units in enumerate(defense.inference_hidden)]
        layers.append(keras.layers.Dense(1, kernel_initializer=init(len(defense.inference_hidden))))
        self.model = keras.Sequential(layers, name="inference_model")
        self.optimizer = keras.optimizers.Adam(defense.inference_learning_rate)
        self.optimizer.build(self.model.trainable_variables)
        self.x_reference = tf.constant(defense.x_reference)
        self.y_reference = tf.constant(defense.y_reference, tf.int32)


class AdversarialRegularizationModel(DefenceModel):
    """A functional classifier trained with adversarial regularisation (build it with the defence's ``apply``)."""

    def __init__(self, *args, defense: AdversarialRegularization, **kwargs):
        super().__init__(*args, defense=defense, **kwargs)
        self._adversary = _Adversary(defense, self.num_classes)
        self.inference_accuracy = keras.metrics.Mean(name="inference_accuracy")

    @property
    def inference_model(self):
        """The defender's membership-inference model ``h`` (outputs a logit)."""
        return self._adversary.model

    def _attack_features(self, outputs, labels):
        return tf.concat([log_probabilities(outputs, self.is_logits), tf.one_hot(labels, self.num_classes)], axis=-1)

    def _inference_step(self, members, seed):
        """One ascent step on h's gain: the given member features against a fresh reference batch."""
        adversary = self._adversary
        m = tf.shape(members)[0]
        index = tf.random.stateless_uniform([m], seed, minval=0, maxval=tf.shape(adversary.y_reference)[0],
                                            dtype=tf.int32)
        reference = self._attack_features(self(tf.gather(adversary.x_reference, index), training=False),
                                          tf.gather(adversary.y_reference, index))
        features = tf.concat([members, reference], axis=0)
        target = tf.concat([tf.ones([m, 1]), tf.zeros([m, 1])], axis=0)
        with tf.GradientTape() as tape:
            logits = adversary.model(features, training=True)
            loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=target, logits=logits))  # -G
        variables = adversary.model.trainable_variables
        adversary.optimizer.apply(tape.gradient(loss, variables), variables)
        return tf.reduce_mean(tf.cast(tf.equal(tf.cast(logits > 0, tf.float32), target), tf.float32))

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if y is None:
            raise ValueError("adversarial regularisation needs labels y")
        labels = class_indices(y, self.num_classes)
        members = tf.stop_gradient(self._attack_features(self(x, training=False), labels))
        seeds = step_seed(self.defense.seed, self.optimizer.iterations, self.defense.inference_steps)
        for j in range(self.defense.inference_steps):
            accuracy = self._inference_step(members, seeds[j])
        self.inference_accuracy.update_state(accuracy)

        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight)
            log_h = tf.math.log_sigmoid(self.inference_model(self._attack_features(y_pred, labels)))
            total = loss + self.defense.penalty * tf.reduce_mean(log_h)
        self.optimizer.apply(tape.gradient(total, self.trainable_variables), self.trainable_variables)
        return self.finish_step(total, x, y, y_pred, sample_weight)
