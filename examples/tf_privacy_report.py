"""TensorFlow Privacy's privacy report, fed by tfmia.

    python examples/tf_privacy_report.py --epochs 20 --out privacy-report

Audits a model at several epochs with tfmia, converts each AuditReport to
TensorFlow Privacy's ``AttackResults`` and draws its two privacy-report
plots (vulnerability per epoch, privacy vs utility).  Needs TF Privacy's MIA
module; see the README for the --no-deps install that works with current
TensorFlow and numpy 2.
"""

import argparse
from pathlib import Path

import keras

from tfmia import tf_privacy
from tfmia.callbacks import PrivacyAuditCallback
from tfmia.datasets import load_digits
from tfmia.plotting import figure_png
from tfmia.splits import partition


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--every", type=int, default=2, help="audit every n-th epoch")
    parser.add_argument("--out", default="privacy-report")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tfp = tf_privacy.load()
    ds = tfp.data_structures

    data = load_digits()
    parts = partition(data.x, data.y, {"train": 600, "held_out": 300}, seed=0)
    x_train, y_train = parts["train"]
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(256, activation="relu"), keras.layers.Dense(10)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    audit = PrivacyAuditCallback((x_train[:300], y_train[:300]), parts["held_out"], every_n_epochs=args.every)
    model.fit(x_train, y_train, epochs=args.epochs, batch_size=32, verbose=0, callbacks=[audit])

    collection = ds.AttackResultsCollection([report.to_tf_privacy() for report in audit.reports])
    metrics = [ds.PrivacyMetric.AUC, ds.PrivacyMetric.ATTACKER_ADVANTAGE]
    for name, figure in (("by_epoch.png", tfp.privacy_report.plot_by_epochs(collection, metrics)),
                         ("privacy_vs_accuracy.png", tfp.privacy_report.plot_privacy_vs_accuracy(collection, metrics))):
        (out / name).write_bytes(figure_png(figure))
    print(collection.attack_results_list[-1].summary(by_slices=False))
    print(f"plots written to {out}")


if __name__ == "__main__":
    main()
