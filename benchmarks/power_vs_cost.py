"""Attack power against cost: TPR at low FPR as a function of the number of reference models.

    python benchmarks/power_vs_cost.py [--split-size 2500] [--epochs 50] [--references 1,2,4,8,16,64]
        [--population 2500] [--public 2500] [--seed 0] [--run-dir DIR] [--plot docs/power_vs_cost.png]

Setting: the Fashion-MNIST set-up of ``benchmarks/seqmia_fashion_mnist.py``
(the ``tfmia.demo`` CNN, Adam 1e-3, batch 64, ``--epochs`` epochs on
``--split-size`` members; as many non-members), with disjoint attacker data
drawn from the rest of Fashion-MNIST:

* **online references** (LiRA online, RMIA online): K models on random halves
  of the audited records (members and non-members of the target), each record
  in exactly half of them, queried on the audited records and on
  ``--population`` population records that no model trains on;
* **offline references** (LiRA offline, RMIA offline): K models on random
  halves of ``2 * --split-size`` attacker records disjoint from everything
  else, queried on the audited and the population records;
* **no references**: the global loss and modified-entropy scores (AUC and TPR
  at FPR need no threshold) and the quantile-regression attack (QMIA,
  pinball head, alpha = 0.01) trained on ``--public`` public non-members.

The largest K of each kind is trained once, packed
(``train_shadow_models(..., packed="auto")``), and every smaller K uses its
first K models: the ``"lira"`` keep matrix pairs models with complementary
halves, so any even prefix is itself balanced.  A row's wall time is the
scoring time plus K times the measured seconds per reference model.  LiRA
with per-record variances needs >= 2 observations per side (online K >= 4,
offline K >= 2); global-variance rows run from the smallest K that has one.
Offline RMIA picks ``a`` from its references (``select_offline_a``: one plays
the target); with K = 1 there is none to spare and ``a = 1`` (no correction).

Prints a Markdown table, writes ``benchmarks/results/power_vs_cost.json`` and
a log-x plot.  Everything is checkpointed under ``--run-dir``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from _harness import write_results
from tfmia.attacks import MetricAttack, QuantileMIA
from tfmia.attacks.lira import offline_scores, online_scores, pooled_std
from tfmia.attacks.rmia import rmia_scores, select_offline_a, tempered_probability
from tfmia.data import AttackInputs
from tfmia.datasets import load_fashion_mnist
from tfmia.demo import cnn_model
from tfmia.evaluation import AttackResult
from tfmia.runs import RunDirectory, describe_fit, describe_model, fingerprint_arrays
from tfmia.shadow_training import train_shadow_models
from tfmia.splits import partition
from tfmia.training import FitConfig, build_model, fit_model, load_weights, save_weights_atomically

HERE = Path(__file__).resolve().parent


def train_target(model_fn, members, recipe: FitConfig, run_dir: Path, seed: int):
    """The target, trained once and kept; returns (model, training seconds)."""
    target = build_model(model_fn, seed=seed)
    run = RunDirectory(run_dir / "target", "target", {"model": describe_model(target), "fit": describe_fit(recipe),
                                                      "seed": seed, "data": fingerprint_arrays(*members)})
    if run.has("target.weights.h5"):
        return load_weights(target, run.path("target.weights.h5")), run.load_json("info.json")["fit_seconds"]
    start = time.perf_counter()
    fit_model(target, *members, recipe, seed=seed)
    seconds = time.perf_counter() - start
    run.save_json("info.json", {"fit_seconds": seconds})
    save_weights_atomically(target, run.path("target.weights.h5"))
    return target, seconds


def reference_signals(models, indices):
    """(K, len(indices)) LiRA statistics and RMIA signals (softmax probability of the label) of every model."""
    stats, probs = [], []
    for model in models.models:
        inputs = AttackInputs(labels=models.y[indices], logits=model.outputs_for(indices))
        stats.append(inputs.signals["logit_confidence"])
        probs.append(tempered_probability(inputs))
    return np.stack(stats).astype(np.float64), np.stack(probs)


def train_references(model_fn, pool, *, n_models, recipe, holdout, train_size, scheme, seed, run_dir):
    """The references of one kind and the wall seconds per model (0 when loaded from the run directory)."""
    start = time.perf_counter()
    models = train_shadow_models(model_fn, *pool, n_shadows=n_models, fit=recipe, train_size=train_size,
                                 scheme=scheme, seed=seed, run_dir=run_dir, holdout=holdout, logits=True,
                                 packed="auto", progress=False)
    seconds = time.perf_counter() - start
    info = run_dir / "seconds.json"
    if models.trained:
        info.write_text(json.dumps({"seconds_per_model": seconds / len(models.trained)}))
    return models, json.loads(info.read_text())["seconds_per_model"]


def row(result: AttackResult, kind: str, k: int, seconds: float) -> dict:
    low, one = result.low_fpr(0.001), result.low_fpr(0.01)
    return {"attack": kind, "references": k, "tpr_at_0.1%_fpr": low.tpr, "ci_0.1%": [low.ci_low, low.ci_high],
            "tpr_at_1%_fpr": one.tpr, "ci_1%": [one.ci_low, one.ci_high], "auc": result.auc, "seconds": seconds}


def scored(kind: str, k: int, scores: np.ndarray, is_member: np.ndarray, seconds: float) -> dict:
    return row(AttackResult.from_scores(scores, is_member, name=f"{kind} K={k}"), kind, k, seconds)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split-size", type=int, default=2500)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--references", default="1,2,4,8,16,64")
    parser.add_argument("--population", type=int, default=2500)
    parser.add_argument("--public", type=int, default=2500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-dir", default=str(HERE / "results" / "power_vs_cost_run"))
    parser.add_argument("--out", default=str(HERE / "results" / "power_vs_cost.json"))
    parser.add_argument("--plot", default=str(HERE.parent / "docs" / "power_vs_cost.png"))
    parser.add_argument("--replot", action="store_true", help="only redraw the plot from the JSON of --out")
    args = parser.parse_args(argv)
    if args.replot:
        plot(json.loads(Path(args.out).read_text())["results"], Path(args.plot))
        return 0
    ks = sorted({int(k) for k in args.references.split(",")})
    if min(ks) < 1:
        raise SystemExit("--references must list positive counts")
    k_online = max(k for k in ks if k % 2 == 0)
    started = time.perf_counter()
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)

    dataset = load_fashion_mnist(allow_download=False)
    n = args.split_size
    parts = partition(dataset.x, dataset.y, {"members": n, "non_members": n, "attacker": 2 * n,
                                             "population": args.population, "public": args.public}, seed=args.seed)
    model_fn = functools.partial(cnn_model, dataset.x.shape[1:], dataset.num_classes)
    recipe = FitConfig(epochs=args.epochs, batch_size=args.batch_size)
    target, target_seconds = train_target(model_fn, parts["members"], recipe, run_dir, args.seed)
    print(f"[target] {target_seconds:.0f} s", file=sys.stderr, flush=True)

    x_audit = np.concatenate([parts["members"][0], parts["non_members"][0]])
    y_audit = np.concatenate([parts["members"][1], parts["non_members"][1]])
    is_member = np.repeat([True, False], n)
    audit_view = AttackInputs.from_model(target, x_audit, y_audit, logits=True)
    population_view = AttackInputs.from_model(target, *parts["population"], logits=True)
    target_stat = audit_view.signals["logit_confidence"].astype(np.float64)
    target_x, target_z = tempered_probability(audit_view), tempered_probability(population_view)

    # Online: pool = audited records, then the population (held out of every model's training).
    n_audit, n_pop = 2 * n, len(parts["population"][1])
    audited, pop = np.arange(n_audit), np.arange(n_audit, n_audit + n_pop)
    online_pool = (np.concatenate([x_audit, parts["population"][0]]), np.concatenate([y_audit, parts["population"][1]]))
    online, online_seconds = train_references(model_fn, online_pool, n_models=k_online, recipe=recipe, holdout=pop,
                                              train_size=None, scheme="lira", seed=args.seed + 1000,
                                              run_dir=run_dir / "online")
    print(f"[online references] {online_seconds:.1f} s per model", file=sys.stderr, flush=True)
    keep = online.membership()[:, audited]
    on_stats, on_x = reference_signals(online, audited)
    _, on_z = reference_signals(online, pop)

    # Offline: pool = audited, population, then the attacker's own records (the only ones trained on).
    own = np.arange(n_audit + n_pop, n_audit + n_pop + 2 * n)
    offline_pool = (np.concatenate([online_pool[0], parts["attacker"][0]]),
                    np.concatenate([online_pool[1], parts["attacker"][1]]))
    offline, offline_seconds = train_references(model_fn, offline_pool, n_models=max(ks), recipe=recipe,
                                                holdout=np.concatenate([audited, pop]), train_size=n, scheme="shokri",
                                                seed=args.seed + 2000, run_dir=run_dir / "offline")
    print(f"[offline references] {offline_seconds:.1f} s per model", file=sys.stderr, flush=True)
    off_stats, off_x = reference_signals(offline, audited)
    _, off_z = reference_signals(offline, pop)
    off_own = np.full((len(offline), own.size), np.nan)
    for j, model in enumerate(offline.models):
        queried = np.isin(own, model.query_indices)
        inputs = AttackInputs(labels=offline.y[own[queried]], logits=model.outputs_for(own[queried]))
        off_own[j, queried] = tempered_probability(inputs)
    off_trained = offline.membership()[:, own]

    rows = []
    for metric in ("loss", "modified_entropy"):
        start = time.perf_counter()
        attack = MetricAttack(metric, class_dependent=False)
        scores = attack.values(audit_view)
        rows.append(scored(f"{metric} (global score)", 0, scores, is_member, time.perf_counter() - start))
    start = time.perf_counter()
    qmia = QuantileMIA(alpha=0.01, logits=True, seed=args.seed).fit(target, *parts["public"])
    result = qmia.evaluate((target, *parts["members"]), (target, *parts["non_members"]))
    rows.append(row(result, "QMIA (pinball, alpha 1%)", 0, time.perf_counter() - start))

    for k in ks:
        def timed(kind, fn, per_model):
            start = time.perf_counter()
            scores = fn()
            rows.append(scored(kind, k, scores, is_member, time.perf_counter() - start + k * per_model))

        everything_out = np.zeros((k, n_audit), bool)
        if k >= 2:
            timed("LiRA offline", lambda: offline_scores(target_stat, off_stats[:k], everything_out), offline_seconds)
        std = pooled_std(off_stats[:k], (~everything_out,))
        timed("LiRA offline, global variance",
              lambda: offline_scores(target_stat, off_stats[:k], everything_out, std=std), offline_seconds)
        a = select_offline_a(off_own[:k], off_trained[:k], off_z[:k])[0] if k >= 2 else 1.0
        timed(f"RMIA offline (a={a:g})", lambda: rmia_scores(target_x, off_x[:k], target_z, off_z[:k], a=a),
              offline_seconds)
        if k % 2 or k > k_online:
            continue
        if k >= 4:
            timed("LiRA online", lambda: online_scores(target_stat, on_stats[:k], keep[:k]), online_seconds)
        std = pooled_std(on_stats[:k], (keep[:k], ~keep[:k]))
        timed("LiRA online, global variance",
              lambda: online_scores(target_stat, on_stats[:k], keep[:k], std=std), online_seconds)
        timed("RMIA online", lambda: rmia_scores(target_x, on_x[:k], target_z, on_z[:k], in_mask=keep[:k]),
              online_seconds)

    total = time.perf_counter() - started
    facts = {"train_accuracy": float(audit_view.correct[:n].mean()),
             "test_accuracy": float(audit_view.correct[n:].mean()), "target_seconds": target_seconds,
             "seconds_per_online_reference": online_seconds, "seconds_per_offline_reference": offline_seconds}
    print(f"\nFashion-MNIST, {n} members and {n} non-members; CNN {args.epochs} epochs (train accuracy "
          f"{facts['train_accuracy']:.3f}, test {facts['test_accuracy']:.3f}); {n_pop} population records; "
          f"{online_seconds:.1f} s per online and {offline_seconds:.1f} s per offline reference model (packed).\n")
    print("| attack | K | TPR @ 0.1% FPR [95% CI] | TPR @ 1% FPR [95% CI] | AUC | wall s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['attack']} | {r['references']} | {r['tpr_at_0.1%_fpr']:.2%} [{r['ci_0.1%'][0]:.2%}, "
              f"{r['ci_0.1%'][1]:.2%}] | {r['tpr_at_1%_fpr']:.2%} [{r['ci_1%'][0]:.2%}, {r['ci_1%'][1]:.2%}] | "
              f"{r['auc']:.3f} | {r['seconds']:.0f} |")
    settings = {**vars(args), "platform": platform.platform(), "cpu_count": os.cpu_count(), "total_seconds": total}
    write_results(args.out, {"settings": settings, "target": facts, "results": rows})
    plot(rows, Path(args.plot))
    return 0


def plot(rows: list[dict], path: Path) -> None:
    """TPR at 0.1 % and 1 % FPR against K (log x); attacks without references as horizontal lines."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    from tfmia.plotting import figure_png

    fig = Figure(figsize=(11, 4.2))
    without = [r for r in rows if r["references"] == 0]
    for i, (key, label) in enumerate((("tpr_at_0.1%_fpr", "TPR at 0.1% FPR"), ("tpr_at_1%_fpr", "TPR at 1% FPR"))):
        ax = fig.add_subplot(1, 2, i + 1)
        measured = [r for r in rows if np.isfinite(r[key])]  # NaN: below the resolution of the non-members
        for kind in dict.fromkeys(r["attack"].split(" (a=")[0] for r in measured if r["references"] > 0):
            points = [(r["references"], r[key]) for r in measured if r["attack"].split(" (a=")[0] == kind]
            ax.plot(*zip(*points), marker="o", ms=3, label=kind)
        for r, style in zip(without, ("--", ":", "-.")):
            if np.isfinite(r[key]):
                ax.axhline(r[key], ls=style, lw=1, color="grey", label=f"{r['attack']}, no references")
        ax.set_xscale("log", base=2)
        ax.set_xlim(0.8, 1.25 * max(r["references"] for r in rows))
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_xlabel("reference models K")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        if i == 1:
            ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.02, 1))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(figure_png(fig))


if __name__ == "__main__":
    raise SystemExit(main())
