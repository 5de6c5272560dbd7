"""Audit membership leakage while a Keras model trains, with one callback.

    python examples/keras_callback.py --epochs 30 --out audit-run

Trains a small MLP on scikit-learn's digits, auditing a sample of its
training records against held-out records after every epoch.  The leakage
metrics (mia_auc, mia_advantage, mia_tpr_at_1pct_fpr, mia_far, ...) land in
the History and in a CSV log next to the accuracy; one AuditReport per epoch
and a privacy-vs-epoch plot go to --out/reports/fit-000 (fit-001 on the next
run with the same --out: nothing is overwritten).
"""

import argparse
from pathlib import Path

import keras

from tfmia.callbacks import PrivacyAuditCallback
from tfmia.datasets import load_digits
from tfmia.splits import partition


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--train-size", type=int, default=600)
    parser.add_argument("--out", default="audit-run")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    data = load_digits()
    parts = partition(data.x, data.y, {"train": args.train_size, "held_out": args.train_size // 2}, seed=0)
    x_train, y_train = parts["train"]
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(256, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])

    audit = PrivacyAuditCallback(
        members=(x_train[: args.train_size // 2], y_train[: args.train_size // 2]),
        non_members=parts["held_out"],
        report_dir=out / "reports",
        log_dir=out / "tensorboard",
    )
    history = model.fit(x_train, y_train, epochs=args.epochs, batch_size=32, verbose=0,
                        callbacks=[audit, keras.callbacks.CSVLogger(out / "log.csv")])
    h = history.history
    print(f"final train accuracy {h['accuracy'][-1]:.3f}; membership AUC {h['mia_auc'][-1]:.3f}, "
          f"advantage {h['mia_advantage'][-1]:.3f}, FAR {h['mia_far'][-1]:.3f}")
    print(f"per-epoch log: {out / 'log.csv'}; reports and plot: {audit.run_dir}")


if __name__ == "__main__":
    main()
