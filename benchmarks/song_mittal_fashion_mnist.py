"""Song & Mittal's claims measured on Fashion-MNIST.

    python benchmarks/song_mittal_fashion_mnist.py [--split-size 2500] [--epochs 25] [--seeds 0 1 2] [--logits]

For each seed: disjoint, class-balanced target train/test and shadow
train/test sets; a small CNN target trained to overfit and one shadow model
with the same recipe; then the correctness, loss, confidence, entropy and
modified-entropy attacks with class-dependent and class-independent
thresholds calibrated on the shadow model, evaluated on the target's members
and non-members.  Prints a Markdown table (mean +- std over seeds) and the two
comparisons the paper makes:

* do class-dependent thresholds beat class-independent ones?
* does modified entropy beat entropy?

By default the signals come from the CNN's float32 probabilities, as in the
reference code; ``--logits`` computes them from the scores before its
softmax instead (``AttackInputs.from_model(..., logits=True)``).

Writes benchmarks/results/song_mittal_fashion_mnist.json.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from _harness import write_results
from tfmia.attacks import METRICS, MetricAttack, PrivacyRiskScore
from tfmia.data import AttackInputs
from tfmia.datasets import load_fashion_mnist
from tfmia.demo import cnn_model
from tfmia.shadow_training import train_shadow_models
from tfmia.splits import partition
from tfmia.training import FitConfig, build_model, fit_model

HERE = Path(__file__).resolve().parent
COLUMNS = ("balanced_accuracy", "far", "precision_member", "auc", "tpr_at_1%_fpr")


def run_seed(dataset, split_size: int, epochs: int, seed: int, batch_size: int = 64, logits: bool = False) -> dict:
    """One repetition: returns {attack name: metrics} plus the target's accuracies and timings."""
    n = split_size
    parts = partition(dataset.x, dataset.y, {"target_train": n, "target_test": n, "shadow_train": n,
                                             "shadow_test": n}, seed=seed)
    model_fn = functools.partial(cnn_model, dataset.x.shape[1:], dataset.num_classes)
    recipe = FitConfig(epochs=epochs, batch_size=batch_size)
    started = time.perf_counter()
    target = build_model(model_fn, seed=seed)
    fit_model(target, *parts["target_train"], recipe)
    members = AttackInputs.from_model(target, *parts["target_train"], logits=logits)
    non_members = AttackInputs.from_model(target, *parts["target_test"], logits=logits)
    attacker = np.concatenate([parts.indices["shadow_train"], parts.indices["shadow_test"]])
    shadows = train_shadow_models(model_fn, dataset.x[attacker], dataset.y[attacker], n_shadows=1, fit=recipe,
                                  train_size=n, seed=seed + 1000, progress=False, logits=logits)
    s_in, s_out = shadows.pooled_attack_inputs()
    trained = time.perf_counter()
    rows = {}
    for metric in METRICS:
        for class_dependent in ((False,) if metric == "correctness" else (True, False)):
            result = MetricAttack(metric, class_dependent=class_dependent).fit(s_in, s_out).evaluate(members, non_members)
            rows[result.name] = {k: result.metrics()[k] for k in COLUMNS}
    risk = PrivacyRiskScore().fit(s_in, s_out)
    result = risk.evaluate(members, non_members)
    rows[result.name] = {k: result.metrics()[k] for k in COLUMNS}
    rows[result.name]["calibration_rmse"] = risk.calibration(members, non_members)["rmse"]
    return {
        "attacks": rows,
        "train_accuracy": float(members.correct.mean()),
        "test_accuracy": float(non_members.correct.mean()),
        "training_seconds": trained - started,
        "attack_seconds": time.perf_counter() - trained,
    }


def summarise(runs: list[dict]) -> dict:
    names = list(runs[0]["attacks"])
    table = {}
    for name in names:
        table[name] = {}
        for col in runs[0]["attacks"][name]:
            values = [r["attacks"][name][col] for r in runs]
            table[name][col] = (statistics.mean(values), statistics.pstdev(values))
    return table


def comparisons(runs: list[dict]) -> list[dict]:
    """Paired comparisons per seed on balanced accuracy (the paper's metric)."""
    out = []
    pairs = [(f"{m} (class-dependent threshold)", f"{m} (global threshold)") for m in METRICS if m != "correctness"]
    pairs.append(("modified_entropy (class-dependent threshold)", "entropy (class-dependent threshold)"))
    pairs.append(("modified_entropy (global threshold)", "entropy (global threshold)"))
    for a, b in pairs:
        diffs = [r["attacks"][a]["balanced_accuracy"] - r["attacks"][b]["balanced_accuracy"] for r in runs]
        out.append({"better": a, "than": b, "mean_difference": statistics.mean(diffs),
                    "wins": sum(d > 0 for d in diffs), "seeds": len(diffs)})
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split-size", type=int, default=2500)
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--logits", action="store_true", help="signals from the scores before the softmax")
    parser.add_argument("--out", default=str(HERE / "results" / "song_mittal_fashion_mnist.json"))
    args = parser.parse_args(argv)
    dataset = load_fashion_mnist(allow_download=False)
    runs = []
    for seed in args.seeds:
        runs.append(run_seed(dataset, args.split_size, args.epochs, seed, logits=args.logits))
        r = runs[-1]
        print(f"seed {seed}: train acc {r['train_accuracy']:.3f}, test acc {r['test_accuracy']:.3f}, "
              f"training {r['training_seconds']:.0f} s", file=sys.stderr, flush=True)
    table = summarise(runs)
    source = "logits" if args.logits else "probabilities"
    print(f"\nFashion-MNIST, {args.split_size} records per split, CNN {args.epochs} epochs, seeds {args.seeds}, "
          f"signals from {source}; "
          f"target train acc {statistics.mean(r['train_accuracy'] for r in runs):.3f}, "
          f"test acc {statistics.mean(r['test_accuracy'] for r in runs):.3f}\n")
    print("| attack | " + " | ".join(COLUMNS) + " |")
    print("|---|" + "---|" * len(COLUMNS))
    for name, cols in table.items():
        print(f"| {name} | " + " | ".join(f"{cols[c][0]:.4f} ± {cols[c][1]:.4f}" for c in COLUMNS) + " |")
    print()
    comp = comparisons(runs)
    for c in comp:
        print(f"{c['better']} vs {c['than']}: balanced accuracy {c['mean_difference']:+.4f} "
              f"(better in {c['wins']}/{c['seeds']} seeds)")
    write_results(args.out, {"settings": vars(args), "runs": runs, "comparisons": comp})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
