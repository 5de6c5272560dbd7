"""Reference-model farm: seconds per reference model, packed against one after another.

    python benchmarks/bench_farm.py [--ks 1 4 16 64] [--models digits fashion-mlp cnn]
        [--sequential-models 4] [--out benchmarks/results/bench_farm.json]

For each model and each K, ``train_shadow_models`` trains K reference models
on the same data with the same recipe, packed (``packed=True``, one pack) and
one after another (``packed=False``, today's path), with scheme ``"shokri"``
and ``train_size`` half the pool (every model learns from a random half, as in
LiRA; LiRA's own keep matrix needs an even K).  Each measurement runs in a
fresh process and reports wall time per model (building, training, querying
the whole pool and writing each model's weights file included) and the
process's peak resident memory above what it held before training.

Sequential cost per model does not depend on K, so the sequential rows train
``min(K, --sequential-models)`` models and extrapolate their mean time per
model to K (marked "extrapolated").  The yardstick row per model gives the
float32 FLOPs of one training step of one replica (forward and backward: 3x
the forward multiply-adds x 2) and the time a large matmul needs for them on
this machine, the compute floor of a replica step.

Models (``tfmia.demo`` recipes, Adam 1e-3):

* ``digits``: the demo's MLP 64-256-10 on scikit-learn's digits (pool 1,797), 100 epochs, batch 32;
* ``fashion-mlp``: an MLP 784-128-10 on 5,000 Fashion-MNIST images, 10 epochs, batch 128;
* ``cnn``: the demo's CNN on 5,000 Fashion-MNIST images, 5 epochs, batch 64.

Prints a Markdown table and writes JSON to ``benchmarks/results/bench_farm.json``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from _harness import write_results

HERE = Path(__file__).resolve().parent
SETTINGS = {
    "digits": {"pool": 1797, "epochs": 100, "batch_size": 32},
    "fashion-mlp": {"pool": 5000, "epochs": 10, "batch_size": 128},
    "cnn": {"pool": 5000, "epochs": 5, "batch_size": 64},
}


def fashion_mlp():
    """MLP 784-128-10 with softmax output, Adam 1e-3 (the demo's recipe)."""
    import keras

    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(128, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def recipe(name: str):
    """(model_fn, x, y) of one benchmark model."""
    from tfmia.datasets import load_digits, load_fashion_mnist
    from tfmia.demo import cnn_model, mlp_model

    pool = SETTINGS[name]["pool"]
    if name == "digits":
        data = load_digits()
        return functools.partial(mlp_model, data.x.shape[1], data.num_classes), data.x[:pool], data.y[:pool]
    data = load_fashion_mnist(allow_download=False)
    if name == "fashion-mlp":
        return fashion_mlp, data.x[:pool].reshape(pool, -1), data.y[:pool]
    return functools.partial(cnn_model, data.x.shape[1:], data.num_classes), data.x[:pool], data.y[:pool]


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field)


def child(name: str, n_models: int, packed: bool) -> dict:
    """Train ``n_models`` models of ``name`` in this process; wall time and peak memory."""
    from tfmia.shadow_training import train_shadow_models
    from tfmia.training import FitConfig

    import keras  # noqa: F401  (imports are not what is measured)
    import tensorflow  # noqa: F401

    model_fn, x, y = recipe(name)
    settings = SETTINGS[name]
    fit = FitConfig(epochs=settings["epochs"], batch_size=settings["batch_size"])
    before = _rss_kib("VmRSS")
    start = time.perf_counter()
    train_shadow_models(model_fn, x, y, n_shadows=n_models, fit=fit, train_size=len(x) // 2, scheme="shokri",
                        seed=0, progress=False, packed=packed, pack_size=n_models if packed else None)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"seconds": seconds, "peak_extra_mib": max(0, peak - before) / 1024, "peak_mib": peak / 1024}


def measure(name: str, n_models: int, packed: bool) -> dict:
    """``child`` in a fresh process (clean memory high-water mark, no warm caches)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": os.pathsep.join(
        [str(HERE.parent), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, __file__, "--child", name, str(n_models), str(int(packed))],
                         capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"child {name} {n_models} packed={packed} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def step_flops(name: str) -> int:
    """float32 FLOPs of one training step of one replica: 3 x 2 x the forward multiply-adds x batch."""
    from tfmia.training import build_model

    model_fn, _, _ = recipe(name)
    model = build_model(model_fn, seed=0)
    macs = 0
    for layer in model.layers:
        if hasattr(layer, "kernel"):
            outputs = int(np.prod(layer.output.shape[1:-1]))  # spatial positions (1 for Dense)
            macs += outputs * int(np.prod(layer.kernel.shape))
    return 6 * macs * SETTINGS[name]["batch_size"]


def matmul_gflops(size: int = 1024, repeats: int = 10) -> float:
    """float32 GFLOP/s of a ``size`` x ``size`` matmul in TensorFlow on this machine (the compute yardstick)."""
    import tensorflow as tf

    a = tf.random.normal((size, size))
    product = tf.function(lambda m: tf.matmul(m, m))
    product(a).numpy()
    start = time.perf_counter()
    for _ in range(repeats):
        product(a).numpy()
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def run(names, ks, sequential_models: int) -> dict:
    rows = []
    gflops = matmul_gflops()
    per_model_sequential = {}
    for name in names:
        n = min(max(ks), sequential_models)
        sequential = measure(name, n, packed=False)
        per_model_sequential[name] = {"models": n, **sequential, "per_model_s": sequential["seconds"] / n}
        print(f"[{name}] sequential: {sequential['seconds'] / n:.2f} s per model over {n} models "
              f"(load {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)
        flops = step_flops(name)
        for k in ks:
            packed = measure(name, k, packed=True)
            seq = per_model_sequential[name]
            steps = SETTINGS[name]["epochs"] * -(-(SETTINGS[name]["pool"] // 2) // SETTINGS[name]["batch_size"])
            row = {
                "model": name, "k": k, "packed_per_model_s": packed["seconds"] / k,
                "packed_peak_extra_mib": packed["peak_extra_mib"],
                "sequential_per_model_s": seq["per_model_s"], "sequential_models_timed": seq["models"],
                "sequential_extrapolated": k > seq["models"], "sequential_peak_extra_mib": seq["peak_extra_mib"],
                "speedup": seq["per_model_s"] / (packed["seconds"] / k),
                "steps_per_model": steps, "flops_per_replica_step": flops,
                "matmul_floor_ms_per_replica_step": flops / (gflops * 1e9) * 1e3,
                "packed_ms_per_replica_step": packed["seconds"] / k / steps * 1e3,
                "load_average": os.getloadavg()[0],
            }
            rows.append(row)
            print(f"[{name}] K={k}: packed {row['packed_per_model_s']:.3f} s/model, speed-up {row['speedup']:.1f}x "
                  f"(load {row['load_average']:.1f})", file=sys.stderr, flush=True)
    return {"rows": rows, "matmul_gflops": gflops, "settings": SETTINGS,
            "machine": {"platform": platform.platform(), "processor": platform.processor(),
                        "cpus": os.cpu_count()}}


def table(result: dict) -> str:
    lines = ["| model | K | sequential s/model | packed s/model | speed-up | packed peak MiB | "
             "ms per replica-step (matmul floor) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        sequential = f"{r['sequential_per_model_s']:.2f}{'*' if r['sequential_extrapolated'] else ''}"
        lines.append(f"| {r['model']} | {r['k']} | {sequential} | {r['packed_per_model_s']:.3f} | "
                     f"{r['speedup']:.1f}x | {r['packed_peak_extra_mib']:.0f} | "
                     f"{r['packed_ms_per_replica_step']:.2f} ({r['matmul_floor_ms_per_replica_step']:.2f}) |")
    lines.append("")
    lines.append(f"\\* sequential time per model measured on {result['rows'][0]['sequential_models_timed']} models "
                 f"and extrapolated; matmul yardstick {result['matmul_gflops']:.0f} GFLOP/s")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--models", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--sequential-models", type=int, default=4)
    parser.add_argument("--out", default=str(HERE / "results" / "bench_farm.json"))
    parser.add_argument("--child", nargs=3, metavar=("MODEL", "N", "PACKED"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        name, n, packed = args.child
        print(json.dumps(child(name, int(n), bool(int(packed)))))
        return 0
    started = time.perf_counter()
    load_before = os.getloadavg()
    result = run(args.models, args.ks, args.sequential_models)
    result["load_average_before_after"] = [load_before, os.getloadavg()]
    result["wall_seconds"] = time.perf_counter() - started
    out = write_results(args.out, result)
    print(table(result))
    print(f"\nwrote {out} in {result['wall_seconds']:.0f} s; load average before {load_before[0]:.1f}, "
          f"after {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
