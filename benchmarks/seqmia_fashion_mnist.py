"""SeqMIA and its baselines on Fashion-MNIST, measured at low false-positive rates.

    python benchmarks/seqmia_fashion_mnist.py [--split-size 2500] [--epochs 50]
        [--distill-size 10000] [--distill-epochs 50] [--attack-epochs 150] [--lira-models 8] [--seed 0]
    python benchmarks/seqmia_fashion_mnist.py --lira-only --lira-models 64   # the target and LiRA only

Setting (Li et al. 2024, section 5.1, scaled to two CPU cores):

* Fashion-MNIST (70,000 images) split into target train / target test /
  shadow train / shadow test of ``--split-size`` records each, balanced per
  class; ``--distill-size`` records of the rest form the distillation set.
* Target: the small CNN of ``tfmia.demo`` (Adam 1e-3, batch 64) trained for
  ``--epochs`` epochs, long enough to overfit.  A TrajectoryRecorder follows
  the target's members and non-members during that training; its overhead is
  reported.
* One shadow model of the same recipe on shadow train (members) with shadow
  test as non-members calibrates every shadow-based attack: the single-shadow
  attack of Salem et al. (ShadowModelAttack, one global MLP), the metric
  attacks MBA(entropy) and MBA(modified entropy) with class-dependent
  thresholds, TrajectoryMIA and SeqMIA.
* SeqMIA and TrajectoryMIA distil the target and the shadow for
  ``--distill-epochs`` epochs; SeqMIA's attack model trains for
  ``--attack-epochs`` epochs (the paper's recipe otherwise).  Variants: the
  loss-only sequence, the multi-metric set with an MLP, GRU, Transformer,
  the shuffled-steps control and metrics standardised with shadow
  statistics.
* LiRA: ``--lira-models`` reference models on random halves of target train
  + target test (each record in half of them), trained packed where the
  model allows (``tfmia.farm``; ``--lira-packed false`` trains them one after
  another): offline with per-record and with global variance, online
  likewise.  ``--lira-only`` runs just these rows (and the target).

Everything is checkpointed under ``--run-dir``; a rerun resumes (and its
stage times then show the loading, not the training).  Prints a Markdown
table and writes benchmarks/results/seqmia_fashion_mnist.json.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from _harness import write_results
from tfmia.attack_models import AttackTraining
from tfmia.attacks import LiRA, MetricAttack, SeqMIA, ShadowModelAttack, TrajectoryMIA
from tfmia.callbacks import TrajectoryRecorder
from tfmia.data import AttackInputs
from tfmia.datasets import load_fashion_mnist
from tfmia.runs import RunDirectory, describe_fit, describe_model, fingerprint_arrays
from tfmia.demo import cnn_model
from tfmia.splits import partition
from tfmia.training import FitConfig, build_model, fit_model, load_weights, save_weights_atomically

HERE = Path(__file__).resolve().parent


class Stages:
    """Wall time per named stage."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    def __call__(self, name: str, fn, *args, **kwargs):
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
        print(f"[{name}] {self.seconds[name]:.0f} s", file=sys.stderr, flush=True)
        return out


def row(result, seconds: float | None = None) -> dict:
    low, one = result.low_fpr(0.001), result.low_fpr(0.01)
    return {
        "attack": result.name,
        "tpr_at_0.1%_fpr": low.tpr, "ci_low": low.ci_low, "ci_high": low.ci_high,
        "tpr_at_1%_fpr": one.tpr,
        "balanced_accuracy": result.balanced_accuracy,
        "decision": result.decision_source,
        "auc": result.auc,
        "attack_seconds": seconds,
    }


def train_target(model_fn, parts, recipe: FitConfig, run_dir: Path, stages: Stages, seed: int):
    """The target, trained once (with a TrajectoryRecorder on its members and non-members) and kept."""
    (x_in, y_in), (x_out, y_out) = parts["target_train"], parts["target_test"]
    target = build_model(model_fn, seed=seed)
    run = RunDirectory(run_dir / "target", "target", {"model": describe_model(target), "fit": describe_fit(recipe),
                                                      "seed": seed, "data": fingerprint_arrays(x_in, y_in)})
    if run.has("target.weights.h5"):
        return stages("target (load)", load_weights, target, run.path("target.weights.h5")), run.load_json("info.json")
    recorder = TrajectoryRecorder(np.concatenate([x_in, x_out]), np.concatenate([y_in, y_out]),
                                  run.path("trajectory"))
    start = time.perf_counter()
    stages("target training (with recorder)", fit_model, target, x_in, y_in, recipe, callbacks=[recorder])
    total = time.perf_counter() - start
    info = {"fit_seconds": total, "recorder_seconds": recorder.seconds,
            "recorder_overhead": recorder.seconds / (total - recorder.seconds),
            "recorded_records": int(x_in.shape[0] + x_out.shape[0]), "recorded_epochs": int(recorder.epochs.size)}
    run.save_json("info.json", info)
    save_weights_atomically(target, run.path("target.weights.h5"))  # last: marks the target as trained
    return target, info


def all_rows(model_fn, recipe, parts, target, members_view, non_members_view, x_distill, args, run_dir: Path,
             stages) -> list:
    """Every attack of the benchmark: shadow-model and metric attacks, LiRA, TrajectoryMIA, SeqMIA variants."""
    members = (target, *parts["target_train"])
    non_members = (target, *parts["target_test"])
    x_shadow = np.concatenate([parts["shadow_train"][0], parts["shadow_test"][0]])
    y_shadow = np.concatenate([parts["shadow_train"][1], parts["shadow_test"][1]])
    common = dict(fit=recipe, distill_epochs=args.distill_epochs, run_dir=run_dir / "sequences",
                  seed=args.seed, progress=False)
    seqmia = SeqMIA(model_fn, training=AttackTraining(epochs=args.attack_epochs), **common)
    # The shared, expensive part first, stage by stage: shadow model, distillations, sequences.
    shadows = stages("shadow model", seqmia.features.shadow_models, x_shadow, y_shadow)
    stages("shadow distillation + sequences", seqmia.features.shadow, x_shadow, y_shadow, x_distill)
    for records in (parts["target_train"], parts["target_test"]):
        stages("target distillation + sequences", seqmia.features.target, target, *records)

    rows = []
    shadow_in, shadow_out = shadows.pooled_attack_inputs()
    for attack in (ShadowModelAttack(model_fn, per_class=False, fit_config=recipe, seed=args.seed, progress=False),
                   MetricAttack("entropy"), MetricAttack("modified_entropy")):
        start = time.perf_counter()
        if isinstance(attack, ShadowModelAttack):
            attack.fit_shadows(shadows)
        else:
            attack.fit(shadow_in, shadow_out)
        name = {"entropy": "MBA(entropy)", "modified_entropy": "MBA(modified entropy)"}.get(
            getattr(attack, "metric", None), "shadow training (Salem et al., 1 shadow)")
        rows.append(row(attack.evaluate(members_view, non_members_view, name=name), time.perf_counter() - start))

    rows += lira_rows(model_fn, recipe, parts, members_view, non_members_view, args, run_dir, stages)

    sequence_attacks = [
        TrajectoryMIA(model_fn, **common),
        TrajectoryMIA(model_fn, shuffled=True, **common),
        seqmia,
        SeqMIA(model_fn, metrics=("loss",), training=AttackTraining(epochs=args.attack_epochs), **common),
        SeqMIA(model_fn, rnn="mlp", training=AttackTraining(epochs=args.attack_epochs), **common),
        SeqMIA(model_fn, rnn="gru", training=AttackTraining(epochs=args.attack_epochs), **common),
        SeqMIA(model_fn, rnn="transformer", training=AttackTraining(epochs=args.attack_epochs), **common),
        SeqMIA(model_fn, shuffled=True, training=AttackTraining(epochs=args.attack_epochs), **common),
        SeqMIA(model_fn, standardize=True, training=AttackTraining(epochs=args.attack_epochs), **common),
    ]
    for attack in sequence_attacks:
        start = time.perf_counter()
        stages(f"{attack.name} attack model", attack.fit, x_shadow, y_shadow, x_distill)
        rows.append(row(attack.evaluate(members, non_members), time.perf_counter() - start))

    return rows


def lira_rows(model_fn, recipe, parts, members_view, non_members_view, args, run_dir: Path, stages) -> list:
    """LiRA offline/online, per-record/global variance, with ``--lira-models`` reference models on random
    halves of target train + target test (trained once, packed where the model allows, then resumed)."""
    n = args.split_size
    pool = (np.concatenate([parts["target_train"][0], parts["target_test"][0]]),
            np.concatenate([parts["target_train"][1], parts["target_test"][1]]))
    lira_kwargs = dict(fit=recipe, n_models=args.lira_models, run_dir=run_dir / f"lira_{args.lira_models}",
                       seed=args.seed, progress=False, packed=args.lira_packed)
    lira_indices = dict(member_indices=np.arange(n), non_member_indices=np.arange(n, 2 * n))
    rows = []
    for online in (False, True):
        for global_variance in (False, True):
            lira = LiRA(model_fn, online=online, global_variance=global_variance, **lira_kwargs)
            stages(f"LiRA: {args.lira_models} reference models", lira.fit, *pool)
            start = time.perf_counter()
            rows.append(row(lira.evaluate(members_view, non_members_view, **lira_indices),
                            time.perf_counter() - start))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split-size", type=int, default=2500)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--distill-size", type=int, default=10000)
    parser.add_argument("--distill-epochs", type=int, default=50)
    parser.add_argument("--attack-epochs", type=int, default=150)
    parser.add_argument("--lira-models", type=int, default=8)
    parser.add_argument("--lira-only", action="store_true",
                        help="train the target (or load it) and run only the LiRA rows")
    parser.add_argument("--lira-packed", default="auto", type=lambda v: {"true": True, "false": False}.get(v, v),
                        choices=[True, False, "auto"], help="train LiRA's reference models packed (tfmia.farm)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-dir", default=str(HERE / "results" / "seqmia_fashion_mnist_run"))
    parser.add_argument("--out", default=None,
                        help="JSON results (default: benchmarks/results/seqmia_fashion_mnist[_lira_K].json)")
    args = parser.parse_args(argv)
    if args.out is None:
        suffix = f"_lira_{args.lira_models}" if args.lira_only else ""
        args.out = str(HERE / "results" / f"seqmia_fashion_mnist{suffix}.json")
    started = time.perf_counter()
    stages = Stages()
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)

    dataset = load_fashion_mnist(allow_download=False)
    n = args.split_size
    parts = partition(dataset.x, dataset.y, {"target_train": n, "target_test": n, "shadow_train": n,
                                             "shadow_test": n}, seed=args.seed)
    x_distill = parts["remainder"][0][: args.distill_size]
    model_fn = functools.partial(cnn_model, dataset.x.shape[1:], dataset.num_classes)
    recipe = FitConfig(epochs=args.epochs, batch_size=args.batch_size)

    target, target_info = train_target(model_fn, parts, recipe, run_dir, stages, args.seed)
    members_view = AttackInputs.from_model(target, *parts["target_train"])
    non_members_view = AttackInputs.from_model(target, *parts["target_test"])
    if args.lira_only:
        rows = lira_rows(model_fn, recipe, parts, members_view, non_members_view, args, run_dir, stages)
    else:
        rows = all_rows(model_fn, recipe, parts, target, members_view, non_members_view, x_distill, args, run_dir,
                        stages)

    total = time.perf_counter() - started
    settings = {**vars(args), "distill_set": int(x_distill.shape[0]), "platform": platform.platform(),
                "cpu_count": os.cpu_count()}
    facts = {"train_accuracy": float(members_view.correct.mean()),
             "test_accuracy": float(non_members_view.correct.mean()), **target_info}
    print(f"\nFashion-MNIST: {n} records per split (target/shadow train/test), distillation set "
          f"{x_distill.shape[0]}; CNN {args.epochs} epochs; distillation {args.distill_epochs} epochs; "
          f"SeqMIA attack {args.attack_epochs} epochs; LiRA {args.lira_models} reference models; seed {args.seed}.")
    print(f"Target train accuracy {facts['train_accuracy']:.3f}, test accuracy {facts['test_accuracy']:.3f}.\n")
    print("| attack | TPR @ 0.1% FPR [95% CI] | TPR @ 1% FPR | balanced accuracy | AUC |")
    print("|---|---|---|---|---|")
    for r in rows:
        oracle = " (oracle threshold)" if r["decision"].startswith("best") else ""
        print(f"| {r['attack']} | {r['tpr_at_0.1%_fpr']:.2%} [{r['ci_low']:.2%}, {r['ci_high']:.2%}] | "
              f"{r['tpr_at_1%_fpr']:.2%} | {r['balanced_accuracy']:.3f}{oracle} | {r['auc']:.3f} |")
    print("\n| stage | wall time (s) |\n|---|---|")
    for name, seconds in stages.seconds.items():
        print(f"| {name} | {seconds:.0f} |")
    print(f"| total | {total:.0f} |")
    if "recorder_overhead" in target_info:
        print(f"\nTrajectoryRecorder on {target_info['recorded_records']} records x {target_info['recorded_epochs']} "
              f"epochs: {target_info['recorder_seconds']:.1f} s, {target_info['recorder_overhead']:.0%} of the "
              f"target's training time without it.")
    write_results(args.out, {"settings": settings, "target": facts, "results": rows,
                             "stages_seconds": stages.seconds, "total_seconds": total})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
