"""``tfmia demo``: the first end-to-end audit, offline, in a few minutes on a laptop.

1. Split a dataset (digits by default, or Fashion-MNIST) into disjoint,
   class-balanced target train/test and shadow train/test sets.
2. Train a small Keras target long enough to overfit, and one shadow model
   with the same recipe on the attacker's data (Song & Mittal's setting).
3. Run the correctness, loss, confidence, entropy and modified-entropy
   attacks (class-dependent and global thresholds) and the privacy risk score,
   calibrated on the shadow model, against the target's members (its
   training set) and non-members (its test set).
4. Write the AuditReport as JSON and HTML and print its summary.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from pathlib import Path

import numpy as np

from .attacks import METRICS, MetricAttack, PrivacyRiskScore
from .data import AttackInputs
from .datasets import load_digits, load_fashion_mnist
from .report import AuditReport, ModelFacts
from .shadow_training import train_shadow_models
from .splits import partition
from .training import FitConfig, build_model, fit_model

__all__ = ["DemoSettings", "run_demo", "mlp_model", "cnn_model"]


@dataclasses.dataclass(frozen=True)
class DemoSettings:
    """Sizes and recipe of the demo (defaults: digits, under a minute on 2 cores).

    Digits is easy to generalise on; 150 training records and 100 epochs give
    the target a generalisation gap of several points, i.e. something to find.
    """

    dataset: str = "digits"
    split_size: int = 150
    epochs: int = 100
    batch_size: int = 32
    seed: int = 0

    @classmethod
    def for_dataset(cls, dataset: str, **overrides) -> "DemoSettings":
        if dataset == "digits":
            return cls(dataset="digits", **overrides)
        if dataset == "fashion-mnist":
            base = {"split_size": 2500, "epochs": 25, "batch_size": 64}
            return cls(dataset="fashion-mnist", **{**base, **overrides})
        raise ValueError(f"dataset must be 'digits' or 'fashion-mnist', got {dataset!r}")


def mlp_model(input_dim: int, num_classes: int, hidden: int = 256, learning_rate: float = 1e-3):
    """A one-hidden-layer MLP with softmax output (overfits digits quickly)."""
    import keras

    model = keras.Sequential([
        keras.Input((input_dim,)),
        keras.layers.Dense(hidden, activation="relu"),
        keras.layers.Dense(num_classes, activation="softmax"),
    ])
    model.compile(keras.optimizers.Adam(learning_rate), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def cnn_model(input_shape: tuple, num_classes: int, learning_rate: float = 1e-3):
    """A small CNN with softmax output for 28x28 grey images."""
    import keras

    model = keras.Sequential([
        keras.Input(input_shape),
        keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(64, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(num_classes, activation="softmax"),
    ])
    model.compile(keras.optimizers.Adam(learning_rate), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _model_fn(settings: DemoSettings, dataset):
    if settings.dataset == "digits":
        return functools.partial(mlp_model, dataset.x.shape[1], dataset.num_classes)
    return functools.partial(cnn_model, dataset.x.shape[1:], dataset.num_classes)


def run_demo(settings: DemoSettings = DemoSettings(), out_dir="tfmia-report", *, verbose: int = 1, log=print) -> AuditReport:
    """Run the demo audit and write ``report.json`` and ``report.html`` to ``out_dir``."""
    started = time.perf_counter()
    dataset = load_digits() if settings.dataset == "digits" else load_fashion_mnist()
    n = settings.split_size
    parts = partition(dataset.x, dataset.y, {"target_train": n, "target_test": n, "shadow_train": n, "shadow_test": n},
                      seed=settings.seed)
    model_fn = _model_fn(settings, dataset)
    recipe = FitConfig(epochs=settings.epochs, batch_size=settings.batch_size)
    log(f"[tfmia demo] {dataset.name}: {n} members, {n} non-members, {2 * n} attacker records; "
        f"{settings.epochs} epochs")

    log("[tfmia demo] training the target model")
    target = build_model(model_fn, seed=settings.seed)
    fit_model(target, *parts["target_train"], recipe, seed=settings.seed, verbose=0)
    members = AttackInputs.from_model(target, *parts["target_train"])
    non_members = AttackInputs.from_model(target, *parts["target_test"])

    log("[tfmia demo] training the shadow model")
    attacker_idx = np.concatenate([parts.indices["shadow_train"], parts.indices["shadow_test"]])
    shadows = train_shadow_models(model_fn, dataset.x[attacker_idx], dataset.y[attacker_idx], n_shadows=1, fit=recipe,
                                  train_size=n, seed=settings.seed + 1, progress=bool(verbose))
    shadow_in, shadow_out = shadows.pooled_attack_inputs()

    log("[tfmia demo] running the attacks")
    facts = ModelFacts.from_inputs(members, non_members, model_name=f"{dataset.name} {target.name}",
                                   epoch=settings.epochs, dataset=dataset.name, seed=settings.seed)
    report = AuditReport(facts=facts, title=f"tfmia demo: membership inference on {dataset.name}")
    for metric in METRICS:
        for class_dependent in ((False,) if metric == "correctness" else (True, False)):
            attack = MetricAttack(metric, class_dependent=class_dependent).fit(shadow_in, shadow_out)
            report.add(attack.evaluate(members, non_members))
    risk = PrivacyRiskScore().fit(shadow_in, shadow_out)
    report.add(risk.evaluate(members, non_members))
    calibration = risk.calibration(members, non_members)
    report.notes.append(f"privacy risk score calibration RMSE {calibration['rmse']:.4f} "
                        f"(count-weighted {calibration['weighted_rmse']:.4f}) over {len(calibration['bins'])} score bins")
    report.notes.append(f"attacks calibrated on one shadow model trained on {n} attacker records")

    out = Path(out_dir)
    report.to_json(out / "report.json")
    report.to_html(out / "report.html")
    log("")
    log(report.summary())
    log(f"\n[tfmia demo] wrote {out / 'report.json'} and {out / 'report.html'} "
        f"in {time.perf_counter() - started:.0f} s")
    return report
