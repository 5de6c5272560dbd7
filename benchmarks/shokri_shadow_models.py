"""Shokri et al.'s shadow-model attack: where the attacker's data comes from, and how many shadows.

    python benchmarks/shokri_shadow_models.py                # binarised digits + Fashion-MNIST
    python benchmarks/shokri_shadow_models.py --skip-fashion # binarised digits only (about 11 minutes)
    python benchmarks/shokri_shadow_models.py --skip-digits  # Fashion-MNIST only

Part 1, binarised digits (pixels >= 0.5, 64 binary features, so the
synthesis methods apply): the target is an MLP trained to overfit; the
attacker trains k shadow models on (a) real records disjoint from the
target's, (b) records drawn from per-class marginals, (c) records synthesized
by hill climbing against the target (Algorithm 1; queries per record
reported), (d) real records with 10 % / 20 % of their features flipped.
Part 2, Fashion-MNIST with real shadow data and k in {1, 5, 10}.

Reported per row: precision, recall and FAR of the attack's own decisions
(member iff P(in) >= 0.5), AUC and TPR at 1 % FPR.  Shokri et al. report
precision 0.935 (real), 0.895 (model-based), 0.795 (marginals) on Purchase;
compare the ordering, not the values.  Writes benchmarks/results/shokri_shadow_models.json.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path

import numpy as np

from _harness import write_results
from tfmia import synthesis
from tfmia.attacks import ShadowModelAttack
from tfmia.data import AttackInputs
from tfmia.datasets import binarize, load_digits, load_fashion_mnist
from tfmia.demo import cnn_model, mlp_model
from tfmia.features.predictions import predict
from tfmia.splits import partition
from tfmia.training import FitConfig, build_model, fit_model

HERE = Path(__file__).resolve().parent
COLUMNS = ("precision_member", "recall_member", "far", "auc", "tpr_at_1%_fpr")


def _row(label, result, **extra):
    m = result.metrics()
    return {"setting": label, **{c: m[c] for c in COLUMNS}, **extra}


def _target(model_fn, parts, recipe, seed):
    target = build_model(model_fn, seed=seed)
    fit_model(target, *parts["target_train"], recipe)
    return target, AttackInputs.from_model(target, *parts["target_train"]), AttackInputs.from_model(target, *parts["target_test"])


def digits_experiment(n: int, epochs: int, shadows: int, seed: int) -> list[dict]:
    data = load_digits()
    x = binarize(data.x)
    parts = partition(x, data.y, {"target_train": n, "target_test": n, "attacker": 2 * n}, seed=seed)
    model_fn = functools.partial(mlp_model, 64, 10)
    recipe = FitConfig(epochs=epochs, batch_size=32)
    target, members, non_members = _target(model_fn, parts, recipe, seed)
    x_att, y_att = parts["attacker"]
    per_class = (2 * n) // 10

    def attack_with(x_pool, y_pool, k=shadows):
        attack = ShadowModelAttack(model_fn, n_shadows=k, fit_config=recipe, train_size=len(y_pool) // 2,
                                   attack_model="mlp", seed=seed, progress=False)
        return attack.fit(x_pool, y_pool).evaluate(members, non_members)

    rows = [_row("real data", attack_with(x_att, y_att))]
    xm, ym = synthesis.from_marginals(x_att, y_att, per_class, seed=seed)
    rows.append(_row("marginal synthesis", attack_with(xm, ym)))
    started = time.perf_counter()
    synthesized, queries, attempts = [], [], 0
    for c in range(10):
        res = synthesis.model_based(lambda b: predict(target, b), 64, c, 2 * per_class, k_max=16, k_min=1,
                                    conf_min=0.8, rej_max=10, iter_max=300, seed=seed + c)
        synthesized.append(res.x[:per_class])
        queries.append(res.queries.sum())
        attempts += res.success.sum()
    xs = np.concatenate(synthesized)
    ys = np.concatenate([np.full(s.shape[0], c) for c, s in enumerate(synthesized)])
    rows.append(_row("model-based synthesis", attack_with(xs, ys),
                     queries_per_record=float(np.sum(queries) / attempts), synthesized=int(ys.size),
                     synthesis_seconds=time.perf_counter() - started))
    for fraction in (0.1, 0.2):
        noisy = synthesis.noisy_real(x_att, fraction, seed=seed)
        rows.append(_row(f"real data, {fraction:.0%} features flipped", attack_with(noisy, y_att)))
    for k in (1, 5, 10):
        rows.append(_row(f"real data, k={k}", attack_with(x_att, y_att, k=k)))
    accuracy = {"train_accuracy": float(members.correct.mean()), "test_accuracy": float(non_members.correct.mean())}
    return [dict(r, **accuracy) for r in rows]


def fashion_experiment(n: int, epochs: int, seed: int) -> list[dict]:
    data = load_fashion_mnist(allow_download=False)
    parts = partition(data.x, data.y, {"target_train": n, "target_test": n, "attacker": 4 * n}, seed=seed)
    model_fn = functools.partial(cnn_model, data.x.shape[1:], 10)
    recipe = FitConfig(epochs=epochs, batch_size=64)
    _, members, non_members = _target(model_fn, parts, recipe, seed)
    rows = []
    for k in (1, 5, 10):
        started = time.perf_counter()
        attack = ShadowModelAttack(model_fn, n_shadows=k, fit_config=recipe, train_size=n, seed=seed, progress=False)
        result = attack.fit(*parts["attacker"]).evaluate(members, non_members)
        rows.append(_row(f"Fashion-MNIST, real data, k={k}", result, seconds=time.perf_counter() - started,
                         train_accuracy=float(members.correct.mean()), test_accuracy=float(non_members.correct.mean())))
    return rows


def _print(rows):
    print("| setting | " + " | ".join(COLUMNS) + " | queries / record |")
    print("|---|" + "---|" * (len(COLUMNS) + 1))
    for r in rows:
        q = f"{r['queries_per_record']:.0f}" if "queries_per_record" in r else "-"
        print(f"| {r['setting']} | " + " | ".join(f"{r[c]:.3f}" for c in COLUMNS) + f" | {q} |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--digits-size", type=int, default=300)
    parser.add_argument("--digits-epochs", type=int, default=60)
    parser.add_argument("--shadows", type=int, default=5)
    parser.add_argument("--fashion-size", type=int, default=1500)
    parser.add_argument("--fashion-epochs", type=int, default=20)
    parser.add_argument("--skip-fashion", action="store_true")
    parser.add_argument("--skip-digits", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(HERE / "results" / "shokri_shadow_models.json"))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    rows = []
    if not args.skip_digits:
        rows = digits_experiment(args.digits_size, args.digits_epochs, args.shadows, args.seed)
        print(f"binarised digits: target train acc {rows[0]['train_accuracy']:.3f}, "
              f"test acc {rows[0]['test_accuracy']:.3f}; {args.digits_size} records per split, "
              f"k={args.shadows} unless stated\n")
        _print(rows)
    if not args.skip_fashion:
        fashion = fashion_experiment(args.fashion_size, args.fashion_epochs, args.seed)
        print(f"\nFashion-MNIST: target train acc {fashion[0]['train_accuracy']:.3f}, "
              f"test acc {fashion[0]['test_accuracy']:.3f}; {args.fashion_size} records per split\n")
        _print(fashion)
        rows += fashion
    print(f"\ntotal {time.perf_counter() - started:.0f} s", file=sys.stderr)
    write_results(args.out, {"settings": vars(args), "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
