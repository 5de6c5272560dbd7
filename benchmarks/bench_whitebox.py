"""Throughput and memory of the white-box feature extractors.

    python benchmarks/bench_whitebox.py [--inception-images 16] [--fashion-images 512] [--skip-memory]

Images per second on this machine for model predictions, gradient
statistics w.r.t. the weights and w.r.t. the input, and boundary distances,
on InceptionV3 at 299x299 (random weights, batch 8) and on the Fashion-MNIST
CNN of ``tfmia.demo`` (trained for one epoch so that boundary distances are
realistic).  Every timing follows a warm-up batch, so tracing is excluded.

For the gradient statistics it also reports the share of time spent in the
core's statistics kernel relative to the gradient computation (target: under
10 %), and, in a fresh subprocess, the peak resident memory of InceptionV3
gradient statistics w.r.t. the weights at batch 8 (target: under 4 GB).

Prints a Markdown table and writes benchmarks/results/bench_whitebox.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _harness import _status_kib, format_table, machine_description, write_results  # noqa: E402

INCEPTION_BATCH = 8


def inception_target():
    import keras

    from tfmia.applications import imagenet_model

    keras.utils.set_random_seed(0)
    model = imagenet_model("inception_v3", weights=None)
    rng = np.random.default_rng(0)
    return model, lambda n: (rng.uniform(-1, 1, (n, 299, 299, 3)).astype(np.float32), rng.integers(0, 1000, n))


def fashion_target():
    from tfmia.datasets import load_fashion_mnist
    from tfmia.demo import cnn_model
    from tfmia.training import seed_everything

    data = load_fashion_mnist(allow_download=False)
    seed_everything(0)
    model = cnn_model(data.x.shape[1:], data.num_classes)
    model.fit(data.x[:4000], data.y[:4000], epochs=1, batch_size=64, verbose=0)
    return model, lambda n: (data.x[60000 : 60000 + n], data.y[60000 : 60000 + n])


def batches(x, y, size):
    for start in range(0, len(x), size):
        yield x[start : start + size], y[start : start + size]


def time_predictions(model, x, batch_size) -> float:
    from tfmia.features.predictions import predict

    predict(model, x[:batch_size], batch_size=batch_size)
    start = time.perf_counter()
    predict(model, x, batch_size=batch_size)
    return len(x) / (time.perf_counter() - start)


def time_gradients(model, x, y, batch_size, wrt) -> dict:
    from tfmia.features.gradients import GradientStatsExtractor

    extractor = GradientStatsExtractor(model, wrt=wrt, batch_size=batch_size)
    extractor(x[:batch_size], y[:batch_size])  # trace
    extractor.gradient_seconds = extractor.statistics_seconds = 0.0
    start = time.perf_counter()
    for xb, yb in batches(x, y, batch_size):
        extractor(xb, yb)
    elapsed = time.perf_counter() - start
    return {
        "images_per_second": len(x) / elapsed,
        "gradient_seconds": extractor.gradient_seconds,
        "statistics_seconds": extractor.statistics_seconds,
        "kernel_share": extractor.statistics_seconds / extractor.gradient_seconds,
        "gradient_entries_per_record": extractor.size,
    }


def time_boundary(model, x, batch_size, **options) -> dict:
    from tfmia.features.boundary import BoundaryDistances, BoundaryExtractor

    extractor = BoundaryExtractor(model, **options)
    extractor(x[:batch_size])  # trace
    start = time.perf_counter()
    result = BoundaryDistances.concatenate(extractor(xb) for xb, _ in batches(x, x, batch_size))
    elapsed = time.perf_counter() - start
    return {
        "images_per_second": len(x) / elapsed,
        "mean_queries": float(result.queries.mean()),
        "failures": result.failure_counts(),
        "median_distance": float(np.nanmedian(result.distance)) if result.failures < len(result) else None,
    }


def run_target(name, build, n_images, batch_sizes, boundary_options) -> list[dict]:
    model, sample = build()
    x, y = sample(n_images)
    rows = [{"model": name, "task": "predictions", "batch": batch_sizes["predict"],
             "images_per_second": time_predictions(model, x, batch_sizes["predict"])}]
    print(f"{name}: predictions done", file=sys.stderr, flush=True)
    for wrt in ("weights", "input"):
        stats = time_gradients(model, x, y, batch_sizes["gradients"], wrt)
        rows.append({"model": name, "task": f"gradient statistics ({wrt})", "batch": batch_sizes["gradients"], **stats})
        print(f"{name}: gradients w.r.t. {wrt} done", file=sys.stderr, flush=True)
    boundary = time_boundary(model, x[: max(batch_sizes["boundary"], n_images // 2)], batch_sizes["boundary"], **boundary_options)
    rows.append({"model": name, "task": "boundary distance", "batch": batch_sizes["boundary"], **boundary})
    print(f"{name}: boundary done", file=sys.stderr, flush=True)
    return rows


def memory_probe() -> dict:
    """In this (fresh) process: peak RSS of InceptionV3 gradient statistics w.r.t. the weights at batch 8."""
    from tfmia.features.gradients import gradient_statistics

    model, sample = inception_target()
    x, y = sample(2 * INCEPTION_BATCH)
    baseline = _status_kib("VmRSS")
    gradient_statistics(model, x, y, wrt="weights", batch_size=INCEPTION_BATCH)
    return {"peak_rss_bytes": _status_kib("VmHWM") * 1024, "rss_before_bytes": baseline * 1024}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inception-images", type=int, default=16)
    parser.add_argument("--fashion-images", type=int, default=512)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--memory-probe", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(HERE / "results" / "bench_whitebox.json"))
    args = parser.parse_args(argv)
    if args.memory_probe:
        print(json.dumps(memory_probe()))
        return 0
    rows = run_target("Fashion-MNIST CNN", fashion_target, args.fashion_images,
                      {"predict": 256, "gradients": 32, "boundary": 64}, {"clip": (0.0, 1.0)})
    rows += run_target("InceptionV3 299x299", inception_target, args.inception_images,
                       {"predict": INCEPTION_BATCH, "gradients": INCEPTION_BATCH, "boundary": INCEPTION_BATCH},
                       {"clip": (-1.0, 1.0), "max_steps": 20})
    memory = None
    if not args.skip_memory:
        probe = subprocess.run([sys.executable, __file__, "--memory-probe"], capture_output=True, text=True, check=True)
        memory = json.loads(probe.stdout.strip().splitlines()[-1])
    print(f"\n{machine_description()}\n")
    print(format_table(rows, [("model", "model", ""), ("task", "task", ""), ("batch", "batch", "d"),
                              ("images_per_second", "images/s", ".2f"), ("kernel_share", "kernel / gradient time", ".1%"),
                              ("mean_queries", "queries per image", ".1f")]))
    if memory is not None:
        print(f"\nInceptionV3 gradient statistics (weights), batch {INCEPTION_BATCH}: peak RSS "
              f"{memory['peak_rss_bytes'] / 2**30:.2f} GiB (process RSS before the call "
              f"{memory['rss_before_bytes'] / 2**30:.2f} GiB; target < 4 GB)")
    write_results(args.out, {"machine": machine_description(), "settings": vars(args), "rows": rows, "memory": memory})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
