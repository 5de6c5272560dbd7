"""Overhead of PrivacyAuditCallback on a Fashion-MNIST CNN (target: under 10 % of epoch time).

    python benchmarks/bench_callback.py [--epochs 3] [--audit-size 10000]

Trains the same CNN on the 60,000 official training images twice, without
and with the callback auditing 10,000 training records against 10,000 test
records every epoch, and reports the median epoch time of each run, the
median time of one audit (inference over 20,000 records plus the attacks),
and the overhead ratio.  Writes benchmarks/results/callback_overhead.json.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import keras

from _harness import write_results
from tfmia.callbacks import PrivacyAuditCallback
from tfmia.datasets import load_fashion_mnist
from tfmia.demo import cnn_model

HERE = Path(__file__).resolve().parent


class EpochTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._start)


class TimedAudit(PrivacyAuditCallback):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.audit_times = []

    def on_epoch_end(self, epoch, logs=None):
        start = time.perf_counter()
        super().on_epoch_end(epoch, logs)
        self.audit_times.append(time.perf_counter() - start)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--audit-size", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--out", default=str(HERE / "results" / "callback_overhead.json"))
    args = parser.parse_args(argv)
    data = load_fashion_mnist(allow_download=False)
    x_train, y_train = data.x[:60000], data.y[:60000]
    x_test, y_test = data.x[60000:], data.y[60000:]
    n = args.audit_size

    results = {}
    for label in ("without callback", "with callback"):
        keras.utils.set_random_seed(0)
        model = cnn_model(data.x.shape[1:], 10)
        # The timer goes last so that with the callback the epoch time includes the audit.
        timer = EpochTimer()
        callbacks = [timer]
        audit = None
        if label == "with callback":
            audit = TimedAudit((x_train[:n], y_train[:n]), (x_test[:n], y_test[:n]))
            callbacks = [audit, timer]
        model.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size, verbose=0, callbacks=callbacks)
        results[label] = {"epoch_seconds": timer.times,
                          "audit_seconds": audit.audit_times if audit else None}
        print(f"{label}: epoch times {[round(t, 1) for t in timer.times]}", flush=True)

    base = statistics.median(results["without callback"]["epoch_seconds"])
    audited = statistics.median(results["with callback"]["epoch_seconds"])
    audit = statistics.median(results["with callback"]["audit_seconds"])
    summary = {"median_epoch_without_s": base, "median_epoch_with_s": audited, "median_audit_s": audit,
               "audit_over_epoch": audit / base, "epoch_time_increase": audited / base - 1}
    print(f"\nFashion-MNIST CNN, 60,000 training images, batch {args.batch_size}, audit {n} + {n} records:")
    print(f"median epoch {base:.1f} s without, {audited:.1f} s with; one audit {audit:.2f} s "
          f"= {100 * audit / base:.1f} % of an epoch (target < 10 %)")
    write_results(args.out, {"settings": vars(args), "results": results, "summary": summary})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
