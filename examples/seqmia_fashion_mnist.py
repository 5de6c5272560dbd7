"""SeqMIA against a Fashion-MNIST CNN, next to a one-shot metric attack, judged at low FPR.

    python examples/seqmia_fashion_mnist.py                         # ~40 min on 2 cores
    python examples/seqmia_fashion_mnist.py --split-size 300 --epochs 3 --distill-epochs 3 --attack-epochs 3

The target is trained on 'target_train' (its members); 'target_test' are
non-members; the attacker owns 'shadow' records (half trains its shadow model)
and a disjoint distillation set.  SeqMIA distils the target and the shadow
model, describes every record by its (T+1) x 5 sequence of loss, max, SD,
entropy and modified entropy, and scores P(member) with an attention LSTM.
Everything checkpoints under --run-dir: rerun to resume.
benchmarks/seqmia_fashion_mnist.py is the full comparison with LiRA and TrajectoryMIA.
"""

import argparse
import functools

from tfmia.attack_models import AttackTraining
from tfmia.attacks import MetricAttack, SeqMIA
from tfmia.data import AttackInputs
from tfmia.datasets import load_fashion_mnist
from tfmia.demo import cnn_model
from tfmia.report import AuditReport, ModelFacts
from tfmia.splits import partition
from tfmia.training import FitConfig, build_model, fit_model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split-size", type=int, default=2500)
    parser.add_argument("--distill-size", type=int, default=10000)
    parser.add_argument("--epochs", type=int, default=50, help="target and shadow training epochs")
    parser.add_argument("--distill-epochs", type=int, default=50)
    parser.add_argument("--attack-epochs", type=int, default=150)
    parser.add_argument("--run-dir", default="runs/seqmia-example")
    parser.add_argument("--out", default="seqmia-report")
    args = parser.parse_args(argv)

    data = load_fashion_mnist()
    n = args.split_size
    parts = partition(data.x, data.y, {"target_train": n, "target_test": n, "shadow": 2 * n,
                                       "distill": args.distill_size}, seed=0)
    model_fn = functools.partial(cnn_model, data.x.shape[1:], 10)
    recipe = FitConfig(epochs=args.epochs, batch_size=64)
    target = build_model(model_fn, seed=0)
    fit_model(target, *parts["target_train"], recipe)

    seqmia = SeqMIA(model_fn, fit=recipe, distill_epochs=args.distill_epochs,
                    training=AttackTraining(epochs=args.attack_epochs), run_dir=args.run_dir)
    seqmia.fit(*parts["shadow"], parts["distill"][0])
    members, non_members = (target, *parts["target_train"]), (target, *parts["target_test"])
    results = [seqmia.evaluate(members, non_members)]

    # A one-shot baseline calibrated on the same shadow model.
    shadow_in, shadow_out = seqmia.features.shadow_models(*parts["shadow"]).pooled_attack_inputs()
    inputs_in, inputs_out = AttackInputs.from_model(*members), AttackInputs.from_model(*non_members)
    results.append(MetricAttack("modified_entropy").fit(shadow_in, shadow_out).evaluate(inputs_in, inputs_out))

    report = AuditReport(results, ModelFacts.from_inputs(inputs_in, inputs_out, model_name="Fashion-MNIST CNN",
                                                         epoch=args.epochs))
    report.to_json(f"{args.out}/report.json")
    report.to_html(f"{args.out}/report.html")
    print(report.summary())


if __name__ == "__main__":
    main()
