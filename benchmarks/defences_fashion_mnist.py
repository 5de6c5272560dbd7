"""Attacks against training-time defences on Fashion-MNIST: the table of docs/defenses.md.

    python benchmarks/defences_fashion_mnist.py [--split-size 1000] [--epochs 30]
        [--lira-models 8] [--distill-epochs 10] [--attack-epochs 50] [--seed 0] [--quick]

Setting (scaled to two CPU cores):

* Fashion-MNIST split, balanced per class, into target train (members) /
  target test (non-members) / the defender's reference set (adversarial
  regularisation's D', MixupMMD's validation set, and the test set on which
  early stopping matches accuracy) / attacker shadow train / shadow test /
  the attacker's own reference set (for adaptive shadow models of the two
  defences that need one), ``--split-size`` records each, and a distillation
  set of ``2 * --split-size`` for SeqMIA.
* Target: an MLP (784-128-10, ReLU, softmax; Adam 1e-3, batch 50) trained for
  ``--epochs`` epochs, under each defence: none; L2 (1e-3 on the kernels);
  DP-SGD with C = 1 and sigma in {0.5, 1, 2} (epsilon at delta = 1e-5 from the
  RDP accountant); adversarial regularisation (lambda = 2, k = 5); MixupMMD
  (alpha = 1, weight 3, bandwidth 1); and the undefended model stopped at the
  epoch whose accuracy on the defender's reference set is closest to each
  defended model's (one row per distinct epoch before the last; its snapshot
  comes from the undefended run, so it has no training time of its own).
* Every attack is adaptive: its shadow/reference models train with the same
  defence (``tfmia.defenses.defended``) or, for early stopping, the same
  recipe stopped at the same epoch.  Attacks: metric attacks (confidence,
  entropy, modified entropy; class-dependent thresholds) and the
  single-shadow attack of Salem et al. (one global MLP attack model), all
  calibrated on one shadow model; LiRA (online, global variance,
  ``--lira-models`` reference models on random halves of target train + test);
  SeqMIA (``--distill-epochs`` distillation epochs, ``--attack-epochs`` attack
  model epochs, else the paper's recipe).

Columns: target test accuracy and train-test gap, epsilon (DP-SGD), seconds
to train the target and the shared shadow model, and per attack TPR at 0.1 %
and 1 % FPR, balanced accuracy at the attack's own threshold, AUC and the
attack's own seconds (LiRA's include its reference models, SeqMIA's its shadow
model and distillations).  Prints the Markdown table and writes every report
to benchmarks/results/defences_fashion_mnist.json.  ``--quick`` runs a
smoke-test setting (tiny splits, 2 epochs).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import sys
import time
from pathlib import Path

import keras
import numpy as np

from _harness import write_results
from tfmia.attack_models import AttackTraining
from tfmia.attacks import LiRA, MetricAttack, SeqMIA, ShadowModelAttack
from tfmia.data import AttackInputs
from tfmia.datasets import load_fashion_mnist
from tfmia.defenses import (DPSGD, AdversarialRegularization, EarlyStoppingBaseline, MixupMMD, defended,
                            side_by_side)
from tfmia.report import AuditReport, ModelFacts
from tfmia.shadow_training import train_shadow_models
from tfmia.splits import partition
from tfmia.training import FitConfig, build_model, fit_model

HERE = Path(__file__).resolve().parent
DELTA = 1e-5
METRIC_ATTACKS = ("confidence", "entropy", "modified_entropy")


def mlp(l2: float = 0.0):
    """The target's recipe: 784-128-10 MLP, Adam 1e-3 (``l2``: kernel L2 penalty)."""
    regularizer = keras.regularizers.L2(l2) if l2 else None
    model = keras.Sequential([
        keras.Input((784,)),
        keras.layers.Dense(128, activation="relu", kernel_regularizer=regularizer),
        keras.layers.Dense(10, activation="softmax", kernel_regularizer=regularizer),
    ])
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@dataclasses.dataclass
class Row:
    """One target model: how the defender and the (adaptive) attacker build and train it."""

    label: str
    target_fn: object
    attacker_fn: object
    fit: FitConfig
    extra: dict = dataclasses.field(default_factory=dict)


def defended_rows(parts, fit: FitConfig, seed: int) -> list[Row]:
    defender_ref, attacker_ref = parts["defender_reference"], parts["attacker_reference"]
    rows = [Row("no defence", mlp, mlp, fit), Row("L2 1e-3", functools.partial(mlp, 1e-3),
                                                  functools.partial(mlp, 1e-3), fit)]
    n = parts.size("target_train")
    for sigma in (0.5, 1.0, 2.0):
        dp = DPSGD(l2_norm_clip=1.0, noise_multiplier=sigma, seed=seed)
        eps = dp.epsilon(n, batch_size=fit.batch_size, epochs=fit.epochs, delta=DELTA)
        rows.append(Row(f"DP-SGD sigma={sigma:g}", defended(mlp, dp),
                        defended(mlp, DPSGD(1.0, sigma, seed=seed + 1)), fit, {"epsilon": eps}))
    adv = dict(penalty=2.0, inference_steps=5)
    rows.append(Row("AdvReg lambda=2", defended(mlp, AdversarialRegularization(defender_ref, seed=seed, **adv)),
                    defended(mlp, AdversarialRegularization(attacker_ref, seed=seed + 1, **adv)), fit))
    rows.append(Row("MixupMMD", defended(mlp, MixupMMD(defender_ref, seed=seed)),
                    defended(mlp, MixupMMD(attacker_ref, seed=seed + 1)), fit))
    return rows


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def audit(row: Row, target, parts, pool_index, args, train_seconds: float | None) -> AuditReport:
    """Every attack, adaptive, against ``target``; the row's AuditReport."""
    members = AttackInputs.from_model(target, *parts["target_train"])
    non_members = AttackInputs.from_model(target, *parts["target_test"])
    x_shadow = np.concatenate([parts["shadow_train"][0], parts["shadow_test"][0]])
    y_shadow = np.concatenate([parts["shadow_train"][1], parts["shadow_test"][1]])
    n = parts.size("target_train")
    adaptive = None if row.label == "no defence" else True
    shadows, shadow_seconds = timed(train_shadow_models, row.attacker_fn, x_shadow, y_shadow, n_shadows=1,
                                    fit=row.fit, train_size=n, scheme="disjoint", seed=args.seed + 1000,
                                    progress=False)
    s_in, s_out = shadows.pooled_attack_inputs()
    results = []
    for metric in METRIC_ATTACKS:
        attack = MetricAttack(metric)
        attack.adaptive = adaptive
        results.append(timed(lambda: attack.fit(s_in, s_out).evaluate(members, non_members)))
    shadow_attack = ShadowModelAttack(row.attacker_fn, 1, "mlp", per_class=False, fit_config=row.fit, train_size=n,
                                      seed=args.seed, progress=False)
    shadow_attack.adaptive = adaptive
    results.append(timed(lambda: shadow_attack.fit_shadows(shadows).evaluate(members, non_members)))

    x_pool, y_pool = parts["target_train"][0], parts["target_train"][1]
    x_pool = np.concatenate([x_pool, parts["target_test"][0]])
    y_pool = np.concatenate([y_pool, parts["target_test"][1]])
    lira = LiRA(row.attacker_fn, fit=row.fit, n_models=args.lira_models, online=True, global_variance=True,
                seed=args.seed + 2000, progress=False)
    lira.adaptive = adaptive
    results.append(timed(lambda: lira.fit(x_pool, y_pool).evaluate(
        members, non_members, member_indices=pool_index["members"], non_member_indices=pool_index["non_members"])))

    seqmia = SeqMIA(row.attacker_fn, fit=row.fit, distill_epochs=args.distill_epochs,
                    training=AttackTraining(epochs=args.attack_epochs), seed=args.seed + 3000, progress=False)
    seqmia.adaptive = adaptive
    results.append(timed(lambda: seqmia.fit(x_shadow, y_shadow, parts["distill"][0]).evaluate(
        (target, *parts["target_train"]), (target, *parts["target_test"]))))

    report = AuditReport(facts=ModelFacts.from_inputs(
        members, non_members, model_name=row.label, epoch=row.fit.epochs,
        **row.extra, **{"train s": train_seconds, "shadow s": shadow_seconds}))
    for result, seconds in results:
        result.metadata["seconds"] = seconds
        report.add(result)
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split-size", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--lira-models", type=int, default=8)
    parser.add_argument("--distill-epochs", type=int, default=10)
    parser.add_argument("--attack-epochs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="smoke test: 200 records per split, 2 epochs")
    parser.add_argument("--out", default=str(HERE / "results" / "defences_fashion_mnist.json"))
    args = parser.parse_args(argv)
    if args.quick:
        args.split_size, args.epochs, args.lira_models, args.distill_epochs, args.attack_epochs = 200, 2, 2, 2, 2

    data = load_fashion_mnist(allow_download=False)
    x = data.x.reshape(len(data), -1)
    n = args.split_size
    names = ("target_train", "target_test", "defender_reference", "shadow_train", "shadow_test",
             "attacker_reference")
    parts = partition(x, data.y, {**{k: n for k in names}, "distill": 2 * n}, seed=args.seed)
    pool_index = {"members": np.arange(n), "non_members": np.arange(n, 2 * n)}  # LiRA's pool: train then test
    fit = FitConfig(epochs=args.epochs, batch_size=50)
    started = time.perf_counter()

    reports: dict[str, AuditReport] = {}
    accuracies: dict[str, float] = {}
    baseline = None
    for row in defended_rows(parts, fit, args.seed):
        if row.label == "no defence":  # the undefended run keeps its per-epoch snapshots for early stopping
            baseline, seconds = timed(EarlyStoppingBaseline.train, mlp, *parts["target_train"],
                                      *parts["defender_reference"], fit, seed=args.seed)
            target = baseline.model(fit.epochs)
        else:
            target = build_model(row.target_fn, seed=args.seed)
            _, seconds = timed(fit_model, target, *parts["target_train"], fit)
        accuracies[row.label] = baseline.accuracy(target)
        reports[row.label] = audit(row, target, parts, pool_index, args, seconds)
        print(f"{row.label}: done after {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)

    matched: dict[int, list[str]] = {}
    for label, accuracy in accuracies.items():
        epoch = baseline.match(accuracy).epoch
        if label != "no defence" and epoch < fit.epochs:  # the last epoch is the undefended row itself
            matched.setdefault(epoch, []).append(label)
    for epoch, labels in sorted(matched.items()):
        row = Row(f"early stop @ epoch {epoch} (matches {', '.join(labels)})", mlp, mlp, baseline.fit_config(epoch))
        reports[row.label] = audit(row, baseline.model(epoch), parts, pool_index, args, None)
        print(f"{row.label}: done after {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)

    total = time.perf_counter() - started
    print(f"\nFashion-MNIST, {n} records per split, MLP 784-128-10, {args.epochs} epochs, batch 50, seed {args.seed}; "
          f"total {total / 60:.1f} min\n")
    print(side_by_side(reports, markdown=True))
    write_results(args.out, {"settings": vars(args), "total_seconds": total,
                             "reference_accuracies": accuracies,
                             "reports": {k: r.to_dict() for k, r in reports.items()}})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
