"""One-run epsilon lower bounds for the targets of the defences benchmark, next to DP-SGD's accounting epsilon.

    python benchmarks/one_run_fashion_mnist.py [--split-size 1000] [--canaries 1000] [--guesses 100]
        [--epochs 30] [--seed 0]

Setting: the targets of ``benchmarks/defences_fashion_mnist.py`` (MLP
784-128-10, Adam 1e-3, batch 50, ``--epochs`` epochs; undefended, L2 1e-3,
DP-SGD with C = 1 and sigma in {0.5, 1, 2}, adversarial regularisation,
MixupMMD, each built by that benchmark's ``defended_rows``) on
``--split-size`` Fashion-MNIST records.  Steinke, Nasr & Jagielski's protocol (``tfmia.auditing``):
``--canaries`` records drawn from data disjoint from the training set and
mislabelled (a mislabelled record is learnt only by memorising it), each
included in the training set with probability 1/2; one training run per
target; every canary scored by minus the target's loss on it; IN guessed for
the ``--guesses`` highest scores and OUT for as many lowest, fixed before the
run.  ``epsilon_lower`` at delta = 1e-5 and p-value 0.05; DP-SGD's epsilon
at the same delta from the RDP accountant, for the training set the target
really had (records plus included canaries).  A valid audit never finds
``epsilon_lower`` above the accounting epsilon.

Prints a Markdown table and writes benchmarks/results/one_run_fashion_mnist.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from _harness import write_results
from defences_fashion_mnist import defended_rows
from tfmia.auditing import correct_guesses, draw_canaries, one_run_epsilon
from tfmia.data import AttackInputs
from tfmia.datasets import load_fashion_mnist
from tfmia.defenses import DPSGD, is_defended
from tfmia.splits import partition
from tfmia.training import FitConfig, build_model, fit_model

HERE = Path(__file__).resolve().parent
DELTA = 1e-5
P_VALUE = 0.05


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split-size", type=int, default=1000)
    parser.add_argument("--canaries", type=int, default=1000)
    parser.add_argument("--guesses", type=int, default=100, help="k_pos = k_neg")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(HERE / "results" / "one_run_fashion_mnist.json"))
    args = parser.parse_args(argv)

    data = load_fashion_mnist(allow_download=False)
    x = data.x.reshape(len(data.x), -1)  # float32 in [0, 1], as the defences benchmark feeds its MLP
    n = args.split_size
    parts = partition(x, data.y, {"target_train": n, "target_test": n, "defender_reference": n,
                                  "attacker_reference": n, "canary_pool": args.canaries}, seed=args.seed)
    canaries = draw_canaries(*parts["canary_pool"], args.canaries, seed=args.seed, mislabel=True,
                             num_classes=data.num_classes)
    x_train = np.concatenate([parts["target_train"][0], canaries.x[canaries.included]])
    y_train = np.concatenate([parts["target_train"][1], canaries.y[canaries.included]])
    fit = FitConfig(epochs=args.epochs, batch_size=args.batch_size)

    rows = []
    for target in defended_rows(parts, fit, args.seed):
        name = target.label
        dp = target.target_fn.defense if is_defended(target.target_fn) else None
        dp = dp if isinstance(dp, DPSGD) else None
        start = time.perf_counter()
        model = build_model(target.target_fn, seed=args.seed)
        fit_model(model, x_train, y_train, fit, seed=args.seed)
        seconds = time.perf_counter() - start
        scores = -AttackInputs.from_model(model, canaries.x, canaries.y).signals["loss"]
        r, v = correct_guesses(scores, canaries.included, args.guesses, args.guesses)
        bound = one_run_epsilon(scores, canaries.included, args.guesses, args.guesses, delta=DELTA, p_value=P_VALUE)
        epsilon = None if dp is None else dp.epsilon(len(y_train), batch_size=fit.batch_size, epochs=fit.epochs,
                                                     delta=DELTA)
        test_accuracy = float(AttackInputs.from_model(model, *parts["target_test"]).correct.mean())
        rows.append({"target": name, "test_accuracy": test_accuracy, "epsilon": epsilon, "epsilon_lower": bound,
                     "guesses": r, "correct": v, "train_seconds": seconds})
        print(f"[{name}] {seconds:.0f} s", flush=True)

    print(f"\nFashion-MNIST, {args.split_size} training records + {int(canaries.included.sum())} of "
          f"{args.canaries} mislabelled canaries; MLP {args.epochs} epochs, batch {args.batch_size}; "
          f"{args.guesses} + {args.guesses} guesses; delta = {DELTA:g}, p-value {P_VALUE}.\n")
    print("| target | test acc | epsilon (accounting) | epsilon lower bound (one run) | correct guesses | train s |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        eps = "-" if row["epsilon"] is None else f"{row['epsilon']:.3g}"
        print(f"| {row['target']} | {row['test_accuracy']:.3f} | {eps} | {row['epsilon_lower']:.3f} | "
              f"{row['correct']} / {row['guesses']} | {row['train_seconds']:.0f} |")
    write_results(args.out, {"settings": vars(args), "results": rows})
    violated = [r["target"] for r in rows if r["epsilon"] is not None and r["epsilon_lower"] > r["epsilon"]]
    if violated:
        print(f"\nepsilon_lower exceeds the accounting epsilon for {violated}: the audit or the accounting is wrong")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
