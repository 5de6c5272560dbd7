"""MixupMMD (Li, Li & Ribeiro, CODASPY 2021, "Membership Inference Attacks and Defenses in
Classification Models", section 5): mixup training plus an MMD penalty that pulls the
distribution of the model's outputs on training records towards that on validation records.

Every training step on a batch ``(x, y)`` of ``b`` records:

* mixup (Zhang et al. 2018): ``lam ~ Beta(alpha, alpha)`` once per batch, a random
  permutation ``pi`` of the batch, ``x~ = lam x + (1 - lam) x[pi]`` and the mixup loss
  ``lam L(y, f(x~)) + (1 - lam) L(y[pi], f(x~))`` with the compiled loss ``L``;
* a class-matched validation batch: for each training record, one validation record of
  the same class drawn uniformly (with replacement);
* the penalty ``MMD^2(softmax f(x), stop_gradient(softmax f(x_val)))``, the biased
  (V-statistic) estimator with the Gaussian kernel sum
  ``k(a, b) = sum_s exp(-||a - b||^2 / (2 s^2))`` over the bandwidths ``s`` (:func:`mmd2`);

and one optimizer step on ``mixup loss + mmd_weight * penalty``.  Both forward passes
run in training mode and the validation outputs are a constant (no gradient), as in
the authors' code.  The randomness of each step (``lam``, ``pi``, the validation draw)
is seeded.

Defaults follow the authors' code (``alpha = 1``, penalty weight 3, one bandwidth of 1).
Differences: the authors alternate a mixup epoch with an MMD epoch and skip the MMD
epoch while train and validation accuracy differ by less than 3 points; here both
terms enter every step's loss, always.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from .._validate import check_positive_int, check_positive_number
from ..runs import fingerprint_arrays
from ._training import DefenceModel, class_indices, labelled_records, probabilities, rebuild, step_seed
from .adaptive import TrainingDefense

__all__ = ["MixupMMD", "MixupMMDModel", "mmd2"]


def mmd2(x, y, bandwidths=(1.0,)):
    """Biased squared maximum mean discrepancy between samples ``x`` (n x d) and ``y`` (m x d).

    ``MMD^2 = mean_ij k(x_i, x_j) + mean_ij k(y_i, y_j) - 2 mean_ij k(x_i, y_j)`` with
    ``k(a, b) = sum_s exp(-||a - b||^2 / (2 s^2))`` (Gretton et al. 2012, eq. 5).
    """
    x = tf.convert_to_tensor(x)
    y = tf.cast(tf.convert_to_tensor(y), x.dtype)

    def kernel_mean(a, b):
        sq = tf.reduce_sum(a * a, 1)[:, None] + tf.reduce_sum(b * b, 1)[None, :]
        sq = tf.maximum(sq - 2.0 * tf.matmul(a, b, transpose_b=True), 0.0)  # ||a_i - b_j||^2, rounding-safe
        return tf.add_n([tf.reduce_mean(tf.exp(-sq / (2.0 * s * s))) for s in bandwidths])

    return kernel_mean(x, x) + kernel_mean(y, y) - 2.0 * kernel_mean(x, y)


class MixupMMD(TrainingDefense):
    """Mixup training with an MMD penalty towards validation outputs (module docstring).

    Args:
        validation: ``(x, y)`` records from the training distribution that are not training members,
            with every class of the model present.
        alpha: alpha > 0 of the mixup coefficient's Beta(alpha, alpha) distribution.
        mmd_weight: weight > 0 of the MMD penalty.
        bandwidths: Gaussian kernel bandwidths s > 0 (the kernel sums over them).
        seed: seeds the mixup coefficients, permutations and validation draws.
    """

    def __init__(self, validation, *, alpha: float = 1.0, mmd_weight: float = 3.0, bandwidths=(1.0,), seed: int = 0):
        self.x_validation, self.y_validation = labelled_records(validation, "validation")
        self.alpha = check_positive_number(alpha, "alpha")
        self.mmd_weight = check_positive_number(mmd_weight, "mmd_weight")
        self.bandwidths = tuple(check_positive_number(s, "bandwidths") for s in bandwidths)
        if not self.bandwidths:
            raise ValueError("bandwidths must hold at least one bandwidth")
        self.seed = check_positive_int(seed, "seed", minimum=0)

    def config(self) -> dict:
        return {
            "alpha": self.alpha,
            "mmd_weight": self.mmd_weight,
            "bandwidths": list(self.bandwidths),
            "seed": self.seed,
            "validation": f"{len(self.y_validation)} records, "
                          f"sha256 {fingerprint_arrays(self.x_validation, self.y_validation)[:12]}",
        }

    def apply(self, model):
        return rebuild(model, MixupMMDModel, single_input=True, defense=self)


class _Validation:
    """The validation records sorted by class, with each class's start and count (not tracked by Keras)."""

    def __init__(self, defense: MixupMMD, num_classes: int):
        counts = np.bincount(defense.y_validation, minlength=num_classes)
        if counts.size > num_classes or (counts == 0).any():
            raise ValueError(
                f"validation must hold records of every one of the model's {num_classes} classes; "
                f"counts per class: {counts.tolist()}"
            )
        order = np.argsort(defense.y_validation, kind="stable")
        self.x = tf.constant(defense.x_validation[order])
        self.start = tf.constant(np.concatenate([[0], np.cumsum(counts)[:-1]]), tf.int32)
        self.count = tf.constant(counts, tf.int32)

    def draw(self, labels, seed):
        """For each label, the index of a uniformly drawn validation record of that class."""
        u = tf.random.stateless_uniform(tf.shape(labels), seed)
        count = tf.gather(self.count, labels)
        offset = tf.minimum(tf.cast(u * tf.cast(count, tf.float32), tf.int32), count - 1)
        return tf.gather(self.start, labels) + offset


class MixupMMDModel(DefenceModel):
    """A functional classifier trained with MixupMMD (build it with the defence's ``apply``)."""

    def __init__(self, *args, defense: MixupMMD, **kwargs):
        super().__init__(*args, defense=defense, **kwargs)
        self._validation = _Validation(defense, self.num_classes)
        self.mmd = keras.metrics.Mean(name="mmd")

    def _mixup(self, x, y, sample_weight, seeds):
        """(mixed inputs, lam, permuted labels, permuted sample weights)."""
        alpha = tf.constant([self.defense.alpha, self.defense.alpha])
        gammas = tf.random.stateless_gamma([2], seeds[0], alpha=alpha)
        lam = gammas[0] / (gammas[0] + gammas[1])
        perm = tf.argsort(tf.random.stateless_uniform(tf.shape(x)[:1], seeds[1]))
        mixed = lam * x + (1.0 - lam) * tf.gather(x, perm)
        w_perm = None if sample_weight is None else tf.gather(sample_weight, perm)
        return mixed, lam, tf.gather(y, perm), w_perm

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if y is None:
            raise ValueError("MixupMMD training needs labels y")
        seeds = step_seed(self.defense.seed, self.optimizer.iterations, 3)
        mixed, lam, y_perm, w_perm = self._mixup(x, y, sample_weight, seeds)
        x_val = tf.gather(self._validation.x, self._validation.draw(class_indices(y, self.num_classes), seeds[2]))
        with tf.GradientTape() as tape:
            pred_mixed = self(mixed, training=True)
            loss = lam * self.compute_loss(x=mixed, y=y, y_pred=pred_mixed, sample_weight=sample_weight) + \
                (1.0 - lam) * self.compute_loss(x=mixed, y=y_perm, y_pred=pred_mixed, sample_weight=w_perm)
            y_pred = self(x, training=True)
            val_pred = tf.stop_gradient(self(x_val, training=True))
            penalty = mmd2(probabilities(y_pred, self.is_logits), probabilities(val_pred, self.is_logits),
                           self.defense.bandwidths)
            total = loss + self.defense.mmd_weight * penalty
        self.optimizer.apply(tape.gradient(total, self.trainable_variables), self.trainable_variables)
        self.mmd.update_state(penalty)
        return self.finish_step(total, x, y, y_pred, sample_weight)
