"""Shokri et al.'s shadow-model attack with the shadow models trained on a Dask cluster.

    python examples/shadow_models_dask.py                       # a LocalCluster on this machine
    python examples/shadow_models_dask.py --scheduler tcp://host:8786   # an existing cluster

The shadow models train in packs (``tfmia.farm``: several models as one
Keras model), one pack per worker by default (``--pack-size``); each pack is
an independent job submitted to the executor, and finished packs are
checkpointed to --run-dir, so an interrupted run resumes where it stopped.  The same code runs with ``concurrent.futures.ProcessPoolExecutor``
or in-process (no executor).  On a real cluster the workers need tfmia
installed and the model_fn importable (here: tfmia.demo.mlp_model).
"""

import argparse
import functools

from distributed import Client, LocalCluster

from tfmia.attacks import ShadowModelAttack
from tfmia.data import AttackInputs
from tfmia.datasets import load_digits
from tfmia.demo import mlp_model
from tfmia.report import AuditReport, ModelFacts
from tfmia.splits import partition
from tfmia.training import FitConfig, build_model, fit_model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scheduler", help="address of an existing Dask scheduler (default: start a LocalCluster)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--shadows", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--size", type=int, default=300, help="training records of the target and of each shadow")
    parser.add_argument("--pack-size", type=int, default=None,
                        help="shadow models per pack, i.e. per job (default: the models spread over the workers)")
    parser.add_argument("--run-dir", default="shadow-run")
    parser.add_argument("--attack-model", default="logreg", choices=("mlp", "logreg", "rf", "gbdt"))
    args = parser.parse_args(argv)

    data = load_digits()
    parts = partition(data.x, data.y, {"target_train": args.size, "target_test": args.size,
                                       "attacker": 2 * args.size}, seed=0)
    model_fn = functools.partial(mlp_model, 64, 10)
    recipe = FitConfig(epochs=args.epochs, batch_size=32)
    target = build_model(model_fn, seed=0)
    fit_model(target, *parts["target_train"], recipe)
    members = AttackInputs.from_model(target, *parts["target_train"])
    non_members = AttackInputs.from_model(target, *parts["target_test"])

    cluster = None if args.scheduler else LocalCluster(n_workers=args.workers, threads_per_worker=1,
                                                        dashboard_address=None)
    with Client(args.scheduler or cluster) as client:
        workers = max(1, len(client.scheduler_info()["workers"]))
        pack_size = args.pack_size or -(-args.shadows // workers)
        attack = ShadowModelAttack(model_fn, n_shadows=args.shadows, attack_model=args.attack_model,
                                   fit_config=recipe, train_size=args.size, run_dir=args.run_dir,
                                   executor=client.get_executor(), pack_size=pack_size)
        attack.fit(*parts["attacker"])
    if cluster is not None:
        cluster.close()
    print(f"shadow models trained now: {attack.shadows.trained}, resumed from {args.run_dir}: {attack.shadows.resumed}")
    report = AuditReport([attack.evaluate(members, non_members)], ModelFacts.from_inputs(members, non_members))
    print(report.summary())


if __name__ == "__main__":
    main()
