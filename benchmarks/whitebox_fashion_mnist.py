"""Rezaei & Liu's white-box attacks on an overfitted Fashion-MNIST CNN (and a digits MLP).

    python benchmarks/whitebox_fashion_mnist.py [--datasets fashion-mnist digits] [--split-size 2500] [--epochs 60] [--seeds 0 1 2]

For each dataset: disjoint, class-balanced members (the target's training
set) and non-members; a target trained to overfit (``tfmia.demo``'s CNN for
Fashion-MNIST, its MLP for digits); then, with Rezaei & Liu's protocol
(the attacker knows 80 % of each class's members and non-members and is
evaluated on the rest, one attack model per class):

* confidence: the output probability vector, NN attack model;
* intermediate: the input of the final Dense layer, NN attack model;
* gradient w.r.t. weights / w.r.t. input: the seven gradient statistics,
  logistic regression (and each statistic alone, for the AUC table);
* boundary distance: L2 distance to the decision boundary (inputs clipped to
  [0, 1]), logistic regression;

next to the naive baseline (member iff correctly classified).  Accuracy,
balanced accuracy, FAR and AUC are reported on all evaluated records, on the
correctly classified and on the misclassified ones, as mean ± std over seeds
(each seed draws its own split, target and attack models).

Prints Markdown tables and writes benchmarks/results/whitebox_fashion_mnist.json.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from _harness import write_results  # noqa: E402
from tfmia.attacks import FeatureAttack  # noqa: E402
from tfmia.attacks.whitebox import per_column_results  # noqa: E402
from tfmia.datasets import load_digits, load_fashion_mnist  # noqa: E402
from tfmia.demo import cnn_model, mlp_model  # noqa: E402
from tfmia.features.boundary import boundary_distance  # noqa: E402
from tfmia.features.records import FeatureRecords  # noqa: E402
from tfmia.splits import partition  # noqa: E402
from tfmia.training import FitConfig, build_model, fit_model  # noqa: E402

HERE = Path(__file__).resolve().parent
SLICES = ("entire dataset", "correctly classified", "misclassified")
METRICS = ("accuracy", "balanced_accuracy", "far")

# name -> (features, classifier)
ATTACKS = {
    "confidence": ("confidence", "nn"),
    "intermediate": ("intermediate", "nn"),
    "gradient w.r.t. weights": ("gradient_weights", "logreg"),
    "gradient w.r.t. input": ("gradient_input", "logreg"),
    "boundary distance": ("boundary", "logreg"),
}


def slice_rows(result) -> dict:
    """Accuracy, balanced accuracy and FAR of the attack and of the naive baseline per slice."""
    slices, skipped = result.slices(by_class=False)
    rows = {}
    for key in SLICES:
        if key not in slices:
            rows[key] = {"skipped": skipped.get(key, "empty")}
            continue
        part = slices[key]
        naive = part.naive
        rows[key] = {
            "records": len(part),
            "members": part.n_members,
            "attack": {m: part.metrics()[m] for m in METRICS} | {"auc": part.auc},
            "naive": {"accuracy": naive.accuracy, "balanced_accuracy": naive.balanced_accuracy, "far": naive.far},
        }
    return rows


def run_dataset(name: str, split_size: int, epochs: int, seed: int, nn_epochs: int) -> dict:
    data = load_digits() if name == "digits" else load_fashion_mnist(allow_download=False)
    parts = partition(data.x, data.y, {"members": split_size, "non_members": split_size}, seed=seed)
    if name == "digits":
        model_fn = functools.partial(mlp_model, data.x.shape[1], data.num_classes)
        recipe = FitConfig(epochs=epochs, batch_size=32)
    else:
        model_fn = functools.partial(cnn_model, data.x.shape[1:], data.num_classes)
        recipe = FitConfig(epochs=epochs, batch_size=64)
    started = time.perf_counter()
    target = build_model(model_fn, seed=seed)
    fit_model(target, *parts["members"], recipe)
    trained = time.perf_counter()
    out = {"train_seconds": trained - started, "attacks": {}, "single_statistics": {}, "feature_seconds": {}}
    for label, (features, classifier) in ATTACKS.items():
        tick = time.perf_counter()
        options = {"clip": (0.0, 1.0)} if features == "boundary" else {}
        members = FeatureRecords.from_model(target, *parts["members"], features=features, **options)
        non_members = FeatureRecords.from_model(target, *parts["non_members"], features=features, **options)
        out["feature_seconds"][label] = time.perf_counter() - tick
        if label == "confidence":
            out["train_accuracy"] = float(members.correct.mean())
            out["test_accuracy"] = float(non_members.correct.mean())
        attack = FeatureAttack(features, classifier, seed=seed,
                               classifier_options={"epochs": nn_epochs} if classifier == "nn" else None)
        result = attack.fit_evaluate(members, non_members, name=label)
        out["attacks"][label] = {
            "slices": slice_rows(result),
            "per_class_balanced_accuracy": result.per_class_summary(("balanced_accuracy",))["balanced_accuracy"],
            "missing_feature_values": result.metadata["missing_feature_values"],
        }
        if features.startswith("gradient"):
            singles = per_column_results(members, non_members, features, seed=seed)
            out["single_statistics"][label] = {col.split("_", 1)[-1]: r.auc for col, r in singles.items()}
        print(f"{name}, seed {seed}: {label} done ({out['feature_seconds'][label]:.0f} s of features)",
              file=sys.stderr, flush=True)
    boundary = boundary_distance(target, parts["members"][0], clip=(0.0, 1.0))
    out["boundary_members"] = {"failures": boundary.failure_counts(), "mean_queries": float(boundary.queries.mean())}
    return out


def _cell(values) -> str:
    values = [v for v in values if v is not None and not np.isnan(v)]
    if not values:
        return "n/a"
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}" if len(values) > 1 else f"{values[0]:.3f}"


def print_tables(name: str, runs: list[dict], split_size: int) -> None:
    """Markdown tables: one per slice (attacks and the naive baseline), then per-class and per-statistic summaries."""
    train = [r["train_accuracy"] for r in runs]
    test = [r["test_accuracy"] for r in runs]
    print(f"\n### {name}: {split_size} members / {split_size} non-members, {len(runs)} seeds; target train accuracy "
          f"{_cell(train)}, test accuracy {_cell(test)} (mean ± std over seeds)")
    labels = list(runs[0]["attacks"])
    for key in SLICES:
        print(f"\n{key}:\n")
        print("| attack | records (members) | accuracy | balanced accuracy | FAR | AUC |")
        print("|---|---|---|---|---|---|")

        def row(label, who):
            parts = [r["attacks"][labels[0] if who == "naive" else label]["slices"][key] for r in runs]
            parts = [p for p in parts if "skipped" not in p]
            if not parts:
                return f"| {label} | n/a (no members or no non-members) | | | | |"
            cells = [_cell([p[who][m] for p in parts]) for m in METRICS]
            auc = "-" if who == "naive" else _cell([p[who]["auc"] for p in parts])
            records = f"{np.mean([p['records'] for p in parts]):.0f} ({np.mean([p['members'] for p in parts]):.0f})"
            return f"| {label} | {records} | " + " | ".join(cells) + f" | {auc} |"

        print(row("naive (member iff correct)", "naive"))
        for label in labels:
            print(row(label, "attack"))
    print("\nPer-class balanced accuracy, mean ± std over classes (averaged over seeds), and pooled:\n")
    for label in labels:
        summary = [r["attacks"][label]["per_class_balanced_accuracy"] for r in runs]
        print(f"- {label}: {np.mean([s['mean'] for s in summary]):.3f} ± {np.mean([s['std'] for s in summary]):.3f} "
              f"(pooled {np.mean([s['pooled'] for s in summary]):.3f})")
    print("\nAUC of per-class logistic regression on one gradient statistic, and on all seven:\n")
    stats = list(runs[0]["single_statistics"])
    columns = list(runs[0]["single_statistics"][stats[0]])
    print("| gradient | " + " | ".join(c if c != "all" else "all seven" for c in columns) + " |")
    print("|---|" + "---|" * len(columns))
    for label in stats:
        print(f"| {label} | " + " | ".join(_cell([r["single_statistics"][label][c] for r in runs]) for c in columns) + " |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["fashion-mnist", "digits"], choices=["fashion-mnist", "digits"])
    parser.add_argument("--split-size", type=int, default=2500, help="members (and non-members) for Fashion-MNIST")
    parser.add_argument("--digits-split-size", type=int, default=700)
    parser.add_argument("--epochs", type=int, default=60, help="target epochs for Fashion-MNIST")
    parser.add_argument("--digits-epochs", type=int, default=60)
    parser.add_argument("--nn-epochs", type=int, default=50, help="epochs of the NN attack models")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default=str(HERE / "results" / "whitebox_fashion_mnist.json"))
    args = parser.parse_args(argv)
    runs = {}
    for name in args.datasets:
        size, epochs = (args.digits_split_size, args.digits_epochs) if name == "digits" else (args.split_size, args.epochs)
        runs[name] = [run_dataset(name, size, epochs, seed, args.nn_epochs) for seed in args.seeds]
        print_tables(name, runs[name], size)
    write_results(args.out, {"settings": vars(args), "runs": runs})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
